"""The data schema: per column a type, a role and the constraints a batch must meet.

A schema is inferred once (:mod:`tidal.data.infer`), then reviewed and committed like
code, so its file format is for people first: YAML, one block per column in the table's
order, keys always in the same order, a header saying how to edit it. ``load_schema``
checks every field and names the file and the field when one is wrong, because a schema
edited by hand is the one most likely to be malformed.

Constraints follow TFDV's vocabulary, kept small: ``nullable`` / ``max_missing`` (a
fraction of rows that may be missing: null, float NaN or an empty string), ``min`` /
``max`` for numbers, ``domain`` (the allowed values) for strings and integer codes.

This module needs no pyarrow: a serving replica can read a schema without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args

from tidal.core.config import ColumnRole
from tidal.core.errors import ValidationError

#: the column types a schema knows; ``string`` is categorical or free text
TYPES = ("integer", "float", "boolean", "string", "datetime", "date")
#: what a column is for; ``metadata`` columns are kept but never used as features
ROLES: tuple[str, ...] = get_args(ColumnRole)
NUMERIC_TYPES = ("integer", "float")
#: types that may carry a domain (a closed set of allowed values)
DOMAIN_TYPES = ("string", "integer")
FORMAT = 1
DEFAULT_SCHEMA_FILE = "schema.yaml"

HEADER = """\
# Tidal data schema: the columns a batch must have and the constraints it must meet.
# Inferred from reference data; review it, edit it, and commit it with your code.
#
# Per column (any key but `type` may be changed or removed):
#   type         integer | float | boolean | string | datetime | date
#   role         feature | target | id | timestamp | segment | metadata
#   nullable     false: no value may be missing (null, NaN or empty string)
#   max_missing  largest fraction of missing values (0-1) a batch may have
#   min, max     numeric range; values outside it are anomalies
#   domain       the allowed values; remove it to accept any value
# Roles and constraints may also be set in tidal.toml under [data] (see the docs).
"""


@dataclass
class ColumnSchema:
    """One column: its type and role, and the constraints a batch is checked against.

    ``max_missing=None`` means no limit on the missing fraction; ``domain=None`` means
    any value is allowed.
    """

    name: str
    type: str
    role: str = "feature"
    nullable: bool = True
    max_missing: float | None = None
    min: int | float | None = None
    max: int | float | None = None
    domain: list[Any] | None = None

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise ValidationError(f"column {self.name!r}: {problem}")

    def problem(self) -> str | None:
        """Why this column is inconsistent (wrong type name, min > max…), else None."""
        if not isinstance(self.name, str) or not self.name:
            return "the name must be a non-empty string"
        if self.type not in TYPES:
            return f"type {self.type!r} is not one of {', '.join(TYPES)}"
        if self.role not in ROLES:
            return f"role {self.role!r} is not one of {', '.join(ROLES)}"
        if not isinstance(self.nullable, bool):
            return "nullable must be true or false"
        if self.max_missing is not None and not (
            _is_number(self.max_missing) and 0 <= self.max_missing <= 1
        ):
            return f"max_missing must be a fraction between 0 and 1, not {self.max_missing!r}"
        for key in ("min", "max"):
            value = getattr(self, key)
            if value is None:
                continue
            if self.type not in NUMERIC_TYPES:
                return f"{key} applies only to integer and float columns, not {self.type}"
            if not _is_number(value) or math.isnan(value):
                return f"{key} must be a number, not {value!r}"
        if self.min is not None and self.max is not None and self.min > self.max:
            return f"min ({self.min}) is greater than max ({self.max})"
        if self.domain is not None:
            return _domain_problem(self.type, self.domain)
        return None

    def to_dict(self) -> dict[str, Any]:
        """The YAML block of this column (without its name), unset constraints left out."""
        out: dict[str, Any] = {"type": self.type, "role": self.role, "nullable": self.nullable}
        for key in ("max_missing", "min", "max", "domain"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "domain" else value
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ColumnSchema:
        """Build a column from its YAML block; raises ValidationError naming the field."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"columns.{name}: expected a mapping of keys, "
                                  f"not {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"columns.{name}.{unknown[0]}: unknown key (known: "
                                  f"{', '.join(sorted(known))})")
        if "type" not in data:
            raise ValidationError(f"columns.{name}.type: missing (one of {', '.join(TYPES)})")
        try:
            return cls(name=name, **data)
        except ValidationError as exc:
            raise ValidationError(f"columns.{name}: {_strip_prefix(str(exc), name)}") from None


