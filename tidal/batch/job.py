"""``tidal score``: a table scored by the versions a deployment serves.

The input (a CSV or Parquet file, a folder of Parquet files, or a SQL query; see
:mod:`tidal.batch.sources`) is read in partitions of ``partition_rows``, so memory stays
bounded whatever its size, and scored in this process, on worker processes or on Ray
(:mod:`tidal.batch.workers`), in input order. Each partition's rows are checked like a
request to the server (failures go to the rejects file with the row number and the
reason, never dropped silently), predicted with the same runtime (ONNX Runtime when the
version was exported), written to the output (:mod:`tidal.batch.sinks`) and to the
prediction log's compacted folder by the workers (:mod:`tidal.serve.predparts`), a request
id to every ``log_rows`` rows: the monitors see batch traffic like online traffic, and
labels join by request id and row.

A deployment's traffic policy applies to batches as it does to requests: while a canary
runs, a ``canary_weight`` share of the partitions (chosen by hashing the job and
partition, like a routing key) is answered by the canary; a shadow scores every good row
too, off the output. Their records carry the routes ``batch_canary`` and
``batch_shadow``, so a rollout's analysis compares them with the stable version's
``batch`` rows of the same period (the shadow's by request id and row).

Triage (:mod:`tidal.batch.triage`) keeps the rows that need people in a separate output,
and may queue them for review and POST them to a webhook.

Writing is atomic: the output, the rejects and triage files appear whole when every
partition is done, or not at all (the log's records stay: they describe predictions that
were made).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tidal.batch.sinks import ParquetSink, Sink, TableSink
from tidal.batch.sources import Source, is_url, open_source
from tidal.batch.triage import Picker, Triage, post_to_webhook, queue_for_review
from tidal.batch.workers import (
    LogPart,
    Task,
    default_workers,
    forget_loaded,
    make_executor,
    request_ids,
    scored_in_order,
)
from tidal.core.errors import ValidationError
from tidal.core.ids import new_id
from tidal.pipeline.executors import InlineExecutor
from tidal.serve.predparts import each_repeated
from tidal.serve.router import BATCH, BATCH_CANARY, BATCH_SHADOW, CANARY, choose_route

if TYPE_CHECKING:
    from tidal.project import Project

__all__ = ["ScoreResult", "Triage", "score"]


@dataclass(frozen=True)
class ScoreResult:
    deployment: str
    model: str
    version: int
    runtime: str
    rows: int
    scored: int
    rejected: int
    output: str
    rejects: str | None
    job: str
    seconds: float
    triaged: int = 0
    triage: str | None = None
    #: the versions that took part, by route (batch, batch_canary, batch_shadow)
    versions: dict[str, int] = field(default_factory=dict)
    partitions: int = 0
    canary_partitions: int = 0
    shadow_failures: int = 0
    #: why the triaged rows did not all reach the webhook (None: they did, or no webhook)
    webhook_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Described:
    """What the job itself needs of a loaded model when workers do the scoring (a
    random forest's session holds hundreds of MB the job need not keep)."""

    input_names: list[str]
    classes: list[Any] | None
    runtime: str


@dataclass(frozen=True)
class _Versions:
    """The versions a job scores with, as the deployment routes them now."""

    stable: Any
    canary: Any = None
    weight: float = 0.0
    shadow: Any = None

    def answering(self, job: str, part: int) -> tuple[Any, str]:
        """The version that answers partition ``part``, and its route."""
        route = choose_route(self.weight, self.canary is not None, f"{job}:{part}")
        return (self.canary, BATCH_CANARY) if route == CANARY else (self.stable, BATCH)


def score(project: Project, deployment: str, source: str | Path, output: str | Path, *,
          query: str | None = None, table: str | None = None, if_exists: str = "fail",
          keys: list[str] | None = None, rejects: str | Path | None = None,
          partition_rows: int = 100_000, log_rows: int = 1_000,
          triage: Triage | None = None, executor: str = "process",
          workers: int | None = 1, candidates: bool = True, job: str | None = None,
          progress: Callable[[int], None] | None = None) -> ScoreResult:
    """Score ``source`` (a path, or a SQLAlchemy URL with ``query``) with the versions
    ``deployment`` serves into ``output`` (a Parquet path, or a SQLAlchemy URL with
    ``table`` and ``if_exists``: fail, replace or append). See the module docstring.

    ``keys``: the input columns copied to the output (default: every column that is not
    a model input); ``executor`` and ``workers``: where partitions are scored (process
    with one worker: this process; None: one worker per core); ``candidates``: let the
    deployment's canary and shadow take part (False: the stable version alone);
    ``job``: the job's id, the prefix of its request ids in the log (default: a new one;
    a scheduled run records it before it starts, so a run cut short can be found)."""
    started = time.perf_counter()
    if partition_rows < 1 or log_rows < 1:
        raise ValidationError("partition_rows and log_rows must be at least 1")
    workers = default_workers() if workers is None else workers
    versions = _versions(project, deployment, candidates)
    models = {route: _loaded(project, v) for route, v in
              ((BATCH, versions.stable), (BATCH_CANARY, versions.canary),
               (BATCH_SHADOW, versions.shadow)) if v is not None}
    stable = models[BATCH]
    if BATCH_CANARY in models and models[BATCH_CANARY].classes != stable.classes:
        raise ValidationError(f"the canary {versions.canary.ref} has other classes than "
                              f"{versions.stable.ref}: score with the stable version alone "
                              "(--stable-only)")
    for where in (output, rejects):  # before anything is scored or logged
        if where is not None and not is_url(where) and Path(where).is_dir():
            raise ValidationError(f"{where} is a folder; give a file path")
    inputs = list(dict.fromkeys(n for m in models.values() for n in m.input_names))
    reader = open_source(source, query)
    job = job or new_id()
    sink: Sink | None = None
    try:
        keys = _check_columns(reader, inputs, keys, stable, versions, triage)
        produced = _output_names(stable.classes)
        sink = _sink(output, table, if_exists, job, [*keys, *produced])
        known = reader.known_rows()
        if known is not None and known <= partition_rows:
            workers = 1  # one partition: starting workers would only cost time
        pool = make_executor(executor, workers)
        if not isinstance(pool, InlineExecutor):  # the workers score: free the sessions
            models = {route: _Described(m.input_names, m.classes, m.runtime)
                      for route, m in models.items()}
            stable = models[BATCH]
            forget_loaded()
    except BaseException:
        reader.close()
        if sink is not None:
            sink.abort()
        raise
    rejects_path = Path(rejects) if rejects is not None else _beside(output, table,
                                                                     ".rejects.csv")
    partial_rejects = rejects_path.with_name(f".{rejects_path.name}.{job}.partial")
    picker = Picker(triage) if triage is not None else None
    settings = project.settings
    logged = _Logged(str(settings.monitor.compacted_path(
        settings.project_dir, settings.serve.log_path(settings.project_dir))), deployment,
        job, log_rows, project.clock.now)
    counts = {"rows": 0, "scored": 0, "rejected": 0, "parts": 0, "canary": 0,
              "shadow_failures": 0}
    try:
        with open(partial_rejects, "w", encoding="utf-8", newline="") as bad_file:
            bad_rows = csv.writer(bad_file)
            bad_rows.writerow(["row", "reason", "values"])
            tasks = _tasks(reader.batches([*keys, *inputs], partition_rows), inputs,
                           versions, settings.artifact_root, logged)
            for (part, batch, route), scores in scored_in_order(tasks, pool, workers):
                model = models[route]
                for position, reason in scores.bad:
                    values = {n: _plain(batch.column(n)[position].as_py())
                              for n in model.input_names}
                    bad_rows.writerow([counts["rows"] + position, reason, json.dumps(values)])
                if len(scores.good):
                    version = versions.canary if route == BATCH_CANARY else versions.stable
                    good = batch if len(scores.good) == batch.num_rows else \
                        batch.take(pa.array(scores.good))
                    scored = _output_table(good.select(keys), scores.outputs, stable.classes,
                                           version.version, job, part, log_rows)
                    sink.write(scored)
                    if picker is not None:  # with the inputs, for the people who look
                        extra = [n for n in model.input_names if n not in scored.column_names]
                        picker.add(_with_columns(scored, good, extra))
                    counts["shadow_failures"] += scores.shadow_error is not None
                counts["canary"] += route == BATCH_CANARY
                counts["parts"] += 1
                counts["rows"] += batch.num_rows
                counts["scored"] += len(scores.good)
                counts["rejected"] += len(scores.bad)
                if progress is not None:
                    progress(batch.num_rows)
        schema = _output_schema(reader, keys, stable.classes)
        reader.close()  # before writing: a query may read the database the table goes to
        sink.commit(schema)
        triaged, webhook_error = _deliver_triage(project, deployment, picker, job, stable,
                                                 versions)
        if counts["rejected"]:
            partial_rejects.replace(rejects_path)
        else:
            partial_rejects.unlink()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        sink.abort()
        partial_rejects.unlink(missing_ok=True)
        if picker is not None:
            picker.partial(job).unlink(missing_ok=True)
        raise
    finally:
        reader.close()
    pool.shutdown()
    used = {route: v.version for route, v in ((BATCH, versions.stable),
                                             (BATCH_CANARY, versions.canary),
                                             (BATCH_SHADOW, versions.shadow))
            if v is not None and (route != BATCH_CANARY or counts["canary"])}
    return ScoreResult(
        deployment, versions.stable.model, versions.stable.version, stable.runtime,
        counts["rows"], counts["scored"], counts["rejected"], sink.where,
        str(rejects_path) if counts["rejected"] else None, job,
        time.perf_counter() - started, triaged,
        str(triage.output) if triage is not None and triaged else None, used,
        counts["parts"], counts["canary"], counts["shadow_failures"], webhook_error)


def _versions(project: Project, deployment: str, candidates: bool) -> _Versions:
    current = project.get_deployment(deployment)

    def version(number: int | None) -> Any:
        return None if number is None else project.model_version(f"{current.model}:{number}")

    if not candidates:
        return _Versions(version(current.stable_version))
    return _Versions(version(current.stable_version), version(current.canary_version),
                     current.canary_weight, version(current.shadow_version))


def _loaded(project: Project, version: Any) -> Any:
    from tidal.batch.workers import loaded

    return loaded(project.settings.artifact_root, version)


def _check_columns(reader: Source, inputs: list[str], keys: list[str] | None, stable: Any,
                   versions: _Versions, triage: Triage | None) -> list[str]:
    """The key columns to copy; refuses an input that lacks a model input, keys it does
    not have or that would clash with the output's own columns, and a triage that
    cannot work, all before any row is scored."""
    names = reader.names
    missing = [name for name in inputs if name not in names]
    if missing:
        raise ValidationError(f"the input has no column {', '.join(map(repr, missing))} "
                              f"(the model {versions.stable.ref} takes "
                              f"{', '.join(stable.input_names)})")
    keys = [n for n in names if n not in inputs] if keys is None else keys
    unknown = [k for k in keys if k not in names]
    if unknown:
        raise ValidationError(f"--key names column(s) the input does not have: "
                              f"{', '.join(unknown)}")
    produced = _output_names(stable.classes)
    clashing = [k for k in keys if k in produced]
    if clashing:
        raise ValidationError(f"the input's column(s) {', '.join(map(repr, clashing))} would "
                              "clash with the output's own; name the columns to copy with "
                              "--key")
    if triage is not None:
        triage.check([*keys, *produced])
    return keys


def _sink(output: str | Path, table: str | None, if_exists: str, job: str,
          columns: list[str]) -> Sink:
    if is_url(output):
        if not table:
            raise ValidationError("a database output needs a table (--table NAME)")
        return TableSink(str(output), table, job, if_exists=if_exists, columns=columns)
    if table:
        raise ValidationError("--table is for a database output: give --output a "
                              "SQLAlchemy URL (e.g. sqlite:///scores.db)")
    path = Path(output)
    if path.suffix.lower() != ".parquet":
        raise ValidationError(f"{path.name}: the output is a .parquet file or a database URL")
    if not path.parent.is_dir():
        raise ValidationError(f"no folder {path.parent} for the output")
    return ParquetSink(path, job)


def _beside(output: str | Path, table: str | None, suffix: str) -> Path:
    """A file named after the output: beside a Parquet output, in the working folder
    for a table."""
    if is_url(output):
        return Path.cwd() / f"{table}{suffix}"
    path = Path(output)
    return path.with_name(path.stem + suffix)


@dataclass(frozen=True)
class _Logged:
    """Where the job logs, and the clock that dates each partition's rows."""

    into: str
    deployment: str
    job: str
    log_rows: int
    now: Callable[[], float]

    def part(self, part: int, route: str) -> LogPart:
        return LogPart(self.into, self.deployment, self.job, part, route, self.log_rows,
                       self.now())


def _tasks(batches: Iterator[pa.RecordBatch], inputs: list[str], versions: _Versions,
           artifact_root: str, logged: _Logged
           ) -> Iterator[tuple[tuple[int, pa.RecordBatch, str], Task]]:
    """Each partition with the version that answers it, as a task for a worker."""
    for part, batch in enumerate(batches):
        version, route = versions.answering(logged.job, part)
        columns = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in inputs}
        yield (part, batch, route), Task(artifact_root, version, versions.shadow, columns,
                                         logged.part(part, route))


