"""Bulk reads for many runs at once, straight through the database driver.

Search results are loaded with one query for the runs on the page (their summaries hold
params, metrics and tags; see :mod:`tidal.store.summary`) and, for a single run, one for
its artifacts. Through SQLAlchemy those reads spent more time building ``Row`` objects
and coercing a long ``IN`` list than the database spent answering. Here each
statement is a constant; the run ids travel as one bound parameter (a JSON array for
SQLite's ``json_each``, an array for PostgreSQL's ``unnest``), and the driver's plain
tuples come back.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection

#: how each dialect spells "the set of ids in this one parameter"
_ID_SET = {
    "sqlite": "(SELECT value FROM json_each(?))",
    "postgresql": "(SELECT unnest(CAST(%s AS text[])))",
}


def fetch_for_runs(
    connection: Connection, statement: str, run_ids: list[str]
) -> list[tuple[Any, ...]]:
    """Run ``statement`` (which holds ``{ids}`` where the id set goes) for ``run_ids``."""
    dialect = connection.dialect.name
    sql = statement.format(ids=_ID_SET[dialect])
    parameter: Any = json.dumps(run_ids) if dialect == "sqlite" else run_ids
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, (parameter,))
        return cursor.fetchall()
    finally:
        cursor.close()


RUNS = (
    "SELECT r.id, r.experiment_id, e.name, r.name, r.status, r.start_time, r.end_time, "
    "r.actor, r.source, r.git_commit, r.git_dirty_hash, r.python_version, r.packages, "
    "r.summary "
    "FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id IN {ids}"
)
ARTIFACTS = (
    "SELECT run_id, name, sha256, size, created_at FROM run_artifacts "
    "WHERE run_id IN {ids} ORDER BY name"
)
