"""Data: read sources, infer and check schemas, profile, and detect drift.

    from tidal.data import compare, infer_schema, load_schema, profile, save_schema, validate
    schema = infer_schema("train.csv", target="cnt")
    save_schema(schema, "schema.yaml")            # review it, commit it
    result = validate("batch.parquet", load_schema("schema.yaml"))
    report = compare("train.csv", "batch.parquet")   # drift, column by column
    window = profile("batch.parquet", reference=profile("train.csv"))  # mergeable summary

The names load on first use (PEP 562), so ``from tidal.data.schema import Schema`` does
not pay for PyArrow, SciPy and the sketches; each module imports what it needs.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it
_EXPORTS = {
    "compare": "drift",
    "infer_schema": "infer",
    "Overrides": "overrides", "apply_overrides": "overrides", "resolve_overrides": "overrides",
    "drift_from_profiles": "profile_drift",
    "ColumnProfile": "profiles", "DatasetProfile": "profiles", "load_profile": "profiles",
    "profile": "profiles", "save_profile": "profiles",
    "ColumnSchema": "schema", "Schema": "schema", "load_schema": "schema",
    "save_schema": "schema",
    "DataReadError": "sources", "TableSource": "sources", "open_source": "sources",
    "Snapshot": "snapshots", "snapshot": "snapshots", "snapshot_sql": "snapshots",
    "load_snapshot": "snapshots",
    "Split": "splits", "split": "splits",
    "Anomaly": "validation", "ValidationResult": "validation", "validate": "validation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tidal.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tidal.data.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
