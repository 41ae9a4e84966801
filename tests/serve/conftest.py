"""Fixtures for the server tests: a project with real models trained on Elec2, and a
real server over a fresh copy of it.

The project is trained once per session by the standard pipeline: a linear model as
version 1 and a random forest as version 2 (both exported to ONNX and checked to 1e-5). Each
test gets its own copy of the project folder (store, artifacts and all) and its own
server, on a free port, so tests can change deployments freely.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from serve_harness import DATA, Running, start_server

import tidal
from tidal.train.standard import run_standard


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    frame = pd.read_csv(DATA / "elec2.csv.gz").iloc[17_000:21_000]  # Victoria columns vary
    frame.to_csv(folder / "elec2.csv", index=False)
    config = ('[data]\ntarget = "target"\n[pipeline]\nsource = "elec2.csv"\n'
              'model = "elec2"\ncandidates = ["linear"]\n')
    (folder / "tidal.toml").write_text(config)
    with tidal.Project(folder) as project:
        run_standard(project, executor="inline", progress=False)  # elec2:1, ONNX
    (folder / "tidal.toml").write_text(config.replace('["linear"]', '["random_forest"]'))
    with tidal.Project(folder) as project:
        run_standard(project, executor="inline", progress=False)  # elec2:2
    return folder


@pytest.fixture
def served(trained_project: Path, tmp_path: Path, monkeypatch) -> Iterator[Running]:
    """Deployment ``elec2`` serving version 1 (ONNX), on a fresh copy of the project."""
    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    project = tidal.Project(folder)
    project.set_deployment("elec2", "elec2:1")
    server, thread, url = start_server(folder, monkeypatch)
    rows = pd.read_csv(folder / "elec2.csv")
    try:
        yield Running(url, project, folder, rows, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        project.close()


