"""Validate a batch against a schema: a list of anomalies, never an exception.

A bad batch is the normal business of a data check, so :func:`validate` returns a
:class:`ValidationResult` whatever the batch holds; only a file that cannot be read at all
raises (:class:`~tidal.data.sources.DataReadError`). Each :class:`Anomaly` says what is
wrong, in which column, for how many rows, with up to five distinct offending values.

Checks run column by column with ``pyarrow.compute`` (no loop over rows), so a
1-million-row batch of 25 columns validates in about a second.

Type compatibility is lenient where no information is lost (TFDV's spirit):

- ``integer`` data in a ``float`` column is fine (widening);
- ``float`` data in an ``integer`` column is fine when every value is integral (pandas
  turns an integer column with a missing value into floats); non-integral values are
  ``wrong_type``;
- numbers written as strings (a CSV column with one stray word) are parsed: the values
  that are not numbers are ``wrong_type``, the others are range-checked;
- ``integer`` or ``boolean`` data in a ``string`` column is compared as text (codes read
  as numbers), so the domain check still applies;
- ``date`` and ``datetime`` accept each other and ISO-8601 strings;
- ``boolean`` accepts integers 0 and 1;
- a column whose values are all missing has no type to be wrong about.

Missing values (null, NaN, empty string) are counted once per column: ``not_nullable``
when the schema allows none, else ``too_many_missing`` above ``max_missing``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tidal.core.errors import ValidationError

from ._columns import count_true, decoded, examples, missing_mask, tidal_type
from .schema import ColumnSchema, Schema
from .sources import open_source

#: every kind of anomaly and what it means
ANOMALY_KINDS: dict[str, str] = {
    "empty_batch": "the batch has no rows",
    "missing_column": "a column of the schema is absent from the batch",
    "unexpected_column": "the batch has a column the schema does not know",
    "wrong_type": "values of a type the schema's column cannot hold",
    "not_nullable": "missing values in a column that allows none",
    "too_many_missing": "a larger fraction of missing values than max_missing",
    "out_of_range": "numbers below min or above max",
    "unknown_category": "values outside the column's domain",
}

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_ISO_TIME = (r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
             r"(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(frozen=True)
class Anomaly:
    """One problem of a batch: its kind, column, affected rows and example values."""

    kind: str
    column: str | None
    count: int
    message: str
    examples: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return self.message


@dataclass
class ValidationResult:
    """The anomalies of one batch; ``ok`` when there are none."""

    source: str
    num_rows: int
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def find(self, kind: str, column: str | None = None) -> list[Anomaly]:
        """The anomalies of ``kind`` (and of ``column`` when given)."""
        return [a for a in self.anomalies
                if a.kind == kind and (column is None or a.column == column)]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.num_rows, "ok": self.ok,
                "anomalies": [a.to_dict() for a in self.anomalies]}

    def summary(self) -> str:
        """One line for the verdict, then one line per anomaly."""
        if self.ok:
            return f"{self.source}: {self.num_rows:,} rows, no anomalies"
        lines = [f"{self.source}: {self.num_rows:,} rows, {len(self.anomalies)} anomalies"]
        for anomaly in self.anomalies:
            shown = f" (e.g. {', '.join(map(repr, anomaly.examples))})" if anomaly.examples else ""
            lines.append(f"  {anomaly.kind}: {anomaly.message}{shown}")
        return "\n".join(lines)

    def raise_for_anomalies(self) -> ValidationResult:
        """Raise ValidationError listing the anomalies (for callers that must stop)."""
        if not self.ok:
            raise ValidationError(self.summary())
        return self


def validate(source: Any, schema: Schema, *,
             exclude_roles: Collection[str] = ()) -> ValidationResult:
    """Check ``source`` (path, DataFrame or Arrow table) against ``schema``.

    Columns whose role is in ``exclude_roles`` are neither required nor checked (e.g.
    ``("target",)`` for a batch of serving inputs, which has no labels yet).
    """
    table = open_source(source)
    result = ValidationResult(table.name, table.num_rows)
    if table.num_rows == 0:
        result.anomalies.append(Anomaly("empty_batch", None, 0, f"{table.name} has no rows"))
        return result
    present = set(table.names)
    for column in schema.columns:
        if column.role in exclude_roles:
            continue
        if column.name not in present:
            result.anomalies.append(Anomaly(
                "missing_column", column.name, table.num_rows,
                f"{column.name}: the column is missing ({column.type}, {column.role})"))
            continue
        result.anomalies.extend(check_column(column, table.column(column.name)))
    for name in table.names:
        if name not in schema:
            values = decoded(table.column(name))
            result.anomalies.append(Anomaly(
                "unexpected_column", name, table.num_rows,
                f"{name}: the schema has no such column",
                examples(values.filter(pc.invert(missing_mask(values))))))
    return result


def check_column(column: ColumnSchema, data: pa.ChunkedArray) -> list[Anomaly]:
    """The anomalies of one column's values against its schema."""
    name = column.name
    values = decoded(data)
    rows = len(values)
    mask = missing_mask(values)
    missing = count_true(mask)
    found: list[Anomaly] = []
    if missing and not column.nullable:
        found.append(Anomaly("not_nullable", name, missing,
                             f"{name}: {missing:,} missing values in a column that allows none"))
    elif column.max_missing is not None and missing / rows > column.max_missing:
        found.append(Anomaly("too_many_missing", name, missing,
                             f"{name}: {missing / rows:.1%} missing ({missing:,} of {rows:,} "
                             f"rows), more than the {column.max_missing:.0%} allowed"))
    if missing == rows:
        return found
    present = values.filter(pc.invert(mask)) if missing else values
    comparable, wrong = _coerce(column.type, present)
    if len(wrong):
        found.append(Anomaly("wrong_type", name, len(wrong),
                             f"{name}: {len(wrong):,} values of type {present.type} where "
                             f"the schema expects {column.type}", examples(wrong)))
    if comparable is None or len(comparable) == 0:
        return found
    if column.min is not None or column.max is not None:
        found.extend(_range(column, comparable))
    if column.domain is not None:
        found.extend(_domain(column, comparable))
    return found


