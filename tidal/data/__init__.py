"""Data: reading sources, schema inference and validation (snapshots, profiles, splits next).

    from tidal.data import infer_schema, load_schema, save_schema, validate
    schema = infer_schema("train.csv", target="cnt")
    save_schema(schema, "schema.yaml")            # review it, commit it
    result = validate("batch.parquet", load_schema("schema.yaml"))

Importing ``tidal.data`` loads PyArrow (``import tidal`` alone does not).
"""

from __future__ import annotations

from tidal.data.infer import infer_schema
from tidal.data.overrides import Overrides, apply_overrides, resolve_overrides
from tidal.data.schema import ColumnSchema, Schema, load_schema, save_schema
from tidal.data.sources import DataReadError, TableSource, open_source
from tidal.data.validation import Anomaly, ValidationResult, validate

__all__ = [
    "Anomaly", "ColumnSchema", "DataReadError", "Overrides", "Schema", "TableSource",
    "ValidationResult", "apply_overrides", "infer_schema", "load_schema", "open_source",
    "resolve_overrides", "save_schema", "validate",
]
