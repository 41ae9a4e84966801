"""Artifact names given by users, and the only way they may turn into paths.

Inside the store, bytes live under their sha256 and a name is just a label in the
metadata store, so a name can never address a file there. Names do become paths when
artifacts are downloaded into a folder; :func:`safe_destination` is the one place that
happens, and it refuses anything that would land outside that folder.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from tidal.core.errors import ValidationError

MAX_NAME_LENGTH = 1024
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_artifact_name(name: object) -> str:
    """Check a relative, forward-slash artifact name such as ``model/model.pkl``."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"invalid artifact name {name!r}: it must be a non-empty string")
    problem = None
    if len(name) > MAX_NAME_LENGTH:
        problem = f"longer than {MAX_NAME_LENGTH} characters"
    elif _FORBIDDEN.search(name):
        problem = "contains a backslash or a control character"
    elif name.startswith("/") or _DRIVE.match(name):
        problem = "is an absolute path"
    else:
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            problem = "has an empty, '.' or '..' path component"
        elif any(part != part.strip() for part in parts):
            problem = "has a path component with leading or trailing spaces"
    if problem:
        raise ValidationError(
            f"invalid artifact name {name!r}: it {problem}; use a relative path like "
            "'model/model.pkl'"
        )
    return name


def safe_destination(folder: str | Path, name: str) -> Path:
    """Where artifact ``name`` goes inside ``folder``; refuses to leave ``folder``."""
    safe_artifact_name(name)
    base = Path(folder).resolve()
    target = (base / PurePosixPath(name)).resolve()
    if target != base and base not in target.parents:
        raise ValidationError(f"artifact name {name!r} would be written outside {base}")
    return target