def _deliver_triage(project: Project, deployment: str, picker: Picker | None, job: str,
                    stable: Any, versions: _Versions) -> tuple[int, str | None]:
    """The triaged rows to their file, the review queue and the webhook, as asked."""
    if picker is None or picker.picked is None:
        return 0, None
    triage = picker.triage
    triaged = picker.write(job)
    if triage.review:
        queue_for_review(project, deployment, picker.picked, stable.input_names,
                         reason=triage.reason)
    if triage.webhook is None:
        return triaged, None
    about = {"kind": "batch.triage", "deployment": deployment,
             "model": versions.stable.model, "job": job, "reason": triage.reason,
             "project": str(project.settings.project_dir)}
    return triaged, post_to_webhook(triage.webhook, picker.picked, about)


def _output_names(classes: list[Any] | None) -> list[str]:
    """The columns scoring adds to the keys, in order."""
    predicted = ["prediction"] if classes is None else \
        ["label", *(f"proba_{c}" for c in classes)]
    return [*predicted, "model_version", "request_id", "row"]


def _label_type(classes: list[Any] | None) -> pa.DataType:
    """The label column's type: what the classes are (whole numbers, truth values or
    text), so an empty output reads like a full one."""
    if classes and all(isinstance(c, bool) for c in classes):
        return pa.bool_()
    if classes and all(isinstance(c, int) for c in classes):
        return pa.int64()
    return pa.string()


