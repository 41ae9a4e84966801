"""``tidal score``: a table scored by the version a deployment serves.

The input (a CSV or Parquet file, or a folder of Parquet files) is read in partitions of
``partition_rows`` through PyArrow's dataset reader, so memory stays bounded whatever
its size, and scored here or on ``workers`` processes (in input order). Each
partition's rows are checked like a request to the server (failures go to the rejects
file with the row number and the reason, never dropped silently), predicted with the
same runtime (ONNX Runtime when the version was exported), written
to the output and to the prediction log with the route ``batch`` (one record per
``log_rows`` rows: the monitors see batch traffic like online traffic, and labels join
by request id and row).

Triage (:class:`Triage`) keeps the rows that need people (the top K by a column, or
those above a threshold) in a separate output, and may queue them for review.

Writing is atomic: the output and the rejects file are written under temporary names
beside their final ones and renamed only when every partition is done, so a job that
fails leaves no output (its log records stay: they describe predictions that were made).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tidal.batch.validation import split_valid
from tidal.core.errors import NotFoundError, ValidationError
from tidal.core.ids import new_id

if TYPE_CHECKING:
    from tidal.project import Project

ROUTE = "batch"


@dataclass(frozen=True)
class Triage:
    """Which scored rows need people: the ``top`` rows by ``by`` (highest first), or
    every row whose ``by`` is at least ``above``; written to ``output`` and, with
    ``review``, queued for human review."""

    by: str
    output: Path
    top: int | None = None
    above: float | None = None
    review: bool = False

    def check(self) -> None:
        if (self.top is None) == (self.above is None):
            raise ValidationError("triage takes --top K or --above X (one of them) with --by")
        if self.top is not None and self.top < 1:
            raise ValidationError("--top must be at least 1")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(project: Project, deployment: str, source: str | Path, output: str | Path, *,
          keys: list[str] | None = None, rejects: str | Path | None = None,
          partition_rows: int = 100_000, log_rows: int = 1_000,
          triage: Triage | None = None, workers: int = 1,
          progress: Callable[[int], None] | None = None) -> ScoreResult:
    """Score ``source`` with the version ``deployment`` serves into the Parquet file
    ``output`` (see the module docstring). ``keys``: the input columns copied to the
    output (default: every column that is not a model input); ``workers``: processes
    that score partitions in parallel (1: this process)."""
    from tidal.runtime.loaded import load_version
    from tidal.serve.predlog import PredictionLog, PredictionRecord

    started = time.perf_counter()
    current = project.get_deployment(deployment)
    version = project.model_version(f"{current.model}:{current.stable_version}")
    model = load_version(project.artifacts, version)
    dataset = _dataset(Path(source))
    names = dataset.schema.names
    missing = [name for name in model.input_names if name not in names]
    if missing:
        raise ValidationError(f"the input has no column {', '.join(map(repr, missing))} "
                              f"(the model {version.ref} takes {', '.join(model.input_names)})")
    keys = [n for n in names if n not in model.input_names] if keys is None else keys
    unknown = [k for k in keys if k not in names]
    if unknown:
        raise ValidationError(f"--key names column(s) the input does not have: "
                              f"{', '.join(unknown)}")
    produced = _output_names(model.classes)
    clashing = [k for k in keys if k in produced]
    if clashing:
        raise ValidationError(f"the input's column(s) {', '.join(map(repr, clashing))} would "
                              "clash with the output's own; name the columns to copy with "
                              "--key")
    if triage is not None:
        triage.check()
        if triage.by not in (*keys, *produced):
            raise ValidationError(f"--by {triage.by!r} is not an output column (they are "
                                  f"{', '.join([*keys, *produced])})")
    output = Path(output)
    rejects_path = Path(rejects) if rejects is not None else \
        output.with_name(output.stem + ".rejects.csv")
    job = new_id()
    partial = output.with_name(f".{output.name}.{job}.partial")
    partial_rejects = rejects_path.with_name(f".{rejects_path.name}.{job}.partial")
    picked: pa.Table | None = None  # the rows triage has chosen so far
    settings = project.settings
    log = PredictionLog(settings.serve.log_path(settings.project_dir), durability="async")
    log.start()
    writer: pq.ParquetWriter | None = None
    rows = scored = rejected = 0
    try:
        with open(partial_rejects, "w", encoding="utf-8", newline="") as bad_file:
            bad_rows = csv.writer(bad_file)
            bad_rows.writerow(["row", "reason", "values"])
            batches = _batches(dataset, [*keys, *model.input_names], partition_rows)
            for part, (batch, (good, checked, bad, outputs)) in enumerate(
                    _scored(batches, model, version, settings.artifact_root, workers)):
                for position, reason in bad:
                    values = {n: _plain(batch.column(n)[position].as_py())
                              for n in model.input_names}
                    bad_rows.writerow([rows + position, reason, json.dumps(values)])
                if checked is not None:
                    request_ids, row_numbers = _log(
                        log, PredictionRecord, job, part, checked, outputs, version,
                        deployment, log_rows)
                    table = _output_table(batch.take(pa.array(good)).select(keys), outputs,
                                          model.classes, version.version, request_ids,
                                          row_numbers)
                    if writer is None:
                        writer = pq.ParquetWriter(partial, table.schema, compression="zstd")
                    writer.write_table(table)
                    if triage is not None:  # with the inputs, for the people who look
                        inputs = batch.take(pa.array(good)).select(model.input_names)
                        extra = [n for n in model.input_names if n not in table.column_names]
                        picked = _pick(picked, _with_columns(table, inputs, extra), triage)
                rows += batch.num_rows
                scored += len(good)
                rejected += len(bad)
                if progress is not None:
                    progress(batch.num_rows)
        if writer is None:  # no row scored: still an output, with no rows
            pq.write_table(_empty_output(keys, model.classes, dataset.schema), partial)
        else:
            writer.close()
            writer = None
        log.close()
        triaged = 0
        if triage is not None and picked is not None:
            triaged = picked.num_rows
            chosen = triage.output.with_name(f".{triage.output.name}.{job}.partial")
            pq.write_table(picked, chosen)
            os.replace(chosen, triage.output)
            if triage.review:
                _queue_for_review(project, deployment, picked, model.input_names,
                                  reason=_why(triage))
        os.replace(partial, output)
        if rejected:
            os.replace(partial_rejects, rejects_path)
        else:
            partial_rejects.unlink()
    except BaseException:
        if writer is not None:
            writer.close()
        leftovers = [partial, partial_rejects]
        if triage is not None:
            leftovers.append(triage.output.with_name(f".{triage.output.name}.{job}.partial"))
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        log.close()
        raise
    return ScoreResult(deployment, version.model, version.version, model.runtime, rows,
                       scored, rejected, str(output), str(rejects_path) if rejected else None,
                       job, time.perf_counter() - started, triaged,
                       str(triage.output) if triage is not None and picked is not None
                       else None)


#: the model a scoring worker process loaded once (see :func:`_scored`)
_WORKER_MODEL: Any = None


def _score_partition(model: Any, columns: dict[str, np.ndarray]) -> tuple[Any, ...]:
    """One partition's good rows, their checked columns, the bad rows, the outputs."""
    good, checked, bad = split_valid(model.signature, columns)
    return good, checked, bad, None if checked is None else model.predict(checked)


