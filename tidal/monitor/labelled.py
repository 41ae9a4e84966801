"""Labelled production data: the predictions that got a label, as a table to train on.

The feedback loop's output (Landing AI's loop, DESIGN.md's feedback path): every logged
prediction of a deployment in a time range whose label came back, with its inputs under
their feature names, the label under the target's name, and its event time, request id
and route — a table the next training run can take as its source. ``_set`` says where a
row belongs: ``test`` when a reviewer marked it an unfamiliar case (Landing AI's loop:
unfamiliar cases test the next model), ``train`` otherwise. Predictions are read
from the compacted log one hour at a time (memory grows with the labelled rows only), and
each is joined with its latest label exactly as the quality checks join them
(:func:`tidal.monitor.quality.join`). Shadow rows are left out: their inputs are the
stable rows' inputs again.

:func:`export_labelled` writes the table as Parquet and stores it as a dataset snapshot
(:mod:`tidal.data.snapshots`), so the file's sha256 is a dataset version that a model's
lineage can name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidal.core.errors import ValidationError
from tidal.monitor.job import HourReader, Monitor
from tidal.monitor.quality import join
from tidal.store.feedback import Labels

if TYPE_CHECKING:
    from tidal.project import Project

_HOUR = 3600.0


def labelled_rows(project: Project, deployment: str, *, start: float | None = None,
                  end: float | None = None, target: str = "target") -> pa.Table:
    """The labelled predictions of ``deployment`` with event time in ``[start, end)``."""
    monitor = Monitor(project, sinks=[])
    if monitor.log_folder.is_dir():
        from tidal.serve.compaction import compact

        compact(monitor.log_folder, monitor.compacted)
    labels = _all_labels(project, deployment)
    if not labels.by_request and not labels.by_key:
        raise ValidationError(f"deployment {deployment!r} has no labels yet (tidal label, "
                              "POST /v1/feedback)")
    unfamiliar = {(a["request_id"], a["row"]) for a in project.review.answers(deployment)
                  if a["familiar"] is False}
    reader = HourReader(monitor.compacted, deployment)
    parts: list[pa.Table] = []
    for hour in reader.hours:
        if (start is not None and hour + _HOUR <= start) or (end is not None and hour >= end):
            continue
        table = reader.window(max(hour, start if start is not None else hour),
                              min(hour + _HOUR, end if end is not None else hour + _HOUR))
        if table.num_rows == 0:
            continue
        if "status" in table.column_names:
            table = table.filter(pc.less(pc.fill_null(table.column("status"), 200), 400))
        found = join(table, labels)
        keep = pa.array([label is not None for label in found])
        if not pc.any(keep).as_py():
            continue
        picked = table.filter(keep)
        parts.append(_training_columns(picked, [label for label in found if label is not None],
                                       target, unfamiliar))
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive")


def export_labelled(project: Project, deployment: str, path: str | Path, *,
                    start: float | None = None, end: float | None = None,
                    target: str = "target") -> dict[str, Any]:
    """Write the labelled rows to ``path`` (Parquet) and store them as a snapshot; returns
    the rows written and the snapshot's sha256 (the dataset version)."""
    from tidal.data.snapshots import snapshot

    table = labelled_rows(project, deployment, start=start, end=end, target=target)
    if table.num_rows == 0:
        raise ValidationError(f"no prediction of {deployment!r} in that range has a label")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary, compression="zstd")
    temporary.replace(path)  # whole or not at all
    stored = snapshot(path, project.artifacts)
    return {"deployment": deployment, "path": str(path), "rows": table.num_rows,
            "dataset": stored.sha256, "columns": table.column_names}


def _all_labels(project: Project, deployment: str) -> Labels:
    """Every label of the deployment, the latest per prediction (as the join wants)."""
    labels = Labels({}, {}, 0)
    after = 0
    while batch := project.feedback.since(deployment, after, limit=100_000):
        for record in batch:
            if record.request_id is not None:
                labels.by_request[(record.request_id, record.row)] = (record.id, record.label)
            elif record.entity_key is not None and record.event_time is not None:
                labels.by_key[(record.entity_key, record.event_time, record.row)] = (
                    record.id, record.label)
        after = batch[-1].id
    return labels


def _training_columns(table: pa.Table, labels: list[Any], target: str,
                      unfamiliar: set[tuple[str, int]]) -> pa.Table:
    columns: dict[str, Any] = {}
    for name in table.column_names:
        if name.startswith("in."):
            columns[name[len("in."):]] = table.column(name)
    if target in columns:
        raise ValidationError(f"an input is called {target!r}: name the target otherwise")
    columns[target] = pa.array(labels)
    for name in ("event_time", "request_id", "route"):
        if name in table.column_names:
            columns[f"_{name}"] = table.column(name)
    rows = table.column("row").to_pylist() if "row" in table.column_names \
        else [0] * table.num_rows
    columns["_set"] = pa.array([
        "test" if (request_id, row or 0) in unfamiliar else "train"
        for request_id, row in zip(table.column("request_id").to_pylist(), rows, strict=True)])
    return pa.table(columns)
