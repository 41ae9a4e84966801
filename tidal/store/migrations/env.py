"""Alembic environment: runs migrations on the connection Tidal hands it.

Tidal calls Alembic from code (``tidal.store.migrate``), never from ``alembic.ini``, and
always passes an open connection in a write transaction, so concurrent first uses of an
empty database serialise: SQLite through ``BEGIN IMMEDIATE``, PostgreSQL through an
advisory lock taken by the caller.
"""

from alembic import context

from tidal.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run Tidal migrations through `tidal db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
