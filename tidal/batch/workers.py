"""Partitions scored where the executor puts them: here, on worker processes, or as Ray
tasks.

A task carries one partition's input columns and the records of the versions that score
it (small and picklable), never a loaded model: the worker loads each version once from
the artifact store (hash-verified, like a server replica) and keeps it for the next
partitions, so the same function runs unchanged in this process, in a spawned process or
on a Ray worker that can reach the artifact root. The worker also logs the partition's
predictions (:mod:`tidal.serve.predparts`), so only the outputs travel back; on a Ray
cluster the project's log folder must be a path every node shares, like the artifacts.

The executors are the pipeline's (:mod:`tidal.pipeline.executors`), except that worker
processes are spawned, not forked: a fork of a process that already runs ONNX Runtime
or the prediction log's writer thread may deadlock on a lock some thread held.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from tidal.batch.validation import split_valid
from tidal.core.errors import ValidationError
from tidal.pipeline.executors import InlineExecutor

EXECUTORS = ("process", "ray", "inline")
#: partitions in flight per worker: one scoring while the next waits, so a worker never
#: idles and memory stays bounded by 2 × workers partitions
IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True)
class LogPart:
    """Where and as what a partition's predictions are logged (see
    :mod:`tidal.serve.predparts`): rows ``log_rows`` to a request id, the ids named by
    :func:`request_ids`."""

    into: str
    deployment: str
    job: str
    part: int
    route: str
    log_rows: int
    event_time: float


@dataclass(frozen=True)
class Task:
    """One partition to score: its columns, the version that answers it, the shadow
    version that scores its good rows too (or None), and where its rows are logged."""

    artifact_root: str
    version: Any  # tidal.store.registry VersionRecord
    shadow: Any
    columns: dict[str, np.ndarray]
    log: LogPart | None = None


@dataclass(frozen=True)
class Scores:
    """A partition's outcome: the positions of its good rows and their outputs, its bad
    rows with the reason, and whether the shadow failed (its error)."""

    good: np.ndarray
    bad: list[tuple[int, str]]
    outputs: dict[str, np.ndarray] | None
    shadow_error: str | None = None


#: versions this process has loaded, by artifact root, name, number and hash
_LOADED: dict[tuple[str, str, int, str], Any] = {}


def loaded(artifact_root: str, version: Any) -> Any:
    """``version`` loaded for prediction, once per process."""
    key = (artifact_root, version.model, version.version, version.artifact_sha256)
    if key not in _LOADED:
        from tidal.artifacts.store import ArtifactStore
        from tidal.runtime.loaded import load_version

        _LOADED[key] = load_version(ArtifactStore(artifact_root), version)
    return _LOADED[key]


def forget_loaded() -> None:
    """Drop the versions this process loaded (a job whose workers score keeps none)."""
    _LOADED.clear()


def request_ids(job: str, part: int, rows: int, log_rows: int) -> list[str]:
    """The request ids of a partition's ``rows`` good rows, one per ``log_rows``."""
    return [f"{job}-{part}-{number}" for number in range(-(-rows // log_rows))]


def score_partition(task: Task) -> Scores:
    """Check the partition's rows against the version's signature, predict the good
    ones, let the shadow predict them too (its failure is logged, never raised: a shadow
    never fails the job), and log both."""
    model = loaded(task.artifact_root, task.version)
    good, checked, bad = split_valid(model.signature,
                                     {n: task.columns[n] for n in model.input_names})
    if checked is None:
        return Scores(good, bad, None)
    outputs = model.predict(checked)
    shadow_outputs = shadow_error = None
    if task.shadow is not None:
        from tidal.runtime.inputs import check_columns

        try:
            shadow = loaded(task.artifact_root, task.shadow)
            columns = {n: task.columns[n][good] for n in shadow.input_names}
            shadow_outputs = shadow.predict(check_columns(shadow.signature, columns))
        except Exception as exc:  # noqa: BLE001 - logged as the shadow's failure
            shadow_error = f"{type(exc).__name__}: {exc}"[:200]
    if task.log is not None:
        _log(task, len(good), checked, outputs, shadow_outputs, shadow_error)
    return Scores(good, bad, outputs, shadow_error)


def _log(task: Task, rows: int, checked: dict[str, np.ndarray],
         outputs: dict[str, np.ndarray], shadow_outputs: dict[str, np.ndarray] | None,
         shadow_error: str | None) -> None:
    from pathlib import Path

    from tidal.serve.predparts import failure_rows, prediction_rows, write_part
    from tidal.serve.router import BATCH_SHADOW

    spec = task.log
    assert spec is not None
    into = Path(spec.into)
    ids = request_ids(spec.job, spec.part, rows, spec.log_rows)
    common = {"event_time": spec.event_time, "deployment": spec.deployment,
              "model": task.version.model}
    write_part(into, spec.deployment, spec.event_time, prediction_rows(
        request_ids=ids, rows_per_id=spec.log_rows, count=rows, **common,
        version=task.version.version, route=spec.route, inputs=checked, outputs=outputs),
        f"{spec.job}-{spec.part}-{spec.route}")
    if task.shadow is None:
        return
    if shadow_outputs is None:
        shadow_table = failure_rows(request_ids=ids, **common, version=task.shadow.version,
                                    route=BATCH_SHADOW, status=500, error=shadow_error)
    else:
        shadow_table = prediction_rows(
            request_ids=ids, rows_per_id=spec.log_rows, count=rows, **common,
            version=task.shadow.version, route=BATCH_SHADOW, inputs=checked,
            outputs=shadow_outputs)
    write_part(into, spec.deployment, spec.event_time, shadow_table,
               f"{spec.job}-{spec.part}-{BATCH_SHADOW}")


def _one_thread_each() -> None:
    """Each worker process scores with one thread (ONNX Runtime sessions already do;
    this holds BLAS and OpenMP in a native model to one core too)."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"


def make_executor(kind: str, workers: int) -> Executor:
    """``inline`` (this process), ``process`` (``workers`` spawned processes; one
    means this process) or ``ray`` (a local Ray instance or ``$TIDAL_RAY_ADDRESS``,
    ``workers`` tasks at a time)."""
    if kind not in EXECUTORS:
        raise ValidationError(f"unknown executor {kind!r}: choose one of "
                              f"{', '.join(EXECUTORS)}")
    if workers < 1:
        raise ValidationError(f"workers must be at least 1, got {workers}")
    if kind == "inline" or (kind == "process" and workers == 1):
        return InlineExecutor()
    if kind == "process":
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_one_thread_each)
    from tidal.pipeline.executors import RayExecutor

    return RayExecutor(max_workers=workers)


def scored_in_order(tasks: Iterator[tuple[Any, Task]], executor: Executor,
                    workers: int) -> Iterator[tuple[Any, Scores]]:
    """Each task's scores, in input order, with the item it came with; at most
    ``IN_FLIGHT_PER_WORKER × workers`` tasks are submitted and not yet taken."""
    waiting: deque[tuple[Any, Any]] = deque()
    for item, task in tasks:
        waiting.append((item, executor.submit(score_partition, task)))
        if len(waiting) >= IN_FLIGHT_PER_WORKER * workers:
            item, future = waiting.popleft()
            yield item, future.result()
    while waiting:
        item, future = waiting.popleft()
        yield item, future.result()


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
