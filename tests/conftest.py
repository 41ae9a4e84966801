"""Shared fixtures: real stores on SQLite files and on the local PostgreSQL server.

PostgreSQL tests each get a fresh schema in the ``test`` database (dropped afterwards),
so they are isolated and start from an empty store, like a new project. When the server
cannot be reached they are skipped with a message, except under ``CI=true``, where they
fail: CI must run the PostgreSQL half of the suite.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

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
