"""Data: read sources, infer and check schemas, profile, and detect drift.

    from tidal.data import compare, infer_schema, load_schema, profile, save_schema, validate
    schema = infer_schema("train.csv", target="cnt")
    save_schema(schema, "schema.yaml")            # review it, commit it
    result = validate("batch.parquet", load_schema("schema.yaml"))
    report = compare("train.csv", "batch.parquet")   # drift, column by column
    window = profile("batch.parquet", reference=profile("train.csv"))  # mergeable summary

Importing ``tidal.data`` loads PyArrow (``import tidal`` alone does not).
"""

from __future__ import annotations

from tidal.data.drift import compare
from tidal.data.infer import infer_schema
from tidal.data.overrides import Overrides, apply_overrides, resolve_overrides
from tidal.data.profile_drift import drift_from_profiles
from tidal.data.profiles import (
    ColumnProfile,
    DatasetProfile,
    load_profile,
    profile,
    save_profile,
)
from tidal.data.schema import ColumnSchema, Schema, load_schema, save_schema
from tidal.data.sources import DataReadError, TableSource, open_source
from tidal.data.validation import Anomaly, ValidationResult, validate

__all__ = [
    "Anomaly", "ColumnProfile", "ColumnSchema", "DataReadError", "DatasetProfile",
    "Overrides", "Schema", "TableSource", "ValidationResult", "apply_overrides", "compare",
    "drift_from_profiles", "infer_schema", "load_profile", "load_schema", "open_source",
    "profile", "resolve_overrides", "save_profile", "save_schema", "validate",
]
