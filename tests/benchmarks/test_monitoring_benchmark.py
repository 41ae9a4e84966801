"""The monitoring benchmark still runs (half an hour of traffic at 20 requests/s) and its
figures have the shape the README is built from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "monitoring.py"


def test_a_small_run_writes_its_figures(tmp_path: Path):
    output = tmp_path / "monitoring.json"
    subprocess.run([sys.executable, str(SCRIPT), "--hours", "0.5", "--rate", "20",
                    "--output", str(output)], check=True, capture_output=True, text=True,
                   timeout=600)
    figures = json.loads(output.read_text())
    assert figures["records"] == 36_000
    for half in ("first_half", "second_half"):
        assert figures[half]["records"] == 18_000 and figures[half]["windows"] == 3
        assert figures[half]["rows_per_window"] == 6_000
    assert len(figures["per_window_s"]) == 6 and figures["window_s_max"] > 0
    assert figures["second_over_first"] > 0
