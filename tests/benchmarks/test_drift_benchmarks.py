"""The drift benchmarks still run (Tidal side only, tiny sizes, no peer install).

Why: the scripts are run by hand before a release, so nothing else would notice when a
change to ``tidal.data.drift.compare`` (its result keys, its accepted inputs) breaks
them. Each runs in its ``--quick --skip-peer`` mode into a temporary folder, and the
JSON it writes must have the shape the README and the lead's tooling read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, tmp_path: Path) -> dict:
    output = tmp_path / f"{name}.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--skip-peer",
         "--scratch", str(tmp_path / "scratch"), "--output", str(output)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    return json.loads(output.read_text())


def test_drift_speed_quick_writes_its_figures(tmp_path: Path):
    figures = run_script("drift_speed", tmp_path)
    assert figures["benchmark"] == "drift_speed"
    assert {"nproc", "cpu_model"} <= set(figures["machine"])
    assert figures["versions"]["tidal_source"]
    (row,) = figures["results"]
    assert row["rows"] == 2_000
    assert row["evidently"] is None and row["same_columns_flagged"] is None
    assert row["tidal"]["median_s"] > 0 and row["tidal"]["median_peak_rss_mb"] > 0
    # the designed shift is strong enough that Tidal must find exactly it
    assert row["tidal_matches_design"], (row["tidal_flagged"], row["designed_shift"])


def test_drift_power_quick_writes_its_figures(tmp_path: Path):
    figures = run_script("drift_power", tmp_path)
    assert figures["benchmark"] == "drift_power"
    rows = figures["results"]
    scenarios = {"none", "noise", "knockout", "mean_shift", "missing"}
    assert {(r["dataset"], r["scenario"]) for r in rows} == {
        (d, s) for d in ("elec2", "census") for s in scenarios}
    for row in rows:
        tidal = row["tidal"]
        assert tidal["draws"] == 3 and row["evidently"] is None
        assert 0 <= tidal["dataset_drift"] <= 1
        assert 0 <= tidal["false_alarm"] <= 1
        if row["scenario"] == "none":
            assert tidal["detection"] is None and not row["shifted_columns"]
        else:
            assert 0 <= tidal["detection"] <= 1 and row["shifted_columns"]
    # a +0.5 sd mean shift on 1,500 rows cannot be missed
    big = [r for r in rows if r["rows"] == 1_500 and r["scenario"] == "mean_shift"]
    assert all(r["tidal"]["detection"] == 1.0 for r in big)


def test_data_speed_runs_every_step_and_finds_the_shift(tmp_path: Path):
    output = tmp_path / "data_speed.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "data_speed.py"), "--rows", "3000", "--repeats", "1",
         "--scratch", str(tmp_path / "scratch"), "--output", str(output)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    figures = json.loads(output.read_text())["figures"]
    assert set(figures) == {"schema", "validate", "profile", "profile_window", "merge_drift"}
    assert figures["schema"]["columns"] == 25
    # the six shifted columns are found; profiles' sketches are randomised (KLL), so an
    # unshifted column near the threshold may be flagged on a small sample now and then
    drifted = set(figures["merge_drift"]["drifted"])
    assert {f"n{i:02d}" for i in range(6)} <= drifted and len(drifted) <= 8
    assert 10_000 < figures["profile"]["profile_bytes"] < 500_000


def test_segments_benchmark_runs_small(tmp_path: Path):
    output = tmp_path / "segments.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "segments.py"), "--segments", "40", "--rows", "50",
         "--repeats", "1", "--per-step", "0", "--skip-ray", "--output", str(output)],
        check=True, capture_output=True, text=True, timeout=180,
    )
    assert output.stat().st_size > 0
    assert "process" in output.read_text()
