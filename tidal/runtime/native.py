"""Native (pickled) Python models: how they are written and, after verification, read.

Unpickling runs code, so ``load_native`` must only ever see bytes that the artifact
store has just verified against the hash recorded in the registry; callers get those
bytes from :meth:`tidal.artifacts.ArtifactStore.get_bytes`, which refuses a mismatch.
"""

from __future__ import annotations

import pickle
from typing import Any

FLAVOR = "python-pickle"


def dump_native(model: Any) -> bytes:
    return pickle.dumps(model, protocol=5)


def load_native(verified_bytes: bytes) -> Any:
    return pickle.loads(verified_bytes)  # noqa: S301 - bytes verified by sha256 first