@dataclass
class Schema:
    """The columns of a table, in order, and where they were inferred from."""

    columns: list[ColumnSchema] = field(default_factory=list)
    #: the data the schema was inferred from (a path or ``<DataFrame>``), for reviewers
    source: str | None = None
    #: how many rows that data had
    num_rows: int | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise ValidationError(f"column {column.name!r} appears twice in the schema")
            seen.add(column.name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"no column {name!r} in the schema")

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def with_role(self, *roles: str) -> list[str]:
        """Names of the columns having one of ``roles``, in table order."""
        return [c.name for c in self.columns if c.role in roles]

    @property
    def target(self) -> str | None:
        """The target column's name, if the schema has one."""
        targets = self.with_role("target")
        return targets[0] if targets else None

    @property
    def features(self) -> list[str]:
        return self.with_role("feature")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT}
        if self.source is not None:
            out["source"] = self.source
        if self.num_rows is not None:
            out["rows"] = self.num_rows
        out["columns"] = {c.name: c.to_dict() for c in self.columns}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Schema:
        """Build a schema from its dict form; raises ValidationError naming the field."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"expected a mapping with a 'columns' key, "
                                  f"not {type(data).__name__}")
        unknown = sorted(set(data) - {"format", "source", "rows", "columns"})
        if unknown:
            raise ValidationError(f"{unknown[0]}: unknown key (known: columns, format, "
                                  "rows, source)")
        if data.get("format", FORMAT) != FORMAT:
            raise ValidationError(f"format: this Tidal reads schema format {FORMAT}, "
                                  f"not {data.get('format')!r}")
        source, rows = data.get("source"), data.get("rows")
        if source is not None and not isinstance(source, str):
            raise ValidationError("source: must be a string")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)
                                 or rows < 0):
            raise ValidationError(f"rows: must be a non-negative integer, not {rows!r}")
        columns = data.get("columns")
        if not isinstance(columns, Mapping):
            raise ValidationError("columns: missing, or not a mapping of column name to "
                                  "its type, role and constraints")
        parsed = [ColumnSchema.from_dict(str(name), block) for name, block in columns.items()]
        return cls(parsed, source=source, num_rows=rows)

    def to_yaml(self) -> str:
        """The reviewable text form: a header of comments, then the schema."""
        import yaml

        class Dumper(yaml.SafeDumper):
            """Mappings as blocks (one key a line), lists inline: a domain on one line."""

        Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
            "tag:yaml.org,2002:seq", data, flow_style=True))
        body = yaml.dump(self.to_dict(), Dumper=Dumper, sort_keys=False,
                         default_flow_style=False, allow_unicode=True, width=100)
        return f"{HEADER}\n{body}"

    @classmethod
    def from_yaml(cls, text: str, *, name: str = "<schema>") -> Schema:
        """Parse the text form; errors start with ``name`` (the file) and the field."""
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ValidationError(f"{name}: not valid YAML{where}: {problem}") from None
        try:
            return cls.from_dict(data)
        except ValidationError as exc:
            raise ValidationError(f"{name}: {exc}") from None


def save_schema(schema: Schema, path: str | Path) -> Path:
    """Write ``schema`` as YAML to ``path`` (parents created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema.to_yaml(), encoding="utf-8")
    return target


def load_schema(path: str | Path) -> Schema:
    """Read a schema file; a missing or malformed file is a ValidationError naming it."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{source}: no such schema file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{source}: cannot read it ({exc})") from None
    return Schema.from_yaml(text, name=str(source))


def _domain_problem(type_: str, domain: Any) -> str | None:
    if type_ not in DOMAIN_TYPES:
        return f"domain applies only to string and integer columns, not {type_}"
    if not isinstance(domain, list) or not domain:
        return "domain must be a non-empty list of allowed values"
    wanted: tuple[type, ...] = (str,) if type_ == "string" else (int,)
    wrong = [v for v in domain if not isinstance(v, wanted) or isinstance(v, bool)]
    if wrong:
        kind = "strings (quote numbers)" if type_ == "string" else "integers"
        return f"domain of a {type_} column must hold {kind}; got {wrong[0]!r}"
    if len(set(domain)) != len(domain):
        return "domain lists a value twice"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strip_prefix(message: str, name: str) -> str:
    prefix = f"column {name!r}: "
    return message[len(prefix):] if message.startswith(prefix) else message

