"""Helpers for the server tests: a live server on a free port of 127.0.0.1, in a thread
of the test process, and a way to wait for something to become true."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn

import tidal

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TOKEN = "test-admin-token"
FEATURES = [f"feat_{i}" for i in range(1, 7)]


@dataclass
class Running:
    """A live server: its URL, its project, the rows it was trained on."""

    url: str
    project: tidal.Project
    folder: Path
    rows: pd.DataFrame
    server: uvicorn.Server

    def client(self, **options) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[uvicorn.Server,
                                                                         threading.Thread, str]:
    from tidal.serve.app import create_app  # here: conftest also serves the log's tests

    monkeypatch.setenv("TIDAL_ADMIN_TOKEN", TOKEN)
    port = free_port()
    app = create_app(tidal.Project(folder))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on", loop="asyncio"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def wait_until(condition, timeout: float = 5.0, interval: float = 0.05) -> float:
    """Seconds until ``condition()`` held (AssertionError after ``timeout``)."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
    return time.monotonic() - began


def start_cli_server(folder: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`tidal serve` in its own process group on a free port, once it reports ready;
    returns the process and its URL (stop it with ``os.killpg``)."""
    port = free_port()
    env = {**os.environ, "TIDAL_PROJECT_DIR": str(folder), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "tidal", "serve", "--port", str(port),
                               *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"tidal serve exited: {server.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            os.killpg(server.pid, signal.SIGKILL)
            raise RuntimeError("tidal serve did not become ready in 60 s")
        time.sleep(0.1)
