"""`tidal init DATA` → `tidal run` → `tidal lineage`, as a user runs them, on census data
with categorical slices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def tidal(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env.pop("TIDAL_PROJECT_DIR", None)
    return subprocess.run([sys.executable, "-m", "tidal", *args], cwd=folder, env=env,
                          text=True, capture_output=True, timeout=300)


def test_init_run_lineage_and_a_cached_rerun(tmp_path: Path):
    census = pd.read_parquet(DATA / "us_census_ma_employment_2015_reference.parquet")
    census = census.drop(columns=["id", "year", "prediction", "predicted_probability"])
    census.sample(3_000, random_state=1).to_csv(tmp_path / "census.csv", index=False)

    made = tidal(tmp_path, "init", "census.csv", "--target", "employed")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "schema.yaml").is_file()
    config = (tmp_path / "tidal.toml").read_text()
    assert 'target = "employed"' in config and 'source = "census.csv"' in config
    config = config.replace('# candidates = ["linear", "random_forest", '
                            '"hist_gradient_boosting"]',
                            'candidates = ["linear", "hist_gradient_boosting"]\n'
                            'slices = [{column = "SEX"}, {column = "RAC1P"}]')
    (tmp_path / "tidal.toml").write_text(config)

    first = tidal(tmp_path, "run", "--executor", "process", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["model"] == "census:1" and summary["status"] == "blessed"
    assert summary["score"] > summary["baseline"]

    shown = json.loads(tidal(tmp_path, "models", "show", "census:1", "--json").stdout)
    slices = {row["slice"] for row in shown["metrics"]["slices"]}
    assert slices == {"(all)", "SEX", "RAC1P"}

    walked = json.loads(tidal(tmp_path, "lineage", "census@champion", "--json").stdout)
    assert [step["step"] for step in walked["steps"]][:3] == ["snapshot_data",
                                                              "validate_data", "split_data"]
    assert walked["dataset_hash"] == summary["snapshot"]

    again = json.loads(tidal(tmp_path, "run", "--json").stdout)
    assert again["ran"] == [] and again["model"] == "census:2"