def _worker_start(artifact_root: str, version: Any) -> None:
    global _WORKER_MODEL
    from tidal.artifacts.store import ArtifactStore
    from tidal.runtime.loaded import load_version

    _WORKER_MODEL = load_version(ArtifactStore(artifact_root), version)


def _worker_score(columns: dict[str, np.ndarray]) -> tuple[Any, ...]:
    return _score_partition(_WORKER_MODEL, columns)


def _scored(batches: Iterator[pa.RecordBatch], model: Any, version: Any,
            artifact_root: str, workers: int) -> Iterator[tuple[pa.RecordBatch, Any]]:
    """Each partition with its scores, in input order: here, or on ``workers``
    processes (each loads the model once; at most two partitions per worker in flight,
    so memory stays bounded)."""
    def columns(batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        return {n: batch.column(n).to_numpy(zero_copy_only=False) for n in model.input_names}

    if workers <= 1:
        for batch in batches:
            yield batch, _score_partition(model, columns(batch))
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_start,
                             initargs=(artifact_root, version)) as pool:
        waiting: deque[tuple[pa.RecordBatch, Any]] = deque()
        for batch in batches:
            waiting.append((batch, pool.submit(_worker_score, columns(batch))))
            if len(waiting) >= 2 * workers:
                done, future = waiting.popleft()
                yield done, future.result()
        while waiting:
            done, future = waiting.popleft()
            yield done, future.result()


def _output_names(classes: list[Any] | None) -> list[str]:
    """The columns scoring adds to the keys, in order."""
    predicted = ["prediction"] if classes is None else \
        ["label", *(f"proba_{c}" for c in classes)]
    return [*predicted, "model_version", "request_id", "row"]


def _with_columns(table: pa.Table, extra: pa.Table, names: list[str]) -> pa.Table:
    for name in names:
        table = table.append_column(name, extra.column(name))
    return table


def _pick(picked: pa.Table | None, table: pa.Table, triage: Triage) -> pa.Table:
    """The rows triage keeps after one more partition: at most ``top`` of them (the
    highest so far), or every row at or above ``above``."""
    import pyarrow.compute as pc

    if triage.above is not None:
        chosen = table.filter(pc.greater_equal(table.column(triage.by), triage.above))
        return chosen if picked is None else pa.concat_tables([picked, chosen])
    both = table if picked is None else pa.concat_tables([picked, table])
    order = pc.sort_indices(both, sort_keys=[(triage.by, "descending")])
    return both.take(order[:triage.top])