def _coerce(expected: str, present: pa.ChunkedArray) -> tuple[pa.ChunkedArray | None,
                                                             pa.ChunkedArray]:
    """(the values in a type comparable with the schema's, the values of a wrong type).

    The first is None when nothing can be compared (e.g. text in a date column).
    """
    actual = tidal_type(present.type)
    none = present.slice(0, 0)
    if actual == expected or {actual, expected} == {"date", "datetime"}:
        return present, none
    if expected in ("integer", "float"):
        if actual == "integer":
            return present, none
        if actual == "float":
            parsed = present
        elif actual == "string":
            is_number = pc.match_substring_regex(present, _NUMBER)
            parsed = pc.if_else(is_number, present, "nan").cast(pa.float64())
        else:
            return None, present
        good = pc.is_finite(parsed)
        if expected == "integer":
            good = pc.and_(good, pc.equal(parsed, pc.floor(parsed)))
        good = pc.fill_null(good, False)
        return parsed.filter(good), present.filter(pc.invert(good))
    if expected == "string" and actual in ("integer", "boolean"):
        return present.cast(pa.string()), none
    if expected == "boolean" and actual == "integer":
        is_bit = pc.is_in(present, value_set=pa.array([0, 1], present.type))
        return present.filter(is_bit).cast(pa.bool_()), present.filter(pc.invert(is_bit))
    if expected in ("date", "datetime") and actual == "string":
        is_time = pc.match_substring_regex(present, _ISO_TIME)
        return None, present.filter(pc.invert(is_time))
    return None, present


def _range(column: ColumnSchema, values: pa.ChunkedArray) -> list[Anomaly]:
    below = pc.less(values, column.min) if column.min is not None else None
    above = pc.greater(values, column.max) if column.max is not None else None
    outside = pc.or_(below, above) if below is not None and above is not None else (
        below if below is not None else above)
    count = count_true(outside)
    if not count:
        return []
    offending = values.filter(outside)
    bounds = pc.min_max(offending)
    low = "-inf" if column.min is None else column.min
    high = "inf" if column.max is None else column.max
    return [Anomaly("out_of_range", column.name, count,
                    f"{column.name}: {count:,} values outside [{low}, {high}] (lowest "
                    f"{bounds['min'].as_py()}, highest {bounds['max'].as_py()})",
                    examples(offending))]


def _domain(column: ColumnSchema, values: pa.ChunkedArray) -> list[Anomaly]:
    if pa.types.is_integer(values.type):
        values = values.cast(pa.int64())
    allowed = pa.array(column.domain).cast(values.type)
    unknown = pc.invert(pc.is_in(values, value_set=allowed))
    count = count_true(unknown)
    if not count:
        return []
    return [Anomaly("unknown_category", column.name, count,
                    f"{column.name}: {count:,} values outside the domain of "
                    f"{len(column.domain)} values", examples(values.filter(unknown)))]
