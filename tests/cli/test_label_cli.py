"""`tidal label FILE`, run as a real process: labels by request id or by key and time,
all-or-nothing on bad rows, and the count of corrections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tidal.project import Project


def tidal(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDAL_PROJECT_DIR": str(folder), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tidal", *args], env=env, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                          cwd=folder)


@pytest.fixture
def deployed(tmp_path: Path) -> Path:
    with Project(tmp_path) as project:
        project.register_model("elec2", {"a": 1}, signature={"inputs": []})
        project.set_deployment("elec2", "elec2:1")
    return tmp_path


def test_labels_from_csv_and_parquet_are_added_and_corrections_counted(deployed: Path):
    pd.DataFrame({"request_id": ["a", "b", "c"], "row": [0, 0, 1],
                  "label": [1, 0, 1]}).to_csv(deployed / "labels.csv", index=False)
    done = tidal(deployed, "label", "labels.csv", "-d", "elec2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"file": None} == {
        "file": None, "deployment": "elec2", "added": 3, "superseded": 0}
    pd.DataFrame({"customer": ["k1", "k2"], "when": ["2026-11-01T10:00:00", "1762000000"],
                  "outcome": ["yes", "no"]}).to_parquet(deployed / "keyed.parquet")
    keyed = tidal(deployed, "label", "keyed.parquet", "-d", "elec2", "--key-column",
                  "customer", "--time-column", "when", "--label-column", "outcome")
    assert keyed.returncode == 0, keyed.stderr
    assert "2 labels added to elec2 (0 replace earlier labels)" in keyed.stdout
    again = tidal(deployed, "label", "labels.csv", "-d", "elec2", "--json")
    assert json.loads(again.stdout)["superseded"] == 3
    with Project(deployed) as project:
        stored = project.feedback.since("elec2")
    assert [(s.request_id, s.row, s.label, s.source) for s in stored[:3]] == [
        ("a", 0, 1, "file"), ("b", 0, 0, "file"), ("c", 1, 1, "file")]
    keyed_rows = [s for s in stored if s.entity_key]
    assert [(s.entity_key, s.event_time, s.label) for s in keyed_rows] == [
        ("k1", pd.Timestamp("2026-11-01T10:00:00", tz="UTC").timestamp(), "yes"),
        ("k2", 1762000000.0, "no")]


def test_a_file_with_bad_rows_adds_nothing_and_names_them(deployed: Path):
    pd.DataFrame({"request_id": ["a", None, "c"], "label": [1, 0, None]}).to_csv(
        deployed / "bad.csv", index=False)
    failed = tidal(deployed, "label", "bad.csv", "-d", "elec2")
    assert failed.returncode == 2
    assert "2 bad row(s)" in failed.stderr and "row 2" in failed.stderr \
        and "row 3" in failed.stderr and "Traceback" not in failed.stderr
    with Project(deployed) as project:
        assert project.feedback.count("elec2") == 0
    pd.DataFrame({"id": ["a"], "label": [1]}).to_csv(deployed / "no-ids.csv", index=False)
    assert "request id column" in tidal(deployed, "label", "no-ids.csv", "-d", "elec2").stderr
    unknown = tidal(deployed, "label", "bad.csv", "-d", "nope")
    assert unknown.returncode == 3 and "nope" in unknown.stderr
