"""Cache keys: what decides that a step execution can be reused.

A key is the sha256 of the step's name and code hash, its parameters in canonical JSON,
and the sha256 of every input it takes from other steps. Parameters must therefore be
plain data (numbers, text, booleans, None, lists, dicts, paths); anything else would
have no stable fingerprint, and the error says to pass data between steps as step
outputs instead. A parameter wrapped in :class:`File` is fingerprinted by the file's
content, so editing the data file invalidates the cache even though its name is the same;
one wrapped in :class:`Location` (the artifact store's folder) is left out of the key.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidal.core.errors import ValidationError
from tidal.core.hashing import CHUNK_SIZE, sha256_json


@dataclass(frozen=True)
class File:
    """A file argument whose content, not only its name, belongs to the cache key.

    The step receives the absolute path as a string.
    """

    path: str | Path

    def sha256(self) -> str:
        digest = hashlib.sha256()
        try:
            with open(self.path, "rb") as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    digest.update(chunk)
        except OSError as exc:
            raise ValidationError(f"{self.path}: cannot read it ({exc.strerror})") from None
        return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    """An earlier step's output, by its sha256, used as an input of a new pipeline.

    It is an input like a node's output (its hash goes into the cache key and the
    lineage), so a follow-up pipeline (e.g. exporting the model a gate chose) stays
    traceable to the run that produced what it consumes.
    """

    sha256: str


@dataclass(frozen=True)
class Location:
    """Where a step finds things (the artifact store's folder), not what it computes.

    The step receives the value itself, but it stays out of the cache key: a project
    that is moved, or whose artifact store is mounted elsewhere, keeps its cache.
    """

    value: str


def fingerprint(value: Any, where: str) -> Any:
    """The canonical, JSON-able form of a parameter (ValidationError when it has none)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):  # tagged: the text "inf" is another parameter
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, File):  # by content and name, not by folder (projects move)
        return {"__file__": Path(value.path).name, "sha256": value.sha256()}
    if isinstance(value, Location):
        return "(location)"
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if isinstance(value, list):
        return [fingerprint(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):  # tagged: a step may tell a tuple from a list
        return {"__tuple__": [fingerprint(item, f"{where}[{i}]")
                              for i, item in enumerate(value)]}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValidationError(f"{where}: dict parameters need text keys")
        return {key: fingerprint(item, f"{where}.{key}") for key, item in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return fingerprint(item(), where)
    raise ValidationError(
        f"{where}: a {type(value).__name__} cannot be a step parameter (it has no stable "
        "fingerprint); pass data between steps as the output of a step, or wrap a file "
        "name in tidal.File")


def cache_key(step_name: str, code: str, params: dict[str, Any],
              inputs: dict[str, str]) -> str:
    """sha256 over the step identity, canonical parameters and input output hashes."""
    return sha256_json({"step": step_name, "code": code, "params": params, "inputs": inputs})


def runtime_value(value: Any) -> Any:
    """What the step function receives for a parameter: a File becomes its absolute path
    (workers may run in another folder, Ray's in the folder Ray was started from)."""
    if isinstance(value, File):
        return str(Path(value.path).resolve())
    if isinstance(value, Location):
        return value.value
    if isinstance(value, list):
        return [runtime_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(runtime_value(item) for item in value)
    if isinstance(value, dict):
        return {key: runtime_value(item) for key, item in value.items()}
    return value
