"""Shared fixtures: real stores on SQLite files and on the local PostgreSQL server.

PostgreSQL tests each get a fresh schema in the ``test`` database (dropped afterwards),
so they are isolated and start from an empty store, like a new project. When the server
cannot be reached they are skipped with a message, except under ``CI=true``, where they
fail: CI must run the PostgreSQL half of the suite.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tidal.core.clock import ManualClock
from tidal.project import Project

POSTGRES_URL = os.environ.get(
    "TIDAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKENDS = ["sqlite", "postgresql"]


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({reason}); the PostgreSQL " \
              "store tests need it (set TIDAL_TEST_POSTGRES_URL to use another server)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_engine():
    try:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except ModuleNotFoundError as exc:
        _postgres_unavailable(f"driver missing: {exc.name}")
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "unavailable"
        _postgres_unavailable(str(exc).splitlines()[0])
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_engine) -> Iterator[str]:
    """A URL whose connections live in a brand-new, empty schema."""
    schema = f"tidal_test_{secrets.token_hex(6)}"
    with postgres_engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with postgres_engine.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path: Path) -> str:
    """The store URL of a new, empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'tidal.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_700_000_000.0)


@pytest.fixture
def project(tmp_path: Path, store_url: str, clock: ManualClock) -> Iterator[Project]:
    """A project on each backend, with a manual clock and a local artifact root."""
    handle = Project(tmp_path, store_url=store_url,
                     artifact_root=str(tmp_path / "artifacts"), clock=clock, actor="tester")
    yield handle
    handle.close()


@pytest.fixture
def sqlite_project(tmp_path: Path, clock: ManualClock) -> Iterator[Project]:
    """A project on the default backend only (for tests about non-store behaviour)."""
    handle = Project(tmp_path, clock=clock, actor="tester")
    yield handle
    handle.close()


# -- a live model server (the serve and control tests) ---------------------------------------
# The project is trained once per session by the standard pipeline: a linear model as
# version 1 and a random forest as version 2 (both exported to ONNX and checked to 1e-5).
# Each test gets its own copy of the project folder (store, artifacts and all) and its own
# server, on a free port, so tests can change deployments freely.

@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    import pandas as pd
    from serve_harness import DATA

    from tidal.train.standard import run_standard

    folder = tmp_path_factory.mktemp("served")
    frame = pd.read_csv(DATA / "elec2.csv.gz").iloc[17_000:21_000]  # Victoria columns vary
    frame.to_csv(folder / "elec2.csv", index=False)
    config = ('[data]\ntarget = "target"\n[pipeline]\nsource = "elec2.csv"\n'
              'model = "elec2"\ncandidates = ["linear"]\n')
    (folder / "tidal.toml").write_text(config)
    with Project(folder) as project:
        run_standard(project, executor="inline", progress=False)  # elec2:1, ONNX
    (folder / "tidal.toml").write_text(config.replace('["linear"]', '["random_forest"]'))
    with Project(folder) as project:
        run_standard(project, executor="inline", progress=False)  # elec2:2
    return folder


@pytest.fixture
def served(trained_project: Path, tmp_path: Path, monkeypatch) -> Iterator[Any]:
    """Deployment ``elec2`` serving version 1 (ONNX), on a fresh copy of the project: a
    :class:`serve_harness.Running`."""
    import pandas as pd
    from serve_harness import Running, start_server

    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    project = Project(folder)
    project.set_deployment("elec2", "elec2:1")
    server, thread, url = start_server(folder, monkeypatch)
    rows = pd.read_csv(folder / "elec2.csv")
    try:
        yield Running(url, project, folder, rows, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        project.close()


class Receiver:
    """An HTTP server that answers the first ``failures`` POSTs with ``status``."""

    def __init__(self, failures: int = 0, status: int = 500, delay: float = 0.0) -> None:
        self.failures, self.status, self.delay = failures, status, delay
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                time.sleep(receiver.delay)
                if receiver.attempts <= receiver.failures:
                    self.send_response(receiver.status)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()