def _why(triage: Triage) -> str:
    return (f"top {triage.top} by {triage.by}" if triage.top is not None
            else f"{triage.by} at least {triage.above:g}")


def _queue_for_review(project: Project, deployment: str, picked: pa.Table,
                      inputs: list[str], *, reason: str) -> None:
    """The chosen rows into the review queue, each with its logged request id and row
    (a reviewer's label then joins the prediction like any feedback)."""
    from tidal.store.review import NewReviewItem

    now = project.clock.now()
    outputs = {"label", "prediction"}
    project.review.add([NewReviewItem(
        deployment=deployment, request_id=row["request_id"], row=int(row["row"]),
        event_time=now, reason=f"batch triage: {reason}",
        inputs={k: row[k] for k in inputs},
        outputs={k: v for k, v in row.items() if k in outputs or k.startswith("proba_")})
        for row in picked.to_pylist()], now=now)


def _dataset(source: Path) -> ds.Dataset:
    if not source.exists():
        raise NotFoundError(f"no input at {source}")
    if source.is_dir():
        return ds.dataset(source, format="parquet")
    if source.suffix.lower() == ".parquet":
        return ds.dataset(source, format="parquet")
    if source.suffix.lower() in (".csv", ".gz") and ".csv" in source.name.lower():
        return ds.dataset(source, format="csv")
    raise ValidationError(f"{source.name}: give a .csv, a .parquet or a folder of Parquet "
                          "files")


def _batches(dataset: ds.Dataset, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    """Partitions of at most ``rows`` rows (the reader's batches regrouped)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in _read(dataset.to_batches(columns=list(dict.fromkeys(columns)),
                                          batch_size=rows)):
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _read(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a file that stops being readable midway (a CSV value that
    does not fit the type guessed from the first rows) is an input error, not a crash."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValidationError(f"the input cannot be read past this point: {error} (CSV "
                              "types are guessed from the first rows; convert the file to "
                              "Parquet with explicit types)") from None


def _log(log: Any, record: Any, job: str, part: int, checked: dict[str, np.ndarray],
         outputs: dict[str, np.ndarray], version: Any, deployment: str,
         size: int) -> tuple[list[str], np.ndarray]:
    """The partition's predictions as log records of ``size`` rows each; the request id
    and row of each prediction (the pair labels join on)."""
    rows = len(next(iter(checked.values())))
    now = time.time()
    ids: list[str] = []
    records = []
    for number, start in enumerate(range(0, rows, size)):
        request_id = f"{job}-{part}-{number}"
        stop = min(rows, start + size)
        ids += [request_id] * (stop - start)
        records.append(record(
            request_id=request_id, event_time=now, deployment=deployment,
            model=version.model, version=version.version, route=ROUTE,
            inputs={n: v[start:stop] for n, v in checked.items()},
            outputs={n: v[start:stop] for n, v in outputs.items()}, latency_ms=0.0,
            received_at=now))
    log.write_nowait(records)
    row_numbers = np.arange(rows) % size  # each row's place in its record
    return ids, row_numbers


def _output_table(keys: pa.RecordBatch, outputs: dict[str, np.ndarray],
                  classes: list[Any] | None, version: int, request_ids: list[str],
                  rows: np.ndarray) -> pa.Table:
    table = pa.Table.from_batches([keys])
    if "label" in outputs:
        table = table.append_column("label", pa.array(outputs["label"].tolist()))
        proba = np.asarray(outputs.get("probabilities"))
        for index, name in enumerate(classes or []):
            if proba.ndim == 2:
                table = table.append_column(f"proba_{name}", pa.array(proba[:, index],
                                                                      pa.float64()))
    else:
        table = table.append_column("prediction", pa.array(
            np.asarray(outputs["prediction"], dtype=np.float64)))
    n = table.num_rows
    table = table.append_column("model_version", pa.array(np.full(n, version, np.int64)))
    table = table.append_column("request_id", pa.array(request_ids, pa.string()))
    return table.append_column("row", pa.array(rows.astype(np.int64)))


def _empty_output(keys: list[str], classes: list[Any] | None, schema: pa.Schema) -> pa.Table:
    fields = [schema.field(k) for k in keys]
    if classes is None:
        fields.append(pa.field("prediction", pa.float64()))
    else:
        fields.append(pa.field("label", pa.string()))
        fields += [pa.field(f"proba_{c}", pa.float64()) for c in classes]
    fields += [pa.field("model_version", pa.int64()), pa.field("request_id", pa.string()),
               pa.field("row", pa.int64())]
    return pa.schema(fields).empty_table()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value
