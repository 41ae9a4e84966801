"""Reading tabular data column by column: CSV, Parquet, a pandas DataFrame or an Arrow table.

Everything in ``data/`` reads through :func:`open_source` so that one rule holds
everywhere: Parquet is read one column at a time (a 1-million-row file never sits in
memory whole, which keeps drift and profiling memory flat), a CSV is parsed once by
PyArrow's multithreaded reader, and a file that cannot be read is a
:class:`DataReadError` naming the file and the reason, never a traceback.

PyArrow is imported here, not at ``import tidal``: a serving replica never loads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.core.errors import ValidationError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


class DataReadError(ValidationError):
    """A data file could not be read at all (missing, unreadable, corrupt, unknown kind)."""


@dataclass
class TableSource:
    """Columns of one table, read lazily (Parquet) or once (CSV, in-memory frames).

    ``name`` is what error messages and reports call the data: the file path, or
    ``"<DataFrame>"`` for in-memory data.
    """

    name: str
    names: list[str]
    num_rows: int
    _parquet: Path | None = None  # the Parquet file, read one column at a time
    _table: Any = None  # pyarrow.Table when the whole table is in memory
    _schema: Any = field(default=None, repr=False)

    @property
    def arrow_schema(self) -> Any:
        """The pyarrow.Schema (names and types) without reading any data."""
        return self._schema

    def column(self, name: str) -> Any:
        """One column as a pyarrow.ChunkedArray."""
        if name not in self.names:
            raise DataReadError(f"{self.name}: no column {name!r}")
        if self._table is not None:
            return self._table.column(name)
        try:
            # a reader per call: ParquetFile objects are not safe to share between threads
            return _parquet_reader(self._parquet).read(columns=[name]).column(name)
        except Exception as exc:  # noqa: BLE001 - any decode failure is a corrupt file
            raise DataReadError(f"cannot read column {name!r} of {self.name}: "
                                f"{_reason(exc)}") from exc

    def columns(self, names: Sequence[str] | None = None) -> Iterator[tuple[str, Any]]:
        """(name, pyarrow.ChunkedArray) pairs, one column in memory at a time."""
        for name in names if names is not None else self.names:
            yield name, self.column(name)

    def to_table(self, names: Sequence[str] | None = None) -> Any:
        """The whole table (or the named columns) as a pyarrow.Table."""
        import pyarrow as pa

        wanted = list(names if names is not None else self.names)
        if self._table is not None:
            return self._table.select(wanted)
        return pa.table({name: self.column(name) for name in wanted})


def open_source(source: Any) -> TableSource:
    """Open a CSV/Parquet path, a pandas DataFrame or a pyarrow Table for reading."""
    import pyarrow as pa

    if isinstance(source, TableSource):
        return source
    if isinstance(source, pa.Table):
        return _in_memory("<Table>", source)
    if _is_dataframe(source):
        try:
            table = pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataReadError(f"cannot convert the DataFrame: {_reason(exc)}") from exc
        return _in_memory("<DataFrame>", table)
    if isinstance(source, str | Path):
        return _open_file(Path(source))
    raise DataReadError(f"cannot read data from a {type(source).__name__}: give a CSV or "
                        "Parquet path, a pandas DataFrame or a pyarrow Table")


def _open_file(path: Path) -> TableSource:
    label = str(path)
    if not path.exists():
        raise DataReadError(f"{label}: no such file")
    if path.is_dir():
        raise DataReadError(f"{label}: is a folder, not a data file")
    lower = path.name.lower()
    try:
        if lower.endswith(PARQUET_SUFFIXES):
            return _open_parquet(label, path)
        if lower.endswith(CSV_SUFFIXES):
            return _open_csv(label, path, delimiter="\t" if ".tsv" in lower else ",")
    except DataReadError:
        raise
    except PermissionError as exc:
        raise DataReadError(f"{label}: permission denied") from exc
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
        raise DataReadError(f"{label}: cannot read it ({_reason(exc)})") from exc
    raise DataReadError(f"{label}: unknown file kind; use .csv, .csv.gz, .tsv or .parquet")


def _open_parquet(label: str, path: Path) -> TableSource:
    parquet = _parquet_reader(path)
    schema = parquet.schema_arrow
    _refuse_duplicates(label, list(schema.names))
    return TableSource(label, list(schema.names), parquet.metadata.num_rows,
                       _parquet=path, _schema=schema)


def _parquet_reader(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path)


def _open_csv(label: str, path: Path, delimiter: str) -> TableSource:
    import pyarrow.csv as pacsv

    if path.stat().st_size == 0:
        raise DataReadError(f"{label}: the file is empty (not even a header line)")
    # empty fields and NA/NaN/null markers are missing values in text columns too
    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                           convert_options=convert)
    if table.num_columns == 1:
        # in a one-column file an empty line is a missing value, not a line to skip
        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(
            delimiter=delimiter, ignore_empty_lines=False), convert_options=convert)
    return _in_memory(label, table)


def _in_memory(label: str, table: Any) -> TableSource:
    names = [str(name) for name in table.column_names]
    _refuse_duplicates(label, names)
    return TableSource(label, names, table.num_rows, _table=table, _schema=table.schema)


def _refuse_duplicates(label: str, names: list[str]) -> None:
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DataReadError(f"{label}: duplicated column names: {', '.join(duplicated)}")


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "dtypes")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
