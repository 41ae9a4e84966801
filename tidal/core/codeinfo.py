"""What code ran: git commit, a hash of uncommitted changes, Python and package versions.

Recorded on every run so that "which code produced this model?" has an answer. The
dirty hash covers ``git diff HEAD`` and the contents of untracked files (a new
``train.py`` that was never added is still code that ran), except the project's own
state folder (``.tidal``: store, artifacts, prediction log). If git cannot say, the hash
is ``"unknown"``, never a false "clean". Answers are kept for a few seconds per folder:
a loop starting a thousand runs asks git once, a notebook edited between runs is seen.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .config import STATE_DIR

#: packages whose versions are recorded on every run, when installed
TRACKED_PACKAGES = (
    "tidal-ml", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "xgboost",
    "lightgbm", "onnxruntime", "skl2onnx", "sqlalchemy",
)
UNKNOWN = "unknown"
CACHE_SECONDS = 2.0
#: untracked files larger than this are hashed by name and size only
MAX_HASHED_FILE = 16 << 20
#: git pathspecs for what is not code: the project's own state (the store, artifacts and
#: prediction log), which every run changes; counting it made every run "dirty"
NOT_CODE = ("--", ".", f":(exclude){STATE_DIR}")


@dataclass(frozen=True)
class CodeInfo:
    git_commit: str | None
    #: sha256 of the uncommitted changes; None when clean, "unknown" when git failed
    git_dirty_hash: str | None
    python_version: str
    packages: dict[str, str] = field(default_factory=dict)


_cache: dict[str, tuple[float, CodeInfo]] = {}
_cache_lock = threading.Lock()


def code_info(folder: str) -> CodeInfo:
    """Describe the code in ``folder`` (remembered for a couple of seconds)."""
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(folder)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
    info = _describe(folder)
    with _cache_lock:
        _cache[folder] = (now, info)
    return info


def _describe(folder: str) -> CodeInfo:
    commit_bytes = _git(folder, "rev-parse", "HEAD")
    commit = commit_bytes.decode(errors="replace").strip() if commit_bytes else None
    dirty_hash = None
    if commit is not None:
        diff = _git(folder, "diff", "HEAD", "--binary", *NOT_CODE)
        untracked = _git(folder, "ls-files", "-z", "--others", "--exclude-standard",
                         *NOT_CODE)
        if diff is None or untracked is None:
            dirty_hash = UNKNOWN
        elif diff or untracked:
            digest = hashlib.sha256(diff)
            for name in sorted(filter(None, untracked.split(b"\0"))):
                digest.update(b"\0" + name + b"\0")
                digest.update(_file_fingerprint(Path(folder) / name.decode(errors="replace")))
            dirty_hash = digest.hexdigest()
    return CodeInfo(
        git_commit=commit,
        git_dirty_hash=dirty_hash,
        python_version=platform.python_version(),
        packages=package_versions(),
    )


def _file_fingerprint(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_HASHED_FILE:
            return f"size:{size}".encode()
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return b"unreadable"


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _git(folder: str, *args: str) -> bytes | None:
    """Git's raw output, or None if git is missing, fails or takes too long."""
    if not Path(folder).exists():
        return None
    try:
        result = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None
