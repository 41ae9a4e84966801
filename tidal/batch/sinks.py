"""Where a batch job's scores go, atomically: a Parquet file or a SQL table.

Both write aside and move in at the end: a Parquet file under a hidden temporary name,
renamed over the final one; a table's rows in a local file, inserted in one transaction
at the end. A job that fails drops what it wrote, so readers see yesterday's output or
today's whole one, never a part.

Table names come from the user: each is checked against a plain-identifier pattern, and
every statement is a SQLAlchemy construct (the dialect quotes the name).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from tidal.batch.sources import first_line
from tidal.core.errors import ConflictError, ValidationError
from tidal.serve.predparts import dictionary_columns

IF_EXISTS = ("fail", "replace", "append")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


class Sink(Protocol):
    """A table written in parts that appears whole at :meth:`commit`."""

    where: str

    def write(self, table: pa.Table) -> None: ...

    def commit(self, empty: pa.Schema) -> None: ...

    def abort(self) -> None: ...


class ParquetSink:
    def __init__(self, path: Path, job: str) -> None:
        self.path = path
        self.where = str(path)
        self.partial = path.with_name(f".{path.name}.{job}.partial")
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.partial, table.schema, compression="zstd",
                                            use_dictionary=dictionary_columns(table.schema))
        self._writer.write_table(_conforming(table, self._writer.schema))

    def commit(self, empty: pa.Schema) -> None:
        """Move the written file in (an output with no rows when nothing was written)."""
        if self._writer is None:
            pq.write_table(empty.empty_table(), self.partial)
        else:
            self._writer.close()
            self._writer = None
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.partial.unlink(missing_ok=True)


class TableSink:
    """A SQL table at a SQLAlchemy URL; ``if_exists`` says what to do with a table of
    that name: ``fail`` (checked before any scoring), ``replace`` it, or ``append`` to it
    (its columns must include the output's).

    The rows wait in a local Parquet file until :meth:`commit`, which writes them in one
    transaction (create or replace the table, insert): the table changes all at once or
    not at all, no staging table is left behind by a crash, and the job's own query may
    read the same SQLite file while the job runs (SQLite lets no one write while a
    reader streams)."""

    def __init__(self, url: str, table: str, job: str, *, if_exists: str = "fail",
                 columns: list[str] | None = None) -> None:
        import sqlalchemy as sa

        if not _IDENTIFIER.match(table or ""):
            raise ValidationError(f"table name {table!r}: use letters, digits and _ "
                                  "(starting with a letter or _), at most 63 characters")
        if if_exists not in IF_EXISTS:
            raise ValidationError(f"if_exists {if_exists!r}: choose one of "
                                  f"{', '.join(IF_EXISTS)}")
        try:
            self.engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as error:
            raise ValidationError(f"cannot use the output database: {error}") from None
        try:  # what is there now (the connections are closed again until commit)
            inspector = sa.inspect(self.engine)
            exists = inspector.has_table(table)
            present = {c["name"] for c in inspector.get_columns(table)} if exists else set()
        except sa.exc.SQLAlchemyError as error:
            raise ValidationError(f"cannot use the output database: {first_line(error)}") \
                from None
        finally:
            self.engine.dispose()
        self.table, self.if_exists = table, if_exists
        self.where = f"{self.engine.url.render_as_string(hide_password=True)} table {table}"
        if exists and if_exists == "fail":
            raise ConflictError(f"table {table} exists: choose --if-exists replace or append")
        missing = [c for c in columns or [] if c not in present]
        if exists and if_exists == "append" and missing:
            raise ValidationError(f"cannot append to {table}: it has no column "
                                  f"{', '.join(map(repr, missing))}")
        self._folder = Path(tempfile.mkdtemp(prefix=f"tidal-{job}-"))
        self._rows = ParquetSink(self._folder / "rows.parquet", job)

    def write(self, table: pa.Table) -> None:
        self._rows.write(table)

    def commit(self, empty: pa.Schema) -> None:
        """The rows into the table, in one transaction."""
        import sqlalchemy as sa

        self._rows.commit(empty)
        rows = pq.ParquetFile(self._rows.path)
        try:
            with self.engine.begin() as connection:
                exists = sa.inspect(connection).has_table(self.table)
                if exists and self.if_exists == "fail":
                    raise ConflictError(f"table {self.table} appeared while the job ran")
                if exists and self.if_exists == "append":
                    target = sa.Table(self.table, sa.MetaData(), autoload_with=connection)
                else:
                    if exists:
                        sa.Table(self.table, sa.MetaData()).drop(connection)
                    target = sa.Table(self.table, sa.MetaData(), *(
                        sa.Column(f.name, _sql_type(f.type)) for f in rows.schema_arrow))
                    target.create(connection)
                for batch in rows.iter_batches(batch_size=10_000):
                    connection.execute(sa.insert(target), batch.to_pylist())
        except sa.exc.SQLAlchemyError as error:
            raise ValidationError(f"could not write table {self.table}: "
                                  f"{first_line(error)}") from None
        finally:
            rows.close()
            self.abort()

    def abort(self) -> None:
        self._rows.abort()
        shutil.rmtree(self._folder, ignore_errors=True)
        self.engine.dispose()


def _sql_type(kind: pa.DataType) -> Any:
    import sqlalchemy as sa

    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_integer(kind):
        return sa.BigInteger()
    if pa.types.is_floating(kind):
        return sa.Double()
    if pa.types.is_timestamp(kind):
        return sa.DateTime(timezone=kind.tz is not None)
    if pa.types.is_date(kind):
        return sa.Date()
    return sa.Text()


def _conforming(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """``table`` in the types of the first part written (a key column whose first
    partition was all null, say); a value that does not fit is an input error."""
    if schema is None or table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise ValidationError(f"the output's columns changed type between partitions: "
                              f"{error}") from None
