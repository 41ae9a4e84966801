"""Where step executions run: inline (this process) or a local process pool.

A job carries everything a worker needs and nothing it would have to share: the step
(pickled by reference to its module), its parameters, the sha256 of each input and the
artifact root. The worker loads its inputs from the artifact store (every read is
verified against the hash), runs the function, pickles the output into the store and
returns its hash. So a worker never receives or sends large data through the pool's
pipe, and the same job runs unchanged on any executor that can reach the store: the
Ray executor submits the same function as a Ray task (on a cluster the artifact root
must be a path or URL every node can reach, and the steps' modules importable there).

Errors are returned, not raised: the worker sends back the error's type, message and
traceback text, because an exception object from user code may not survive pickling.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
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


def _one_thread_each() -> None:
    """Pool workers already run one per core: a worker whose numeric libraries start a
    thread per core too (OpenMP in gradient boosting, BLAS) oversubscribes the machine and
    runs several times slower, so each worker is limited to one native thread."""
    import os

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # no scikit-learn installed: nothing started threads yet
        return
    threadpool_limits(1)


class InlineExecutor(Executor):
    """Runs each job at once in this process (debugging, tiny pipelines, notebooks)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        return future


def _run_in_folder(folder: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """A Ray task: ``fn(*args, **kwargs)`` in ``folder`` when this machine has it."""
    if os.path.isdir(folder):
        os.chdir(folder)
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """Submits each job as a Ray task: a local Ray instance, or a cluster by address.

    ``address`` (else ``$TIDAL_RAY_ADDRESS``) names the cluster; without one Ray
    resolves it itself: ``$RAY_ADDRESS``, then a cluster started with ``ray start`` on
    this machine, else a new local instance. Ray stays up for the rest of the process
    (starting it takes seconds), as usual with Ray; ``ray.shutdown()`` ends it.
    ``max_workers`` caps the tasks in flight at once (default: Ray's own scheduling).

    Each task runs in the submitting process's working folder when the worker has that
    folder (always on a local instance, on a cluster when it is a shared mount), so
    relative paths such as ``tidal.File("data.csv")`` mean what they mean to the process
    executor; elsewhere the worker keeps its own folder and paths should be absolute.
    """

    def __init__(self, max_workers: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValidationError("the ray executor needs Ray: pip install 'tidal-ml[ray]'") \
                from None
        if max_workers is not None and max_workers < 1:
            raise ValidationError(f"max_workers must be at least 1, got {max_workers}")
        self._ray = ray
        if not ray.is_initialized():  # else it is already connected: keep that
            ray.init(address=address or os.environ.get("TIDAL_RAY_ADDRESS") or None,
                     ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
        self._max_workers = max_workers
        self._remote = ray.remote(_run_in_folder)
        self._lock = threading.Lock()
        self._queued: deque[tuple[Future[Any], Any, tuple[Any, ...], dict[str, Any]]] = deque()
        self._in_flight: dict[Future[Any], Any] = {}  # our future -> its ObjectRef

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            self._queued.append((future, fn, args, kwargs))
        self._pump()
        return future

    def _pump(self) -> None:
        """Start queued jobs while there is room (from submit, or Ray's thread)."""
        while True:
            with self._lock:
                full = (self._max_workers is not None
                        and len(self._in_flight) >= self._max_workers)
                if full or not self._queued:
                    return
                future, fn, args, kwargs = self._queued.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                self._in_flight[future] = None  # the slot is taken
            try:
                ref = self._remote.remote(os.getcwd(), fn, *args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                with self._lock:
                    self._in_flight.pop(future, None)
                future.set_exception(exc)
                continue
            with self._lock:
                self._in_flight[future] = ref
            ref.future().add_done_callback(
                lambda done, future=future: self._settle(future, done))

    def _settle(self, future: Future[Any], done: Future[Any]) -> None:
        """A task ended: pass its result on, then start what was waiting for room."""
        with self._lock:
            self._in_flight.pop(future, None)
        if done.cancelled():
            future.set_exception(RuntimeError("the Ray task was cancelled"))
        elif done.exception() is not None:
            future.set_exception(done.exception())
        else:
            future.set_result(done.result())
        self._pump()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Like the standard executors'; Ray itself stays up (``ray.shutdown()`` ends it)."""
        with self._lock:
            queued = list(self._queued)
            if cancel_futures:
                self._queued.clear()
            started = dict(self._in_flight)
        if cancel_futures:
            for future, *_ in queued:
                future.cancel()
            for ref in started.values():
                if ref is not None:
                    self._ray.cancel(ref)
        pending = [*started, *(item[0] for item in queued)]
        if wait:
            futures_wait(pending)


EXECUTORS = ("inline", "process", "ray")


def make_executor(kind: str, max_workers: int | None = None,
                  address: str | None = None) -> Executor:
    """An executor by name: ``inline``, ``process`` (the default, one worker per core) or
    ``ray`` (a Ray cluster at ``address``, else a local Ray instance; optional extra)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        return ProcessPoolExecutor(max_workers=max_workers, initializer=_one_thread_each)
    if kind == "ray":
        return RayExecutor(max_workers, address)
    raise ValidationError(f"unknown executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
