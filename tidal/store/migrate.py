"""Create or upgrade the store's schema with Alembic, from code.

``upgrade_if_needed`` runs on first use of a store; ``tidal db upgrade`` calls
``upgrade`` explicitly. Both hold the database's write lock while they look at the
current revision and migrate, so two processes opening a new store at once do not race.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from tidal.core.errors import StoreError

from .database import WRITE_OPTION, Database, redact, store_errors

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: arbitrary constant key for pg_advisory_xact_lock: "tidal" in ASCII
_PG_LOCK_KEY = 0x746964616C


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {heads}")
    return heads[0]


def current_revision(db: Database) -> str | None:
    with store_errors(db.url), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database, target: str = "head") -> tuple[str | None, str]:
    """Migrate to ``target``; returns (revision before, revision after)."""
    check_known(current_revision(db), db)
    config = alembic_config()
    with store_errors(db.url), db.engine.connect().execution_options(
        **{WRITE_OPTION: True}
    ) as connection:
        with connection.begin():
            _lock(connection)
            before = MigrationContext.configure(connection).get_current_revision()
            config.attributes["connection"] = connection
            command.upgrade(config, target)
            after = MigrationContext.configure(connection).get_current_revision()
    return before, after or ""


def upgrade_if_needed(db: Database) -> None:
    current = current_revision(db)
    if current == head_revision():
        return
    check_known(current, db)
    upgrade(db)


def check_known(revision: str | None, db: Database) -> None:
    """Refuse a store whose schema was migrated by a newer Tidal than this one."""
    if revision is None:
        return
    known = {script.revision for script in ScriptDirectory.from_config(
        alembic_config()).walk_revisions()}
    if revision not in known:
        raise StoreError(
            f"the store at {redact(db.url)} has schema revision {revision!r}, newer than "
            f"this Tidal knows (up to {head_revision()!r}); upgrade tidal-ml to use it"
        )


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
