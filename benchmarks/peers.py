"""Helpers shared by the benchmarks that measure Tidal against a peer in its own venv.

Why a module: the drift benchmarks (and any later one) need the same four chores as
``tracking.py`` — create the peer's virtual environment and pin its versions, describe
the machine, run a worker process under ``/usr/bin/time -v`` to get its peak resident
set, and print a readable table — and the rules in /work/shared/BENCHMARKING.md should
be applied the same way everywhere.

Only the standard library is imported at module level: the drift scripts import this
module from inside the peer's interpreter too (their workers run the same file there).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / ".peers"
SCRATCH_DIR = HERE / ".scratch"
MARKER = "BENCH-RESULT "
TIME_BIN = "/usr/bin/time"

_CHECK_PINS = """\
import sys, json, importlib.metadata as m
from packaging.specifiers import SpecifierSet
pins = json.loads(sys.argv[1])
for name, spec in pins.items():
    try:
        version = m.version(name)
    except m.PackageNotFoundError:
        sys.exit(1)
    if version not in SpecifierSet(spec):
        sys.exit(1)
"""


def ensure_venv(venv: Path, pins: dict[str, str]) -> Path:
    """The python of ``venv`` with every ``pins`` entry (name -> specifier) installed.

    The venv is created with the system's ``python3`` and the packages are installed
    with its own pip, so the peer never touches Tidal's environment. An empty specifier
    means "any version" (used for readers such as pyarrow that the peer needs).
    """
    python = venv / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    check = subprocess.run([str(python), "-c", _CHECK_PINS, json.dumps(pins)],
                           capture_output=True)
    if check.returncode:
        specs = [f"{name}{spec}" for name, spec in pins.items()]
        print(f"installing {' '.join(specs)} into {venv} ...", flush=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *specs],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pip install {specs} failed:\n{done.stderr[-3000:]}")
    return python


def machine() -> dict[str, Any]:
    """nproc, CPU model and load: the figures BENCHMARKING.md asks every result to carry."""
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    # not `nproc`: it honours OMP_NUM_THREADS, which the benchmarks set to 1
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": nproc or 0, "cpu_model": model,
            "platform": platform.platform(), "loadavg_at_start": os.getloadavg()}


def tidal_source_hash() -> str:
    """Fingerprint of the imported tidal package's source: the lead edits it while the
    benchmarks run, so every result records which source it measured."""
    import tidal

    root = Path(tidal.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions of ``names`` in the running interpreter (None when absent)."""
    from importlib import metadata

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Run a worker under ``/usr/bin/time -v`` and return its marker payload.

    The payload (the JSON after the last ``MARKER`` line on stdout) gains
    ``peak_rss_mb`` (maximum resident set of the whole process, interpreter and imports
    included, as BENCHMARKING.md asks) and ``process_wall_s`` (wall clock of the whole
    process, start-up included). ``time`` writes its report to a file so the worker's
    own stderr stays readable when it fails.
    """
    with tempfile.NamedTemporaryFile(prefix="time-v-", suffix=".txt", delete=False) as handle:
        time_file = Path(handle.name)
    try:
        full = [TIME_BIN, "-v", "-o", str(time_file), *cmd]
        done = subprocess.run(full, env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)
        report = time_file.read_text() if time_file.exists() else ""
    finally:
        time_file.unlink(missing_ok=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)]
    if done.returncode or not lines:
        raise RuntimeError(f"worker {' '.join(cmd[:4])} ... failed (rc={done.returncode}):\n"
                           f"{done.stderr[-4000:]}")
    payload: dict[str, Any] = json.loads(lines[-1][len(MARKER):])
    rss = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", report)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\):\s*([\d:.]+)", report)
    payload["peak_rss_mb"] = int(rss.group(1)) / 1024 if rss else None
    payload["process_wall_s"] = _clock_seconds(wall.group(1)) if wall else None
    return payload


def _clock_seconds(text: str) -> float:
    """``h:mm:ss`` or ``m:ss.ss`` from ``time -v`` in seconds."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def emit(payload: dict[str, Any]) -> None:
    """A worker's last word: the marker line the parent looks for."""
    print(MARKER + json.dumps(payload), flush=True)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
                width: int = 160) -> None:
    """A table with rich when it is installed (Tidal's venv), plain text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows, strict=True)]
        for line in [columns, *rows]:
            print(" | ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))
        return
    table = Table(title=title)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for line in rows:
        table.add_row(*[str(x) for x in line])
    Console(width=width).print(table)


def write_results(path: Path, report: dict[str, Any], compact: Sequence[str] = ("raw",)) -> None:
    """Write ``results/NAME.json``: the figures indented for reading and review, the
    per-run ``raw`` records (the evidence, hundreds of entries) one per line, so a rerun
    changes a few hundred lines of the file rather than tens of thousands."""
    head = {key: value for key, value in report.items() if key not in compact}
    text = json.dumps(head, indent=2)
    tails = []
    for key in compact:
        if key in report:
            value = report[key]
            items = value.items() if isinstance(value, dict) else enumerate(value)
            lines = [json.dumps(item, separators=(",", ":")) if isinstance(value, list)
                     else f"{json.dumps(name)}:{json.dumps(item, separators=(',', ':'))}"
                     for name, item in items]
            opening, closing = ("[", "]") if isinstance(value, list) else ("{", "}")
            tails.append(f"  {json.dumps(key)}: {opening}\n    " + ",\n    ".join(lines)
                         + f"\n  {closing}")
    if tails:
        text = text.rstrip()[:-1].rstrip() + (",\n" if head else "\n") + ",\n".join(tails) \
            + "\n}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
