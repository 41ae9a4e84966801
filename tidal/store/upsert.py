"""INSERT ... ON CONFLICT for the two dialects the store supports.

SQLite and PostgreSQL spell upserts the same way, but SQLAlchemy exposes them through
dialect-specific ``insert`` constructs; this picks the right one.
"""

from __future__ import annotations

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
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    target = table.__table__
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: statement.excluded[name] for name in update},
        where=None if where is None else where(target.c, statement.excluded),
    )
    # Core executemany on the connection: the statement compiles once and is cached
    session.connection().execute(statement, list(rows))


def insert_rows(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Plain executemany INSERT through Core (the ORM bulk path costs ~3x more)."""
    if rows:
        session.connection().execute(table.__table__.insert(), list(rows))
