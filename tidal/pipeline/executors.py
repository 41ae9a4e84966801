"""Where step executions run: inline (this process) or a local process pool.

A job carries everything a worker needs and nothing it would have to share: the step
(pickled by reference to its module), its parameters, the sha256 of each input and the
artifact root. The worker loads its inputs from the artifact store (every read is
verified against the hash), runs the function, pickles the output into the store and
returns its hash. So a worker never receives or sends large data through the pool's
pipe, and the same job runs unchanged on any executor that can reach the store (the
Ray executor will submit the same function).

Errors are returned, not raised: the worker sends back the error's type, message and
traceback text, because an exception object from user code may not survive pickling.
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from tidal.core.errors import ValidationError


@dataclass(frozen=True)
class InputRef:
    """Stands for an upstream step's output inside a job's arguments."""

    sha256: str


@dataclass(frozen=True)
class Job:
    step: Any  # tidal.pipeline.step.Step
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    artifact_root: str


@dataclass(frozen=True)
class Outcome:
    """What a worker reports: the output's hash and size, or the error."""

    sha256: str | None
    size: int
    seconds: float
    error: str | None = None
    error_type: str | None = None
    trace: str | None = None


def execute(job: Job) -> Outcome:
    """Run one step execution (in whichever process the executor chose)."""
    from tidal.artifacts.store import ArtifactStore
    from tidal.runtime.native import dump_native, load_native

    started = time.perf_counter()
    try:
        store = ArtifactStore(job.artifact_root)
        loaded: dict[str, Any] = {}

        def resolve(value: Any) -> Any:
            if isinstance(value, InputRef):
                if value.sha256 not in loaded:  # verified read, then unpickled
                    loaded[value.sha256] = load_native(store.get_bytes(value.sha256))
                return loaded[value.sha256]
            if isinstance(value, list | tuple):
                return type(value)(resolve(item) for item in value)
            return value

        args = tuple(resolve(value) for value in job.args)
        kwargs = {name: resolve(value) for name, value in job.kwargs.items()}
        output = job.step.function(*args, **kwargs)
        stored = store.put_bytes(dump_native(output))
    except BaseException as exc:  # noqa: BLE001 - reported to the runner, which fails the run
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return Outcome(None, 0, time.perf_counter() - started, str(exc) or repr(exc),
                       type(exc).__name__, traceback.format_exc())
    return Outcome(stored.sha256, stored.size, time.perf_counter() - started)


class InlineExecutor(Executor):
    """Runs each job at once in this process (debugging, tiny pipelines, notebooks)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        return future


EXECUTORS = ("inline", "process")


def make_executor(kind: str, max_workers: int | None = None) -> Executor:
    """An executor by name: ``inline`` or ``process`` (the default, one worker per core)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        return ProcessPoolExecutor(max_workers=max_workers)
    raise ValidationError(f"unknown executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
