"""`tidal pipelines list|show` read the lineage that a real run recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline_steps import numbers_pipeline

import tidal
from tidal.pipeline import Pipeline, run_pipeline


def tidal_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDAL_PROJECT_DIR": str(folder), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tidal", "pipelines", *args], env=env,
                          text=True, capture_output=True, timeout=120)


def test_list_and_show_a_run_with_its_cached_steps(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "numbers.txt").write_text("1\n2\n")
    with tidal.Project(tmp_path) as project:
        run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                     executor="inline")
        second = run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt", factor=5.0),
                              project=project, executor="inline")
    listed = json.loads(tidal_cli(tmp_path, "list", "--json").stdout)
    assert [run["status"] for run in listed] == ["FINISHED", "FINISHED"]
    assert listed[0]["id"] == second.run_id
    shown = tidal_cli(tmp_path, "show", second.run_id)
    assert shown.returncode == 0, shown.stderr
    assert "cached" in shown.stdout and "finished" in shown.stdout
    missing = tidal_cli(tmp_path, "show", "ffffffffffff")
    assert missing.returncode == 3 and "Traceback" not in missing.stderr
