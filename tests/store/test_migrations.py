"""The schema is code: migrations build it from empty, and they match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from tidal.store import migrate
from tidal.store.database import Database
from tidal.store.models import Base


def test_upgrade_from_an_empty_database(store_url):
    db = Database(store_url)
    assert migrate.current_revision(db) is None
    before, after = migrate.upgrade(db)
    assert (before, after) == (None, migrate.head_revision())
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert migrate.upgrade(db) == (after, after)  # running again changes nothing
    db.dispose()


def test_migrations_and_models_agree(store_url):
    db = Database(store_url)
    migrate.upgrade(db)
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    db.dispose()
    assert differences == [], f"models differ from migrations: {differences}"


def test_first_use_creates_the_schema(project):
    assert project.tracking.count_runs() == 0
    assert migrate.current_revision(project.db) == migrate.head_revision()


def test_a_store_from_a_newer_tidal_is_refused_clearly(store_url):
    import pytest
    from sqlalchemy import text

    from tidal.core.errors import StoreError

    db = Database(store_url)
    migrate.upgrade(db)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    fresh = Database(store_url)
    with pytest.raises(StoreError, match="newer than this Tidal knows"):
        fresh.ensure_schema()
    with pytest.raises(StoreError, match="upgrade tidal-ml"):
        migrate.upgrade(fresh)
    db.dispose()
    fresh.dispose()


def test_the_head_revision_constant_is_alembics_head():
    """Opening a store skips Alembic when the store is at ``HEAD_REVISION``: a new
    migration must move that constant too, or stores would never be upgraded."""
    from tidal.store.database import HEAD_REVISION

    assert HEAD_REVISION == migrate.head_revision()
