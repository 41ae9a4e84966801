"""What one column reduces to for drift tests: sorted numbers, or counts per category.

A column arrives as a PyArrow array; it leaves as either the sorted finite values
(numeric) or the distinct values with their counts (categorical), plus how many entries
were missing. Missing means null, NaN or +-inf, as in Evidently, which drops all three
before testing. Every drift test, and the distribution plot of the report, works from
this reduction, so each column is converted and sorted exactly once.

Numbers are read straight from Arrow buffers and categories are counted by Arrow's
``value_counts``; neither path imports pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["numeric", "categorical"]


@dataclass
class ColumnSample:
    kind: Kind
    #: entries present in the column, missing ones included
    total: int
    missing: int
    #: numeric: the finite values, sorted
    values: np.ndarray | None = None
    #: categorical: distinct values (as text, sorted) and how often each occurs
    keys: np.ndarray | None = None
    counts: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of values the tests see (missing ones left out)."""
        return self.total - self.missing

    def value_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values and their counts; for numbers, straight from the sorted run."""
        if self.keys is not None and self.counts is not None:
            return self.keys, self.counts
        assert self.values is not None
        values = self.values
        if values.size == 0:
            return values, np.zeros(0)
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
        counts = np.diff(np.append(starts, values.size)).astype(float)
        return values[starts], counts

    def distinct(self, cap: int | None = None) -> int:
        """Number of distinct values (exact; cheap on sorted numbers)."""
        if self.keys is not None:
            return len(self.keys)
        assert self.values is not None
        if self.values.size == 0:
            return 0
        return int(np.count_nonzero(self.values[1:] != self.values[:-1])) + 1


def arrow_kind(arrow_type: Any) -> Kind | None:
    """numeric for integers and floats, categorical for text, dictionaries and booleans,
    None for anything a drift test cannot compare (dates, times, nested values)."""
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            or pa.types.is_dictionary(arrow_type) or pa.types.is_boolean(arrow_type)):
        return "categorical"
    return None


def reduce_column(column: Any, kind: Kind) -> ColumnSample:
    """Reduce a pyarrow (Chunked)Array to a :class:`ColumnSample` of the given kind."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = len(column)
    present = pc.drop_null(column)
    if kind == "numeric":
        values = _as_float(present)
        finite = np.isfinite(values)
        values = np.sort(values if finite.all() else values[finite])
        return ColumnSample(kind, total, total - values.size, values=values)
    if pa.types.is_dictionary(present.type):
        present = present.cast(present.type.value_type)
    if not (pa.types.is_string(present.type) or pa.types.is_large_string(present.type)):
        present = present.cast(pa.string())
    counted = pc.value_counts(present)
    keys = np.array(counted.field("values").to_pylist(), dtype=str)
    counts = counted.field("counts").to_numpy().astype(float)
    order = np.argsort(keys)
    return ColumnSample(kind, total, total - len(present), keys=keys[order],
                        counts=counts[order])


def _as_float(array: Any) -> np.ndarray:
    """A float64 view of null-free values (a copy only when chunks or the type demand it).

    Read straight from the Arrow buffer: ``Array.to_numpy`` imports pandas (about 40 MB
    and a quarter of a second) even for a zero-copy view.
    """
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if not pa.types.is_float64(array.type):
        array = array.cast(pa.float64())
    if len(array) == 0:
        return np.zeros(0)
    return np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array),
                         offset=array.offset * 8)
