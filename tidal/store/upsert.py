"""INSERT ... ON CONFLICT (update, or do nothing) for the two dialects the store supports.

SQLite and PostgreSQL spell upserts the same way, but SQLAlchemy exposes them through
dialect-specific ``insert`` constructs; this picks the right one. Statements are built
once per dialect and shape and then reused: building them anew on every write cost more
than executing them, on the run-logging hot path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: Any,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where: Callable[[Any, Any], ColumnElement[bool]] | None = None,
) -> None:
    """Insert ``rows``; on a key conflict update the ``update`` columns (if ``where``).

    ``where(table, excluded)`` may restrict which conflicting rows are overwritten.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = _upsert_statement(dialect, table, tuple(keys), tuple(update), where)
    # Core executemany on the connection (the ORM bulk path costs ~3x more)
    session.connection().execute(statement, list(rows))


@functools.lru_cache(maxsize=64)
def _upsert_statement(
    dialect: str, table: Any, keys: tuple[str, ...], update: tuple[str, ...],
    where: Callable[[Any, Any], ColumnElement[bool]] | None,
) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: statement.excluded[name] for name in update},
        where=None if where is None else where(table.__table__.c, statement.excluded),
    )


def insert_new(session: Session, table: Any, rows: Sequence[dict[str, Any]],
                keys: Sequence[str]) -> int:
    """Insert the ``rows`` whose ``keys`` are not taken (ON CONFLICT DO NOTHING, so two
    writers adding the same rows at once never fail); returns how many were inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing(index_elements=list(keys))
    primary = table.__table__.primary_key.columns[0]
    return len(session.execute(statement.returning(primary), list(rows)).all())


def insert_rows(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Plain executemany INSERT through Core (the ORM bulk path costs ~3x more)."""
    if rows:
        session.connection().execute(_insert_statement(table), list(rows))


@functools.lru_cache(maxsize=64)
def _insert_statement(table: Any) -> Any:
    return table.__table__.insert()
