"""Acknowledged durability, end to end: `tidal serve` is killed with SIGKILL under load;
every request that got a 2xx is in the prediction log exactly once."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
from serve_harness import FEATURES, start_cli_server

import tidal
from tidal.serve.predlog import read_log


def test_every_acknowledged_prediction_survives_a_sigkill(trained_project: Path,
                                                          tmp_path: Path):
    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    with tidal.Project(folder) as project:
        project.set_deployment("elec2", "elec2:2")  # the forest: batching has work to do
    server, url = start_cli_server(folder)
    acknowledged: list[str] = []
    failures = collections.Counter()
    stop = threading.Event()
    try:
        record = {name: 0.5 for name in FEATURES}

        def load(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                n = 0
                while not stop.is_set():
                    request_id = f"w{worker}-{n}"
                    n += 1
                    try:
                        answer = http.post("/v1/predict/elec2", json=[record],
                                           headers={"x-request-id": request_id})
                    except httpx.HTTPError:
                        failures["connection"] += 1
                        continue
                    if answer.status_code == 200:
                        acknowledged.append(request_id)
                    else:
                        failures[answer.status_code] += 1

        threads = [threading.Thread(target=load, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stop.set()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert len(acknowledged) > 100, (len(acknowledged), failures)
    assert set(failures) <= {"connection"}  # only the kill itself, never a 4xx/5xx
    logged = collections.Counter(r.request_id for r in
                                 read_log(folder / ".tidal" / "predictions")
                                 if r.route == "stable")
    missing = [i for i in acknowledged if logged[i] == 0]
    assert not missing, f"{len(missing)} acknowledged predictions were lost"
    assert max(logged.values()) == 1  # exactly once
