"""The tracking benchmark still runs (Tidal side only, small sizes, no peer install)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tracking.py"


def test_quick_tidal_only_run_writes_its_figures(tmp_path: Path):
    output = tmp_path / "tracking.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--skip-peer", "--repeats", "1",
         "--output", str(output)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    figures = json.loads(output.read_text())
    keys = {row["key"] for row in figures["results"]}
    assert {"create_runs_s", "log_points_s", "search_s"} <= keys
    for row in figures["results"]:
        assert all(value > 0 for value in row["tidal"]["values_s"])
