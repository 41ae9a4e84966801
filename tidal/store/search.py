"""Turn a parsed filter (see :mod:`tidal.store.filters`) into SQLAlchemy expressions.

Every value reaches the database as a bound parameter. Metric conditions look at each
run's latest value of the key (``latest_metrics``), so a search touches one row per run
and key, never the metric history.

Missing values: ``metrics.auc > 0.8`` is false for a run without an ``auc`` metric, and
so is ``metrics.auc != 0.8``; ``not metrics.auc > 0.8`` is true for it. Sorting puts runs
without the key last, whichever the direction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from tidal.core.errors import ValidationError

from .filters import ATTRIBUTES, And, Comparison, Field, Node, Not, Or, OrderKey
from .models import Experiment, LatestMetric, Param, Run, Tag

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
#: where each kind of logged value lives (metrics: each run's latest point)
_TABLES: dict[str, Any] = {"metric": LatestMetric, "param": Param, "tag": Tag}


def where_clause(node: Node | None) -> ColumnElement[bool] | None:
    if node is None:
        return None
    if isinstance(node, And):
        return and_(*(where_clause(item) for item in node.items))
    if isinstance(node, Or):
        return or_(*(where_clause(item) for item in node.items))
    if isinstance(node, Not):
        return not_(where_clause(node.item))
    return _comparison(node)


def apply_order(query: Select[Any], keys: list[OrderKey]) -> Select[Any]:
    """Add ORDER BY clauses; runs lacking a key sort last. Ties break on newest first."""
    for key in keys:
        query, expressions = _order_columns(key.field, query)
        for expression in expressions:
            ordered = expression.desc() if key.descending else expression.asc()
            query = query.order_by(ordered.nulls_last())
    return query.order_by(Run.start_time.desc(), Run.id.desc())


def _order_columns(field: Field, query: Select[Any]) -> tuple[Select[Any], list[Any]]:
    if field.kind == "attribute":
        if field.name == "experiment":
            query = query.join(Experiment, Experiment.id == Run.experiment_id)
            return query, [Experiment.name]
        return query, [_attribute_column(field.name)]
    alias = aliased(_TABLES[field.kind])
    query = query.outerjoin(alias, and_(alias.run_id == Run.id, alias.key == field.name))
    if field.kind == "param":
        # numeric values sort as numbers; text values after them, as text
        return query, [alias.value_num, alias.value]
    return query, [alias.value]


def _comparison(node: Comparison) -> ColumnElement[bool]:
    field = node.field
    if field.kind == "attribute":
        return _attribute_comparison(node)
    table = _TABLES[field.kind]
    if node.op == "is null":
        return not_(_exists(table, field.name, None))
    if node.op == "is not null":
        return _exists(table, field.name, None)
    if field.kind == "metric":
        _check_numeric(node)
        return _exists(LatestMetric, field.name, _compare(LatestMetric.value, node))
    if field.kind == "tag":
        _check_text(node)
        return _exists(Tag, field.name, _compare(Tag.value, node))
    # params: numbers compare numerically (so 0.010 = 0.01), strings as text
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    numeric = all(isinstance(v, float) for v in values if v is not None)
    column = Param.value_num if numeric else Param.value
    if not numeric and any(isinstance(v, float) for v in values):
        raise ValidationError(f"{field}: do not mix numbers and strings in one 'in' list")
    return _exists(Param, field.name, _compare(column, node))


def _exists(table: type[Any], key: str, condition: ColumnElement[bool] | None) -> Any:
    query = select(table.run_id).where(table.run_id == Run.id, table.key == key)
    if condition is not None:
        query = query.where(condition)
    return exists(query)


def _compare(column: Any, node: Comparison) -> ColumnElement[bool]:
    op, value = node.op, node.value
    if op == "is not null":
        return column.is_not(None)
    if op == "is null":
        return column.is_(None)
    if op == "in":
        return column.in_(list(value))  # type: ignore[arg-type]
    if op == "like":
        return column.like(value, escape="\\")
    if op == "ilike":
        return func.lower(column).like(func.lower(value), escape="\\")
    if isinstance(value, str) and value.lower() in ("true", "false") and op in ("=", "!="):
        # Python logs booleans as True/False; filters usually say true/false
        column, value = func.lower(column), value.lower()
    return {
        "=": column == value, "!=": column != value, "<": column < value,
        "<=": column <= value, ">": column > value, ">=": column >= value,
    }[op]


def _attribute_comparison(node: Comparison) -> ColumnElement[bool]:
    name = node.field.name
    if ATTRIBUTES[name] == "number":
        node = Comparison(node.field, node.op, _as_time(node.value, name))
        _check_numeric(node)
        return _compare(_attribute_column(name), node)  # type: ignore[return-value]
    _check_text(node)
    if name == "status":
        node = Comparison(node.field, node.op, _upper(node.value))
    if name == "experiment":
        names = select(Experiment.id).where(_compare(Experiment.name, node))  # type: ignore[arg-type]
        return Run.experiment_id.in_(names)
    return _compare(_attribute_column(name), node)  # type: ignore[return-value]


def _attribute_column(name: str) -> Any:
    return {
        "status": Run.status, "name": Run.name, "run_id": Run.id, "actor": Run.actor,
        "git_commit": Run.git_commit, "start_time": Run.start_time, "end_time": Run.end_time,
    }[name]


def _check_numeric(node: Comparison) -> None:
    if node.op in ("like", "ilike"):
        raise ValidationError(f"{node.field} is a number: 'like' does not apply")
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    for value in values:
        if value is not None and not isinstance(value, float):
            raise ValidationError(f"{node.field} is a number, so compare it with a number, "
                                  f"not {value!r}")


def _check_text(node: Comparison) -> None:
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    for value in values:
        if isinstance(value, float):
            raise ValidationError(f"{node.field} holds text: quote the value, e.g. "
                                  f"{node.field} = '{_plain(value)}'")


def _as_time(value: Any, name: str) -> Any:
    """Times accept epoch seconds or an ISO 8601 string ('2026-11-23T10:00')."""
    if isinstance(value, tuple):
        return tuple(_as_time(v, name) for v in value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                f"{name} takes epoch seconds or an ISO date such as '2026-11-23', not {value!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return value


def _upper(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_upper(v) for v in value)
    return value.upper() if isinstance(value, str) else value


def _plain(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)
