"""The serving benchmark still runs (Tidal and the HTTP floor, a smoke run of 1 s a
cell, no peer) and its figures have the shape the README is built from."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving.py"


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("taskset") is None,
                    reason="the serving benchmark needs wrk and taskset (apt-get install wrk)")
def test_quick_run_without_the_peer_writes_its_figures(tmp_path: Path):
    output = tmp_path / "serving.json"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--skip-peer", "--output",
                    str(output)], check=True, capture_output=True, text=True, timeout=600)
    figures = json.loads(output.read_text())
    cells = {(c["model"], c["rows"], c["encoding"]): c for c in figures["results"]}
    assert set(cells) == {(m, r, e) for m in ("lr", "rf")
                          for r, e in ((1, "json"), (1024, "json"), (1024, "binary"))}
    for cell in cells.values():
        for kind in ("tidal", "tidal-async"):
            assert cell[kind]["rps"] > 0 and cell[kind]["errors"] == 0, (kind, cell)
        assert "mlserver" not in cell or cell["mlserver"] is None
    assert 0 < cells[("lr", 1, "json")]["tidal_share_of_floor"] < 2
    # Tidal's HTTP layer alone: every request answered 404, faster than a prediction
    dispatch = figures["dispatch_only"]
    assert dispatch["rps"] > cells[("lr", 1, "json")]["tidal-async"]["rps"]
    assert dispatch["errors"] > 0 and 0 < dispatch["share_of_floor"] < 2
    assert figures["in_process_onnx"]["lr"]["rows_per_s_1024"] > 0
