"""Connections to the metadata store, and transactions that survive concurrent writers.

SQLite allows one writer at a time. A transaction that starts as a reader and later
writes can fail at once with "database is locked" (the busy handler is not consulted
when upgrading a read lock), so write transactions here start with ``BEGIN IMMEDIATE``
and wait for the lock up front, under the busy timeout. Reads use a deferred ``BEGIN``
and, in WAL mode, never block writers. On both SQLite and PostgreSQL a transient lock or
serialization failure is retried with backoff; only if that persists does the user see a
:class:`~tidal.core.errors.StoreError`, with a message saying what to do.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, OperationalError
from sqlalchemy.orm import Session

from tidal.core.errors import StoreError, ValidationError
from tidal.core.finite import finite_json

T = TypeVar("T")

#: execution option that marks a connection as about to write
WRITE_OPTION = "tidal_write"
#: the newest migration's revision (tests check it equals Alembic's head); a store at it
#: needs no migration, so opening it does not import Alembic
HEAD_REVISION = "0010"
MAX_ATTEMPTS = 8

_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock timeout
_TRANSIENT_SQLITE_MESSAGES = ("database is locked", "database is busy", "database table is locked")


class Database:
    """One metadata store: an engine plus read and write transactions.

    ``transact`` is the only way to write: it runs a function in a write transaction and
    re-runs it when the database reports a transient conflict, so the function must only
    touch the database (no side effects elsewhere).
    """

    def __init__(self, url: str, *, busy_timeout: float = 30.0, echo: bool = False) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self.engine = create_store_engine(url, busy_timeout=busy_timeout, echo=echo)
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    def ensure_schema(self) -> None:
        """Create or upgrade the schema on first use (once per process)."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                with store_errors(self.url, retryable=False):
                    if self._stored_revision() != HEAD_REVISION:
                        # Alembic is imported only when there is something to migrate
                        # (it costs a fifth of a second on every CLI call otherwise)
                        from .migrate import upgrade_if_needed

                        upgrade_if_needed(self)
                self._schema_ready = True

    def _stored_revision(self) -> str | None:
        """The schema revision recorded in the store (None: a new or unmigrated store)."""
        from sqlalchemy import inspect, text

        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(
                text("SELECT version_num FROM alembic_version")).scalar()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (no retries needed: WAL readers never wait on writers)."""
        self.ensure_schema()
        with store_errors(self.url), Session(self.engine, expire_on_commit=False) as session:
            yield session

    def transact(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in one write transaction, retrying transient conflicts."""
        self.ensure_schema()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with store_errors(self.url, retryable=True):
                    with Session(self._write_engine, expire_on_commit=False) as session:
                        with session.begin():
                            return work(session)
            except _Retry:
                if attempt == MAX_ATTEMPTS:
                    break
                time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + random.random()))
        raise StoreError(
            f"the metadata store at {redact(self.url)} stayed locked by other writers after "
            f"{MAX_ATTEMPTS} attempts; if many processes write at once, raise "
            "[store] busy_timeout in tidal.toml or move the project to PostgreSQL"
        )

    def dispose(self) -> None:
        self.engine.dispose()


class _Retry(Exception):
    """Internal: the transaction hit a transient conflict and may be retried."""


@contextmanager
def store_errors(url: str, retryable: bool = False) -> Iterator[None]:
    """Turn driver errors a user can act on into StoreError (or an internal retry)."""
    try:
        yield
    except DBAPIError as exc:
        if retryable and is_transient(exc):
            raise _Retry() from exc
        if "file is not a database" in str(exc.orig):
            raise StoreError(f"the metadata store at {redact(url)} is not a SQLite "
                             "database (a damaged or foreign file)") from None
        if isinstance(exc, DataError):  # a value the database cannot hold (PostgreSQL:
            reason = str(exc.orig).strip().splitlines()[0]  # NUL in text, too long ...)
            raise ValidationError(f"the metadata store refused a value: {reason}") from None
        if isinstance(exc, OperationalError):
            if is_transient(exc):
                message = f"the metadata store at {redact(url)} is busy: {exc.orig}"
                raise StoreError(message) from exc
            if _is_connection_failure(exc):
                reason = str(exc.orig).strip().splitlines()[0]
                raise StoreError(
                    f"cannot reach the metadata store at {redact(url)}: {reason}"
                ) from None
        raise


def is_transient(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    if any(text in message for text in _TRANSIENT_SQLITE_MESSAGES):
        return True
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _is_connection_failure(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return any(
        text in message
        for text in ("connection refused", "could not connect", "unable to open database",
                     "connection failed", "does not exist", "timeout expired")
    )


def redact(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def store_json(value: Any) -> str:
    """The JSON text of a JSON column, the same on every backend.

    PostgreSQL refuses NaN and infinities in JSON (SQLite takes them), so a rollout's
    analysis with an infinite distance could not be stored there, and the rollback that
    analysis called for failed with it. Non-finite numbers are stored as the strings
    "nan", "inf" and "-inf" instead, as :func:`tidal.store.registry.json_safe` does for
    metrics."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(finite_json(value), allow_nan=False)


def create_store_engine(url: str, *, busy_timeout: float = 30.0, echo: bool = False) -> Engine:
    """An engine tuned for the store: WAL and immediate write locks on SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database, busy_timeout, echo)
    if backend == "postgresql":
        if parsed.get_driver_name() in ("psycopg2", "", None) and "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, echo=echo, pool_pre_ping=True,
                                 json_serializer=store_json)
        except ModuleNotFoundError:
            raise StoreError(
                "PostgreSQL needs the psycopg driver: pip install 'tidal-ml[postgres]'"
            ) from None
    raise StoreError(f"unsupported store backend {backend!r}: use sqlite:/// or postgresql://")


def _sqlite_engine(url: str, database: str | None, busy_timeout: float, echo: bool) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, echo=echo, connect_args={"timeout": busy_timeout, "check_same_thread": False},
        json_serializer=store_json,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ilike is the other)
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.close()
        # SQLite's lower() folds ASCII letters only; PostgreSQL's folds all of Unicode,
        # so "ilike 'äpfel%'" found "Äpfel" there and not here
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        writing = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine
