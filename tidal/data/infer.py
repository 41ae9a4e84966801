"""Infer a schema from reference data: a first draft for a person to review.

The rules are deliberately simple so a reviewer can predict them:

- **type** from the Arrow type (see :func:`tidal.data._columns.tidal_type`); an all-null
  column is ``string``.
- **role**: ``id`` when the name's last word is ``id``, ``uuid`` or ``guid`` (``id``,
  ``user_id``, ``orderId``) and every value is present and unique; ``timestamp`` for
  date/datetime columns and names ending in ``timestamp``, ``time``, ``date``,
  ``datetime``, ``ts`` or ``_at`` (``event_time``, ``created_at``, but not
  ``time_of_day``); else ``feature``.
  ``target``, ``segment`` and ``metadata`` only come from overrides.
- **missing**: ``nullable = false`` when the reference has no missing value. Otherwise
  ``max_missing`` is the observed fraction × 1.5 plus one point, rounded up to the next
  percent (7.2 % observed → 12 %): a batch from the same process fluctuates, and small
  batches more so, while a doubling of the missing rate is still caught.
- **range**: observed min and max of integer and float columns, with no slack (TFDV's
  choice too: widen it by hand where values may legitimately grow).
- **domain** of a string column: its sorted distinct values when there are at most
  :data:`MAX_DOMAIN_SIZE` of them and at most :data:`MAX_DOMAIN_RATIO` of the present
  values are distinct; otherwise the column is free text or an identifier and gets none.
  Integer columns get no inferred domain: counts and measures with few values would be
  flagged whenever a new count appears, and the range already bounds codes. Set
  ``domain`` in ``tidal.toml`` when integer codes are a closed set.
- ``id`` and ``timestamp`` columns get neither range nor domain: they grow by nature.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tidal.core.config import DataSection
from tidal.core.errors import ValidationError

from ._columns import count_true, decoded, json_safe, missing_mask, tidal_type
from .overrides import apply_overrides, resolve_overrides
from .schema import ColumnSchema, Schema
from .sources import open_source

MAX_DOMAIN_SIZE = 50
MAX_DOMAIN_RATIO = 0.5
#: relative and absolute slack added to an observed missing fraction
MISSING_SLACK_FACTOR = 1.5
MISSING_SLACK_POINTS = 0.01

_ID_WORDS = {"id", "uuid", "guid"}
_TIME_WORDS = {"timestamp", "time", "date", "datetime", "ts"}


def infer_schema(
    source: Any,
    *,
    target: str | None = None,
    roles: Mapping[str, str] | None = None,
    overrides: DataSection | Mapping[str, Mapping[str, Any]] | None = None,
) -> Schema:
    """Infer the schema of ``source`` (CSV/Parquet path, DataFrame or Arrow table).

    ``overrides`` is ``settings.data`` (the ``[data]`` section of tidal.toml) or a
    mapping ``{column: {"role"|"nullable"|"max_missing"|"min"|"max"|"domain": value}}``;
    ``roles`` ({column: role}) and ``target`` win over it.
    """
    table = open_source(source)
    if table.num_rows == 0:
        raise ValidationError(f"{table.name}: has no rows; infer a schema from reference "
                              "data with at least one row")
    plan = resolve_overrides(overrides, target=target, roles=roles)
    plan.check_names(table.names, table.name)
    columns = [
        infer_column(name, table.column(name), role=plan.roles.get(name), where=table.name)
        for name in table.names
    ]
    return apply_overrides(Schema(columns, source=table.name, num_rows=table.num_rows), plan)


def infer_column(name: str, column: pa.ChunkedArray, *, role: str | None = None,
                 where: str = "<data>") -> ColumnSchema:
    """Infer one column's schema (``role`` given: use it instead of guessing)."""
    if pa.types.is_null(column.type):
        return ColumnSchema(name, "string", role or "feature", nullable=True, max_missing=1.0)
    type_ = tidal_type(column.type)
    if type_ is None:
        raise ValidationError(f"{where}: column {name!r} has type {column.type}, which a "
                              "schema cannot describe (use integer, float, boolean, string, "
                              "date or datetime columns)")
    values = decoded(column)
    mask = missing_mask(values)
    missing = count_true(mask)
    present = values.filter(pc.invert(mask)) if missing else values
    role = role or guess_role(name, type_, present, len(values))
    result = ColumnSchema(name, type_, role, nullable=missing > 0,
                          max_missing=missing_allowance(missing / len(values)))
    if role in ("id", "timestamp") or len(present) == 0:
        return result
    if type_ in ("integer", "float"):
        if pa.types.is_floating(present.type):  # bounds of the finite values: an
            present = present.filter(pc.is_finite(present))  # infinity is no bound
        if len(present):
            bounds = pc.min_max(present)
            result.min = json_safe(bounds["min"].as_py())
            result.max = json_safe(bounds["max"].as_py())
    elif type_ == "string":
        result.domain = string_domain(present)
    return result


def guess_role(name: str, type_: str, present: pa.ChunkedArray, num_rows: int) -> str:
    """``id``, ``timestamp`` or ``feature``, by the rules in the module docstring."""
    if type_ in ("date", "datetime"):
        return "timestamp"
    last = _words(name)[-1]
    if last in _TIME_WORDS or (last == "at" and len(_words(name)) > 1):
        return "timestamp"
    if (type_ in ("integer", "string") and last in _ID_WORDS
            and len(present) == num_rows and pc.count_distinct(present).as_py() == num_rows):
        return "id"
    return "feature"


def _words(name: str) -> list[str]:
    """``"eventTime"``, ``"event_time"`` and ``"event-time"`` → ``["event", "time"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[_\W]+", spaced.lower()) if w] or [""]


def missing_allowance(fraction: float) -> float:
    """The ``max_missing`` for an observed missing fraction (0 stays 0)."""
    if fraction <= 0:
        return 0.0
    allowed = fraction * MISSING_SLACK_FACTOR + MISSING_SLACK_POINTS
    return min(1.0, math.ceil(round(allowed * 100, 9)) / 100)


def string_domain(present: pa.ChunkedArray) -> list[str] | None:
    """The sorted distinct values if the column looks categorical, else None."""
    distinct = pc.unique(present)
    if len(distinct) > MAX_DOMAIN_SIZE or len(distinct) > MAX_DOMAIN_RATIO * len(present):
        return None
    return sorted(distinct.to_pylist(), key=_natural)


def _natural(value: str) -> tuple[int, float, str]:
    """Order codes such as "2" before "10"; other strings alphabetically after them."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
