"""What code ran: git commit, a hash of uncommitted changes, Python and package versions.

Recorded on every run so that "which code produced this model?" has an answer. Git is
asked once per process and folder (it does not change under a running job in practice,
and asking per run would cost milliseconds each).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

#: packages whose versions are recorded on every run, when installed
TRACKED_PACKAGES = (
    "tidal-ml", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "xgboost",
    "lightgbm", "onnxruntime", "skl2onnx", "sqlalchemy",
)


@dataclass(frozen=True)
class CodeInfo:
    git_commit: str | None
    #: sha256 of `git diff HEAD` plus untracked file names; None when the tree is clean
    git_dirty_hash: str | None
    python_version: str
    packages: dict[str, str] = field(default_factory=dict)


@functools.lru_cache(maxsize=8)
def code_info(folder: str) -> CodeInfo:
    """Describe the code in ``folder`` (cached per process)."""
    commit = _git(folder, "rev-parse", "HEAD")
    dirty_hash = None
    if commit is not None:
        diff = _git(folder, "diff", "HEAD", "--binary", strip=False) or ""
        untracked = _git(folder, "ls-files", "--others", "--exclude-standard", strip=False) or ""
        if diff or untracked:
            dirty_hash = hashlib.sha256((diff + "\0" + untracked).encode()).hexdigest()
    return CodeInfo(
        git_commit=commit,
        git_dirty_hash=dirty_hash,
        python_version=platform.python_version(),
        packages=package_versions(),
    )


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _git(folder: str, *args: str, strip: bool = True) -> str | None:
    if not Path(folder).exists():
        return None
    try:
        result = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() if strip else result.stdout
