"""Dataset snapshots: a table frozen as Parquet in the artifact store, named by its sha256.

The first step of the standard pipeline. Training must be reproducible, and a model's
lineage must say exactly which rows it learnt from, so the data a run reads is copied into
the content-addressed :class:`~tidal.artifacts.store.ArtifactStore` and the sha256 of those
bytes *is the dataset version*: the same data gives the same hash (and is stored once), one
changed cell gives another hash, and reading a snapshot back verifies its bytes.

For the hash to mean "the data", the Parquet bytes must depend on the data only:

- every writer option is pinned (:data:`PARQUET_OPTIONS`), so a change of pyarrow's
  defaults cannot silently re-version every dataset;
- schema and field metadata are dropped (pandas writes its own version and index layout
  there, so a DataFrame and the equal Arrow table would otherwise differ);
- chunks are combined first (the writer's page boundaries follow the input's chunking, so
  the same rows read from a CSV in blocks and from a Parquet file could differ);
- rows keep their order and nothing is sorted: order is data (a time split depends on it).

What "the same data" means: the same column names in the same order, the same Arrow types
and the same values in the same row order. ``int32`` and ``int64`` columns of equal values
are different versions, on purpose: the schema step would see them differently too.
Parquet's footer records the writing library (``created_by = parquet-cpp-arrow version
X``) and nothing time-dependent, so the bytes are identical run after run; a pyarrow
upgrade may change them, which re-versions the data once (a new snapshot, same rows).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tidal.artifacts.store import ArtifactStore
from tidal.core.errors import ValidationError
from tidal.data.sources import DataReadError, open_source

#: Every Parquet writer option that affects the bytes, fixed. zstd level 3 compresses
#: these tables well and fast; version 2.6 keeps nanosecond timestamps; the page index,
#: checksums and content-defined chunking are off, as they are by default today.
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 1024 * 1024,
    "data_page_size": 1024 * 1024,
    "data_page_version": "1.0",
    "write_batch_size": 1024,
    "dictionary_pagesize_limit": 1024 * 1024,
    "use_byte_stream_split": False,
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
}


@dataclass(frozen=True)
class Snapshot:
    """One stored dataset version.

    ``sha256`` names the Parquet bytes in the artifact store and is the dataset version;
    ``source_name`` says where the rows came from (a path, ``"<DataFrame>"``, or a SQL URL
    with its password hidden) and ``query`` the SQL query for a SQL source.
    """

    sha256: str
    size: int
    rows: int
    columns: tuple[str, ...]
    source_name: str
    query: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for run records and lineage."""
        record = asdict(self)
        record["columns"] = list(self.columns)
        return record


def snapshot(source: Any, artifacts: ArtifactStore, *,
             columns: Sequence[str] | None = None) -> Snapshot:
    """Store ``source`` (a CSV/Parquet path, a DataFrame or an Arrow table) as a snapshot.

    ``columns`` keeps only those columns, in that order; a name the data lacks is a
    :class:`~tidal.core.errors.ValidationError` naming it.
    """
    opened = open_source(source)
    wanted = _wanted_columns(opened.name, opened.names, columns)
    return _store_table(opened.to_table(wanted), artifacts, opened.name)


def snapshot_sql(url: str, query: str, artifacts: ArtifactStore, *,
                 columns: Sequence[str] | None = None) -> Snapshot:
    """Run ``query`` through SQLAlchemy at ``url`` and store the result as a snapshot.

    The rows are read with SQLAlchemy directly and typed by pyarrow from the Python
    values, not through ``pandas.read_sql``: pandas turns an integer column with one NULL
    into floats, so the column's type (and the schema check after this step) would depend
    on whether today's rows happen to contain a NULL. Here it stays an integer column with
    a missing value. Rows keep the order the database returns them in, so a query whose
    result should be reproducible needs an ``ORDER BY``.
    """
    table, label = read_sql(url, query)
    wanted = _wanted_columns(label, table.column_names, columns)
    return _store_table(table.select(wanted), artifacts, label, query=query)


def read_sql(url: str, query: str) -> tuple[Any, str]:
    """The query's rows as a pyarrow.Table, and the URL with its password hidden (for
    messages and records); typed as :func:`snapshot_sql` explains."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    if not isinstance(query, str) or not query.strip():
        raise ValidationError("the SQL query is empty")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DataReadError(f"not a SQLAlchemy database URL: {exc}") from None
    label = parsed.render_as_string(hide_password=True)
    try:
        engine = create_engine(parsed)
    except (ArgumentError, ImportError) as exc:
        raise DataReadError(f"{label}: cannot open the database ({exc})") from None
    try:
        with engine.connect() as connection:
            result = connection.execute(text(query))
            if not result.returns_rows:
                raise DataReadError(f"{label}: the query returns no rows (is it a SELECT?)")
            names = [str(name) for name in result.keys()]
            rows = result.fetchall()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DataReadError(f"{label}: the query failed: {reason}") from None
    finally:
        engine.dispose()
    return _rows_to_table(label, names, rows), label


def load_snapshot(sha256: str, artifacts: ArtifactStore) -> Any:
    """The snapshot's rows as a pyarrow.Table, after verifying the stored bytes.

    A snapshot altered on disk raises :class:`~tidal.core.errors.IntegrityError` and a
    missing one :class:`~tidal.core.errors.NotFoundError`: a model is never trained on
    data other than the version its lineage names.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = artifacts.get_bytes(sha256)
    return pq.read_table(pa.BufferReader(data))


def _wanted_columns(label: str, names: Sequence[str],
                    columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return list(names)
    if isinstance(columns, str):
        raise ValidationError("columns must be a list of column names, not one string")
    wanted = list(columns)
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValidationError(f"{label}: no column {', '.join(map(repr, missing))} "
                              f"(it has {', '.join(names)})")
    if len(set(wanted)) != len(wanted):
        raise ValidationError("columns names a column more than once")
    if not wanted:
        raise ValidationError("columns is empty: a snapshot needs at least one column")
    return wanted


def _rows_to_table(label: str, names: list[str], rows: Sequence[Sequence[Any]]) -> Any:
    import pyarrow as pa

    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DataReadError(f"{label}: the query returns duplicated column names: "
                            f"{', '.join(duplicated)} (alias them)")
    arrays = []
    for position, name in enumerate(names):
        values = [row[position] for row in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataReadError(f"{label}: column {name!r} mixes value types that do not "
                                f"fit one column ({exc}); CAST it in the query") from None
    return pa.Table.from_arrays(arrays, names=names)


def _canonical(table: Any) -> Any:
    """The table with only what is data: no schema/field metadata, one chunk per column."""
    import pyarrow as pa

    schema = pa.schema([field.remove_metadata() for field in table.schema])
    return pa.Table.from_arrays(table.combine_chunks().columns, schema=schema)


def _store_table(table: Any, artifacts: ArtifactStore, source_name: str, *,
                 query: str | None = None) -> Snapshot:
    import pyarrow.parquet as pq

    canonical = _canonical(table)
    # through a temporary file, not a bytes buffer: the store hashes the file as it copies
    # it, so a large table is never held twice in memory
    descriptor, scratch = tempfile.mkstemp(prefix=".tidal-snapshot-", suffix=".parquet")
    os.close(descriptor)
    try:
        pq.write_table(canonical, scratch, **PARQUET_OPTIONS)
        stored = artifacts.put_file(scratch)
    finally:
        os.unlink(scratch)
    return Snapshot(sha256=stored.sha256, size=stored.size, rows=canonical.num_rows,
                    columns=tuple(canonical.column_names), source_name=source_name,
                    query=query)
