"""Training/serving skew: do the features a model was served equal the ones training would
have computed for the same entity at the same time?

The ML Test Score calls this the most important and least implemented test. Here: take a
sample of the newest logged predictions that carry an entity key (``X-Tidal-Route-Key`` or
the records' ``key``), find each one's row in the training pipeline's source by its
``[data] id`` column and ``[data] timestamp`` (the event time the prediction was logged
with), and compare every feature the model was served with the value the pipeline reads
there. The standard pipeline feeds the source's columns to the model as they are (its
preprocessing is inside the model, so served and trained alike), so "the training
pipeline's code" for a feature is reading it from the source with the schema's types;
a custom pipeline whose steps derive features is not recomputed here.

The result per feature is the share of compared predictions whose served value differs
(numbers beyond ``rtol``/``atol``, text exactly, a missing value on one side only), with
a few examples; predictions with no matching source row are counted, not compared. The
shares are stored as ``skew`` check values in the deployment's latest window (judged by
the ``skew`` rule, warn 1 %, alert 5 %) and returned.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tidal.core.errors import ValidationError
from tidal.data.sources import open_source
from tidal.monitor.checks import Measured
from tidal.monitor.job import HourReader, Monitor

if TYPE_CHECKING:
    from tidal.project import Project

#: examples of mismatches kept per feature
EXAMPLES = 3


def skew_check(project: Project, deployment: str, *, sample: int = 1000,
               source: str | Path | None = None, rtol: float = 1e-9,
               atol: float = 1e-12) -> dict[str, Any]:
    """Compare the served features of up to ``sample`` recent keyed predictions with the
    source rows of the same entity and time (see the module docstring)."""
    settings = project.settings
    id_column, time_column = settings.data.id, settings.data.timestamp
    if id_column is None or time_column is None:
        raise ValidationError("the skew check finds a prediction's source row by entity and "
                              "time: set [data] id and [data] timestamp in tidal.toml")
    path = source or settings.pipeline.source
    if not isinstance(path, str | Path):
        raise ValidationError("give the source to compare with (a CSV or Parquet path)")
    path = Path(path)
    if not path.is_absolute():
        path = settings.project_dir / path
    monitor = Monitor(project, sinks=[])
    served = _recent_keyed(monitor, deployment, sample)
    if served.num_rows == 0:
        raise ValidationError(f"no logged prediction of {deployment!r} has an entity key: "
                              "send X-Tidal-Route-Key (or the records' key) with requests")
    rows = _source_rows(path, id_column, time_column)
    features = [name[len("in."):] for name in served.column_names if name.startswith("in.")]
    table = open_source(path).to_table()
    keys = served.column("key").to_pylist()
    times = [None if t is None else t / 1e6 for t in
             served.column("event_time").cast(pa.int64()).to_pylist()]
    found = [rows.get((key, when)) for key, when in zip(keys, times, strict=True)]
    matched = np.array([index is not None for index in found], dtype=bool)
    report: dict[str, Any] = {"deployment": deployment, "source": str(path),
                              "sampled": served.num_rows, "matched": int(matched.sum()),
                              "features": {}}
    positions = np.array([index for index in found if index is not None], dtype=np.int64)
    for feature in features:
        if feature not in table.column_names:
            report["features"][feature] = {"compared": 0, "note": "not in the source"}
            continue
        logged = served.column(f"in.{feature}").filter(pa.array(matched)).to_pylist()
        truth = table.column(feature).take(pa.array(positions)).to_pylist()
        differ = [i for i, (a, b) in enumerate(zip(logged, truth, strict=True))
                  if not _same(a, b, rtol, atol)]
        report["features"][feature] = {
            "compared": len(logged), "mismatched": len(differ),
            "share": len(differ) / len(logged) if logged else None,
            "examples": [{"served": logged[i], "source": truth[i]} for i in differ[:EXAMPLES]]}
    _store(project, monitor, deployment, report)
    return report


def _recent_keyed(monitor: Monitor, deployment: str, sample: int) -> pa.Table:
    """Up to ``sample`` of the newest prediction rows with a key (newest hours first)."""
    from tidal.serve.compaction import compact

    if monitor.log_folder.is_dir():
        compact(monitor.log_folder, monitor.compacted)
    reader = HourReader(monitor.compacted, deployment)
    parts: list[pa.Table] = []
    taken = 0
    for hour in reversed(reader.hours):
        table = reader.window(hour, hour + 3600.0)
        if "key" not in table.column_names or table.num_rows == 0:
            continue
        if "status" in table.column_names:
            table = table.filter(pc.less(pc.fill_null(table.column("status"), 200), 400))
        table = table.filter(pc.is_valid(table.column("key")))
        if table.num_rows:
            parts.append(table.slice(max(0, table.num_rows - (sample - taken))))
            taken += parts[-1].num_rows
        if taken >= sample:
            break
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive")


def _source_rows(path: Path, id_column: str, time_column: str) -> dict[tuple[str, float], int]:
    """(entity key as text, event time in epoch seconds to the microsecond) → row."""
    table = open_source(path).to_table([id_column, time_column])
    ids = [None if v is None else str(v) for v in table.column(id_column).to_pylist()]
    times = _epochs(table.column(time_column))
    return {(key, when): row for row, (key, when) in enumerate(zip(ids, times, strict=True))
            if key is not None and when is not None}


def _epochs(column: pa.ChunkedArray) -> list[float | None]:
    if pa.types.is_timestamp(column.type):
        micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
        return [None if m is None else m / 1e6 for m in micros]
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return [None if v is None else round(float(v) * 1e6) / 1e6
                for v in column.to_pylist()]
    raise ValidationError(f"the timestamp column holds {column.type}: epoch seconds or "
                          "timestamps are needed to match predictions' event times")


def _same(served: Any, source: Any, rtol: float, atol: float) -> bool:
    missing_served = served is None or (isinstance(served, float) and math.isnan(served))
    missing_source = source is None or (isinstance(source, float) and math.isnan(source))
    if missing_served or missing_source:
        return missing_served and missing_source
    if isinstance(served, int | float) and isinstance(source, int | float) \
            and not isinstance(served, bool) and not isinstance(source, bool):
        return math.isclose(float(served), float(source), rel_tol=rtol, abs_tol=atol)
    return str(served) == str(source)


def _store(project: Project, monitor: Monitor, deployment: str,
           report: dict[str, Any]) -> None:
    """The shares as ``skew`` points of the deployment's latest window (if any)."""
    window = project.monitoring.latest_window(deployment)
    if window is None:
        return
    measured = [Measured("skew", feature, entry.get("share"),
                         {k: v for k, v in entry.items() if k != "share"})
                for feature, entry in report["features"].items()
                if entry.get("share") is not None]
    if not measured:
        return
    import functools

    from tidal.monitor.alerts import evaluate

    points = [monitor.point(deployment, window.start, window.end, m) for m in measured]
    now = project.clock.now()
    project.monitoring.record_points(
        window, points, functools.partial(evaluate, rules=monitor.rules, now=now), now=now,
        actor="monitor")
