"""`tidal serve --workers 2`: the workers serve, and /metrics counts every request
whichever worker answered it (Prometheus multiprocess mode)."""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import httpx
from serve_harness import FEATURES, start_cli_server

import tidal


def test_two_workers_share_the_load_and_the_metrics(trained_project: Path, tmp_path: Path):
    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    with tidal.Project(folder) as project:
        project.set_deployment("elec2", "elec2:1")
    server, url = start_cli_server(folder, "--workers", "2")
    try:
        record = {name: 0.5 for name in FEATURES}
        for _ in range(40):  # new connections: the kernel spreads them over the workers
            answer = httpx.post(f"{url}/v1/predict/elec2", json=[record], timeout=10)
            assert answer.status_code == 200, answer.text
        text = httpx.get(f"{url}/metrics", timeout=10).text
        counted = sum(float(value) for value in re.findall(
            r'^tidal_requests_total\{deployment="elec2",route="stable",status="2xx",'
            r'version="1"\} (\S+)$', text, flags=re.MULTILINE))
        assert counted == 40  # both workers' requests, whichever answered /metrics
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_each_server_counts_in_its_own_metrics_folder_and_dead_ones_are_swept(
        tmp_path: Path):
    """Two `tidal serve --workers N` of one project must not wipe or mix each other's
    counts: each has a folder of its own; folders of servers that are gone are removed."""
    import subprocess

    from tidal.cli_serve import _metrics_folder

    parent = tmp_path / "metrics"
    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = os.getppid()  # another server of this project, still running
    for pid in (gone.pid, alive):
        (parent / str(pid)).mkdir(parents=True)
        (parent / str(pid) / "counter_1.db").write_bytes(b"counts")
    mine = _metrics_folder(parent)
    assert mine == parent / str(os.getpid()) and not any(mine.iterdir())
    assert sorted(p.name for p in parent.iterdir()) == sorted([str(alive), str(os.getpid())])
    assert (parent / str(alive) / "counter_1.db").read_bytes() == b"counts"
