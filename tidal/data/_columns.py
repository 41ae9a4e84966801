"""Arrow column helpers shared by schema inference and batch validation.

Both must agree on three rules, so they live in one place:

- the type vocabulary: an Arrow type maps to one of ``integer``, ``float``, ``boolean``,
  ``string``, ``datetime``, ``date`` (dictionary-encoded columns take their value type);
- what "missing" means: null, a float NaN, or an empty string (a CSV's empty field is
  read by PyArrow as ``""`` in a string column, while pandas would call it NaN);
- what an example value looks like in a report: JSON-safe (dates as ISO strings,
  non-finite floats as strings), at most a few distinct ones.

Everything here is column-wise (``pyarrow.compute``); nothing loops over rows.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: how many distinct offending values an anomaly shows
MAX_EXAMPLES = 5


def tidal_type(arrow_type: pa.DataType) -> str | None:
    """The schema type of an Arrow type, or None when the schema cannot describe it."""
    types = pa.types
    if types.is_dictionary(arrow_type):
        return tidal_type(arrow_type.value_type)
    if types.is_boolean(arrow_type):
        return "boolean"
    if types.is_integer(arrow_type):
        return "integer"
    if types.is_floating(arrow_type) or types.is_decimal(arrow_type):
        return "float"
    if types.is_string(arrow_type) or types.is_large_string(arrow_type):
        return "string"
    if types.is_timestamp(arrow_type):
        return "datetime"
    if types.is_date(arrow_type):
        return "date"
    return None


def decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column with dictionary encoding undone and decimals as float64."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_decimal(column.type):
        column = column.cast(pa.float64())
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    return column


def missing_mask(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a value is missing: null, NaN, or an empty string."""
    mask = pc.is_null(column, nan_is_null=True)
    if pa.types.is_string(column.type):
        mask = pc.or_kleene(mask, pc.equal(column, ""))
    return mask


def count_true(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def examples(values: pa.ChunkedArray | pa.Array, limit: int = MAX_EXAMPLES) -> list[Any]:
    """Up to ``limit`` distinct values, in order of first appearance, JSON-safe."""
    if len(values) == 0:
        return []
    distinct = pc.unique(values)
    return [json_safe(v) for v in distinct.slice(0, limit).to_pylist()]


def json_safe(value: Any) -> Any:
    """A value fit for JSON and YAML: plain numbers and strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
