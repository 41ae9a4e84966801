"""The batch tests' project: the trained project (a logistic regression exported to ONNX
as elec2:1, a random forest as elec2:2), copied, with a deployment ``elec2`` serving
elec2:1, and 2,500 Elec2 rows with a key column ``meter``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import tidal


@pytest.fixture
def scoring(trained_project: Path, tmp_path: Path):
    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    project = tidal.Project(folder)
    project.set_deployment("elec2", "elec2:1")
    rows = pd.read_csv(folder / "elec2.csv").iloc[:2_500].reset_index(drop=True)
    rows.insert(0, "meter", [f"m{i}" for i in range(len(rows))])
    yield project, rows, tmp_path
    project.close()
