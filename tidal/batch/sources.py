"""What a batch job reads: a CSV or Parquet file, a folder of Parquet files, or the rows
of a SQL query, always in partitions of bounded size.

Files go through PyArrow's dataset reader, Parquet files a batch at a time (see
:func:`_parquet_batches`), so memory stays bounded whatever the file's size. A query
goes through SQLAlchemy with ``stream_results`` (a server-side cursor on PostgreSQL; SQLite
steps through its rows anyway), so its rows too are fetched a partition at a time. The
query is the user's own, run as written (a query tool, like ``psql``): no SQL is built
here from anything the user gave.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tidal.core.errors import NotFoundError, ValidationError

#: what makes ``--input`` a database: a SQLAlchemy URL such as ``sqlite:///x.db`` or
#: ``postgresql+psycopg://host/db``
_URL = re.compile(r"^[a-z][a-z0-9+]*://", re.IGNORECASE)


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and bool(_URL.match(location))


class Source(Protocol):
    """A table read in partitions."""

    @property
    def names(self) -> list[str]: ...

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]: ...

    def field(self, name: str) -> pa.Field: ...

    def known_rows(self) -> int | None:
        """The row count when it costs nothing to know (Parquet's metadata), else None."""

    def close(self) -> None: ...


def open_source(location: str | Path, query: str | None = None) -> Source:
    """The file or folder at ``location``, or the rows of ``query`` in the database at the
    SQLAlchemy URL ``location``."""
    if is_url(location):
        if not query:
            raise ValidationError("a database input needs a query (--query 'SELECT …')")
        return QuerySource(str(location), query)
    if query:
        raise ValidationError("--query is for a database input: give --input a SQLAlchemy "
                              "URL (e.g. sqlite:///data.db)")
    return FileSource(Path(location))


class FileSource:
    def __init__(self, path: Path) -> None:
        self.dataset = _dataset(path)

    @property
    def names(self) -> list[str]:
        return list(self.dataset.schema.names)

    def field(self, name: str) -> pa.Field:
        return self.dataset.schema.field(name)

    def known_rows(self) -> int | None:
        if isinstance(self.dataset.format, ds.ParquetFileFormat):
            return self.dataset.count_rows()
        return None

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
        if isinstance(self.dataset.format, ds.ParquetFileFormat):
            batches = _parquet_batches(self.dataset, columns, rows)
        else:
            # read ahead a little (decoding overlaps scoring), not pyarrow's default of
            # 16 batches and 4 files, which would hold that many partitions in memory
            batches = self.dataset.to_batches(columns=columns, batch_size=rows,
                                              batch_readahead=2, fragment_readahead=1)
        return _regrouped(_read(batches), rows)

    def close(self) -> None:
        return None


class QuerySource:
    """The rows of one SQL query, fetched a partition at a time. Column types come from
    the values (NUMERIC arrives as float64, as in pandas)."""

    def __init__(self, url: str, query: str) -> None:
        import sqlalchemy as sa

        try:
            self.engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as error:
            raise ValidationError(f"cannot use the database URL: {error}") from None
        try:
            self.connection = self.engine.connect().execution_options(stream_results=True)
            self.result = self.connection.execute(sa.text(query))
        except sa.exc.SQLAlchemyError as error:
            self.engine.dispose()
            raise ValidationError(f"the query failed: {first_line(error)}") from None
        if not self.result.returns_rows:
            self.close()
            raise ValidationError("the query returns no rows (it must be a SELECT)")
        self._names = list(self.result.keys())
        self._first: pa.RecordBatch | None = None  # fetched early, to learn the types
        self._taken = False
        self._partition_rows = 100_000

    @property
    def names(self) -> list[str]:
        return self._names

    def field(self, name: str) -> pa.Field:
        first = self._peek()
        if first is None:
            return pa.field(name, pa.string())
        return first.schema.field(name)

    def known_rows(self) -> int | None:
        return None

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
        if self._taken:
            raise RuntimeError("a query's rows can be read once")
        self._partition_rows = rows
        first = self._peek()
        self._taken = True
        if first is None:
            return
        yield first.select(columns)
        while True:
            batch = self._fetch(rows)
            if batch is None:
                return
            yield batch.select(columns)

    def _peek(self) -> pa.RecordBatch | None:
        if self._first is None and not self._taken:
            self._first = self._fetch(self._partition_rows)
        return self._first

    def _fetch(self, rows: int) -> pa.RecordBatch | None:
        import sqlalchemy as sa

        try:
            fetched = self.result.fetchmany(rows)
        except sa.exc.SQLAlchemyError as error:
            raise ValidationError(f"reading the query's rows failed: {first_line(error)}") \
                from None
        if not fetched:
            return None
        columns = list(zip(*fetched, strict=True))
        arrays = []
        for name, values in zip(self._names, columns, strict=True):
            try:
                arrays.append(_column(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                raise ValidationError(f"column {name!r} of the query holds values of mixed "
                                      f"types: {error}") from None
        return pa.RecordBatch.from_arrays(arrays, names=self._names)

    def close(self) -> None:
        """Release the cursor and connection (again: nothing happens)."""
        try:
            self.result.close()
            self.connection.close()
        finally:
            self.engine.dispose()


def _column(values: tuple[Any, ...]) -> pa.Array:
    if any(isinstance(v, Decimal) for v in values):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array(values)


def first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def _parquet_batches(dataset: ds.Dataset, columns: list[str],
                     rows: int) -> Iterator[pa.RecordBatch]:
    """Each Parquet file's rows, ``rows`` at a time, as the dataset's types.

    Read file by file with :meth:`pyarrow.parquet.ParquetFile.iter_batches`, through a
    small buffer and without pre-buffering: it decodes a batch at a time, where the
    dataset scanner decodes whole row groups and pre-buffers the column chunks of
    several. On 10 million rows in row groups of a million, the scanner held about
    500 MB; this holds about 30 MB, whatever the row groups' size, and is fast enough
    (about 14 million rows/s on one core) to stay out of a scoring job's way."""
    schema = pa.schema([dataset.schema.field(name) for name in columns])
    for path in dataset.files:
        with pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) as file:
            for batch in file.iter_batches(batch_size=rows, columns=columns):
                if batch.schema != schema:  # a file of the folder with other types
                    batch = pa.Table.from_batches([batch]).cast(schema).to_batches()[0]
                yield batch


def _dataset(source: Path) -> ds.Dataset:
    if not source.exists():
        raise NotFoundError(f"no input at {source}")
    if source.is_dir() or source.suffix.lower() == ".parquet":
        return ds.dataset(source, format="parquet")
    if source.suffix.lower() in (".csv", ".gz") and ".csv" in source.name.lower():
        try:
            return ds.dataset(source, format="csv")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:  # empty, or no header
            raise ValidationError(f"{source.name} cannot be read as CSV: {error}") from None
    raise ValidationError(f"{source.name}: give a .csv, a .parquet, a folder of Parquet "
                          "files or a database URL with --query")


def _regrouped(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Partitions of at most ``rows`` rows (the reader's batches regrouped)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _read(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a file that stops being readable midway (a CSV value that
    does not fit the type guessed from the first rows) is an input error, not a crash."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValidationError(f"the input cannot be read past this point: {error} (CSV "
                              "types are guessed from the first rows; convert the file to "
                              "Parquet with explicit types)") from None
