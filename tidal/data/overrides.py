"""Roles and constraints a person sets on top of an inferred schema.

Inference guesses; the people who know the data correct it, in ``tidal.toml``
(``[data]``, parsed by :mod:`tidal.core.config`) or in keyword arguments of
:func:`tidal.data.infer_schema`. Both become one :class:`Overrides`, applied the same way,
so a schema re-inferred next month carries the same corrections. Keyword arguments win
over the file. A column named in an override but absent from the data is an error: a
typo would otherwise silently do nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from tidal.core.config import DataSection
from tidal.core.errors import ValidationError

from .schema import ROLES, Schema

CONSTRAINT_KEYS = ("nullable", "max_missing", "min", "max", "domain")


@dataclass(frozen=True)
class Overrides:
    """Column name → role, and column name → constraints to replace the inferred ones."""

    roles: dict[str, str] = field(default_factory=dict)
    constraints: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        return set(self.roles) | set(self.constraints)

    def check_names(self, available: Iterable[str], where: str) -> None:
        """Raise ValidationError if an override names a column ``where`` lacks."""
        unknown = sorted(self.names - set(available))
        if unknown:
            raise ValidationError(f"{where}: overrides name columns that are not in the data: "
                                  f"{', '.join(unknown)}")


def resolve_overrides(
    overrides: DataSection | Mapping[str, Mapping[str, Any]] | None = None,
    *,
    target: str | None = None,
    roles: Mapping[str, str] | None = None,
) -> Overrides:
    """Merge the ``[data]`` section (or a per-column mapping) with keyword arguments.

    ``overrides`` is ``settings.data`` or ``{column: {"role"|"min"|"max"|...: value}}``;
    ``roles`` and ``target`` take precedence over it (``target`` replaces any target
    the file names).
    """
    section = _section(overrides)
    merged = section.roles()
    for name, role in (roles or {}).items():
        if role not in ROLES:
            raise ValidationError(f"role {role!r} of column {name!r} is not one of "
                                  f"{', '.join(ROLES)}")
        merged[name] = role
    if target is not None:
        merged = {n: r for n, r in merged.items() if r != "target"}
        merged[target] = "target"
    constraints = {
        name: column.model_dump(include=set(CONSTRAINT_KEYS), exclude_none=True)
        for name, column in section.columns.items()
    }
    return Overrides(merged, {n: c for n, c in constraints.items() if c})


def apply_overrides(schema: Schema, overrides: Overrides) -> Schema:
    """A copy of ``schema`` with the overridden roles and constraints.

    ``nullable`` and ``max_missing`` are kept consistent: ``nullable = false`` means a
    0 allowance; ``nullable = true`` alone lifts an inferred 0 allowance; a positive
    ``max_missing`` makes the column nullable.
    """
    overrides.check_names(schema.names, "schema")
    columns = []
    for column in schema.columns:
        changes: dict[str, Any] = dict(overrides.constraints.get(column.name, {}))
        if column.name in overrides.roles:
            changes["role"] = overrides.roles[column.name]
        if changes.get("nullable") is False:
            changes.setdefault("max_missing", 0.0)
        elif changes.get("nullable") is True and "max_missing" not in changes:
            if column.max_missing == 0:
                changes["max_missing"] = None
        elif changes.get("max_missing") and "nullable" not in changes:
            changes["nullable"] = True
        if "domain" in changes:
            changes["domain"] = list(changes["domain"])
        try:
            columns.append(dataclasses.replace(column, **changes) if changes else column)
        except ValidationError as exc:
            raise ValidationError(f"override of {exc}") from None
    return Schema(columns, source=schema.source, num_rows=schema.num_rows)


def _section(overrides: Any) -> DataSection:
    if overrides is None:
        return DataSection()
    if isinstance(overrides, DataSection):
        return overrides
    if not isinstance(overrides, Mapping):
        raise ValidationError("overrides must be settings.data or a mapping of column "
                              f"name to constraints, not {type(overrides).__name__}")
    try:
        return DataSection.model_validate({"columns": dict(overrides)})
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:])}: {err['msg']}" for err in exc.errors()
        )
        raise ValidationError(f"invalid overrides: {problems}") from None