def _with_columns(table: pa.Table, extra: pa.RecordBatch, names: list[str]) -> pa.Table:
    for name in names:
        table = table.append_column(name, extra.column(name))
    return table


def _output_table(keys: pa.RecordBatch, outputs: dict[str, np.ndarray] | None,
                  classes: list[Any] | None, version: int, job: str, part: int,
                  log_rows: int) -> pa.Table:
    """The scored rows: keys, prediction (or label and probabilities), version, and the
    request id and row each was logged under."""
    table = pa.Table.from_batches([keys])
    outputs = outputs or {}
    n = table.num_rows
    if "label" in outputs:
        labels = np.asarray(outputs["label"])
        kind = _label_type(classes)
        table = table.append_column("label", pa.array(
            labels if labels.dtype.kind in "iub" else labels.tolist(), kind))
        proba = np.asarray(outputs.get("probabilities"))
        for index, name in enumerate(classes or []):
            if proba.ndim == 2:
                table = table.append_column(f"proba_{name}", pa.array(proba[:, index],
                                                                      pa.float64()))
    else:
        table = table.append_column("prediction", pa.array(
            np.asarray(outputs["prediction"], dtype=np.float64)))
    ids = each_repeated(request_ids(job, part, n, log_rows), log_rows, n)
    table = table.append_column("model_version", pa.array(np.full(n, version, np.int64)))
    table = table.append_column("request_id", ids)
    return table.append_column("row", pa.array(np.arange(n, dtype=np.int64) % log_rows))


def _output_schema(reader: Source, keys: list[str], classes: list[Any] | None) -> pa.Schema:
    """The output's columns and types (what an output with no rows holds)."""
    fields = [reader.field(k) for k in keys]
    if classes is None:
        fields.append(pa.field("prediction", pa.float64()))
    else:
        fields.append(pa.field("label", _label_type(classes)))
        fields += [pa.field(f"proba_{c}", pa.float64()) for c in classes]
    fields += [pa.field("model_version", pa.int64()), pa.field("request_id", pa.string()),
               pa.field("row", pa.int64())]
    return pa.schema(fields)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value
