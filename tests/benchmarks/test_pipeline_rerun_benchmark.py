"""The pipeline re-run benchmark still runs, and what it reports holds: an unchanged
re-run executes no step, and editing a slice re-runs the evaluations and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline_rerun.py"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (DATA / "elec2.csv.gz").is_file(), reason="shared/data is missing")
def test_one_repeat_writes_its_figures(tmp_path: Path):
    output = tmp_path / "pipeline_rerun.json"
    subprocess.run([sys.executable, str(SCRIPT), "--repeats", "1", "--output", str(output),
                    "--data", str(DATA)], check=True, capture_output=True, text=True,
                   timeout=600)
    figures = json.loads(output.read_text())
    # snapshot, validate, split, a train and an evaluate per candidate, the export
    assert figures["steps"] == 4 + 2 * len(figures["candidates"])
    assert figures["machine"]["nproc"] >= 1
    assert 0 < figures["cached_in_process_s"] < figures["cold_s"]
    changed = figures["one_change"]
    assert changed["ran"] and all(s.startswith("evaluate_candidate") for s in changed["ran"])
    assert changed["cached"] == figures["steps"] - len(changed["ran"])
