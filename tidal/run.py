"""The tracking API a training script uses: ``with project.start_run() as run: ...``.

An :class:`ActiveRun` buffers params, tags and metric points in memory and writes them
in one transaction when the buffer fills (10,000 points), when 5 seconds have passed
since the last write (checked at each call), on ``flush()``, and when the run ends. Keys
and values are validated when they are logged, so a bad value fails at the line that
logged it, not later at a flush.
"""

from __future__ import annotations

import atexit
import json
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tidal.artifacts import StoredArtifact, safe_artifact_name
from tidal.core import validate
from tidal.core.errors import ConflictError, TidalError
from tidal.store.tracking import PendingMetric

if TYPE_CHECKING:
    from tidal.project import Project
    from tidal.store.records import RunRecord, VersionRecord

FLUSH_POINTS = 10_000
FLUSH_SECONDS = 5.0
_STEP_LIMIT = validate.STEP_LIMIT

_active = threading.local()
#: runs not yet ended, held strongly so that buffered values are written at exit even if
#: the script dropped its reference to the run
_unfinished: set[ActiveRun] = set()


class ActiveRun:
    """A run in progress. Use it as a context manager, or call :meth:`end`."""

    def __init__(
        self, project: Project, run_id: str, experiment: str,
        logged_params: Mapping[str, str] | None = None,
    ) -> None:
        """``logged_params``: params already stored with the run (as text), so that a
        conflicting value is refused at the call rather than at the next flush."""
        self.project = project
        self.id = run_id
        self.experiment = experiment
        self._lock = threading.RLock()
        self._params: dict[str, str] = {}
        self._logged_params: dict[str, str] = dict(logged_params or {})
        self._tags: dict[str, str] = {}
        self._metrics: list[PendingMetric] = []
        self._next_step: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self._ended = False
        _unfinished.add(self)
        _install_process_hooks()

    # -- logging ---------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        with self._lock:
            self._check_open()
            for key, value in params.items():
                validate.check_key("param", key)
                text = validate.param_value(key, value)
                known = self._logged_params.get(key, self._params.get(key))
                if known is not None and known != text:
                    raise ConflictError(
                        f"param {key!r} is already {known!r} in this run; params are write-once"
                    )
                self._params[key] = text
            self._maybe_flush()

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with self._lock:
            self._check_open()
            for key, value in tags.items():
                validate.check_key("tag", key)
                self._tags[key] = validate.tag_value(key, value)
            self._maybe_flush()

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Log one point; without ``step``, steps count 0, 1, 2... per key in this run."""
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        when = self.project.clock.now() if timestamp is None else validate.timestamp_value(
            timestamp)
        if step is not None and not (type(step) is int and -_STEP_LIMIT <= step < _STEP_LIMIT):
            step = validate.step_value(next(iter(metrics), "?"), step)  # once per call
        with self._lock:
            self._check_open()
            next_step = self._next_step
            for key, value in metrics.items():
                if key not in next_step:
                    validate.check_key("metric", key)
                    next_step[key] = 0
                # fast path for plain floats; everything else goes through validation
                number = value if type(value) is float else validate.metric_value(key, value)
                point_step = next_step[key] if step is None else step
                if point_step >= next_step[key]:
                    next_step[key] = point_step + 1
                self._metrics.append(PendingMetric(key, number, point_step, when))
            self._maybe_flush()

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        """Store a local file as an artifact of this run; returns its sha256."""
        source = Path(path)
        artifact_name = safe_artifact_name(name or source.name)
        return self._record_artifact(artifact_name, self.project.artifacts.put_file(source))

    def log_bytes(self, data: bytes, name: str) -> str:
        artifact_name = safe_artifact_name(name)
        return self._record_artifact(artifact_name, self.project.artifacts.put_bytes(data))

    def _record_artifact(self, name: str, stored: StoredArtifact) -> str:
        self.project.tracking.add_artifact(
            self.id, name, stored.sha256, stored.size, self.project.clock.now())
        return stored.sha256

    def log_dict(self, value: Any, name: str) -> str:
        """Store a JSON-able value as a ``.json`` artifact."""
        data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        return self.log_bytes(data, name)

    def register_model(self, name: str, model: Any, **options: Any) -> VersionRecord:
        """Register ``model`` with this run as its lineage (flushes the run first)."""
        self.flush()
        return self.project.register_model(name, model, run_id=self.id, **options)

    # -- lifecycle -------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything buffered so far in one transaction."""
        with self._lock:
            if not (self._params or self._tags or self._metrics):
                return
            params, tags, metrics = self._params, self._tags, self._metrics
            self.project.tracking.log_batch(self.id, params=params, metrics=metrics, tags=tags)
            self._logged_params.update(params)
            self._params, self._tags, self._metrics = {}, {}, []
            self._last_flush = time.monotonic()

    def end(self, status: str = "FINISHED") -> None:
        """Write what is buffered and end the run, in one transaction.

        If that write fails, the run is still ended (as FAILED) in a second transaction,
        so that it never stays RUNNING forever, and the error is raised.
        """
        with self._lock:
            if self._ended:
                return
            now = self.project.clock.now()
            try:
                self.project.tracking.log_batch(
                    self.id, params=self._params, metrics=self._metrics, tags=self._tags,
                    end_status=status, end_time=now,
                )
            except Exception:
                self._ended = True
                _forget(self)
                try:
                    self.project.tracking.end_run(self.id, "FAILED", now)
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass
                raise
            self._params, self._tags, self._metrics = {}, {}, []
            self._ended = True
            _forget(self)

    def info(self) -> RunRecord:
        self.flush()
        return self.project.tracking.get_run(self.id)

    def activate(self) -> ActiveRun:
        """Make this the run that ``tidal.log_metrics`` and friends write to."""
        stack = _run_stack()
        if self not in stack:
            stack.append(self)
        return self

    def __enter__(self) -> ActiveRun:
        return self.activate()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.end(exit_status(kind, error))

    def _check_open(self) -> None:
        if self._ended:
            raise TidalError(f"run {self.id} has ended; start a new run to log more")

    def _maybe_flush(self) -> None:
        if (len(self._metrics) >= FLUSH_POINTS
                or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            self.flush()

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, experiment={self.experiment!r})"


def exit_status(kind: type[BaseException] | None, error: BaseException | None) -> str:
    """How a run that a ``with`` block (or the process) left should be recorded."""
    if kind is None:
        return "FINISHED"
    if issubclass(kind, SystemExit):
        code = getattr(error, "code", None)
        if code in (None, 0):
            return "FINISHED"  # sys.exit(0) is a normal end
        return "KILLED" if code == 128 + signal.SIGTERM else "FAILED"
    if issubclass(kind, KeyboardInterrupt):
        return "KILLED"
    return "FAILED"


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread, if any."""
    stack = _run_stack()
    return stack[-1] if stack else None


def _run_stack() -> list[ActiveRun]:
    if not hasattr(_active, "stack"):
        _active.stack = []
    return _active.stack


def _forget(run: ActiveRun) -> None:
    _unfinished.discard(run)
    stack = _run_stack()
    if run in stack:
        stack.remove(run)


# -- the process ending with runs still open ----------------------------------------------
_uncaught: list[BaseException] = []


def _install_process_hooks() -> None:
    """Once per process: note uncaught exceptions, and turn SIGTERM into an exit.

    A run left open by a crash is then ended as FAILED rather than FINISHED, and a job
    stopped by SIGTERM (a scheduler's preemption) unwinds its ``with`` blocks and exit
    handlers, so what it buffered is written. A SIGTERM handler the program installed
    itself is left alone.
    """
    if getattr(_install_process_hooks, "done", False):
        return
    _install_process_hooks.done = True  # type: ignore[attr-defined]
    previous_hook = sys.excepthook

    def remember(kind, error, trace):  # type: ignore[no-untyped-def]
        _uncaught.append(error)
        previous_hook(kind, error, trace)

    sys.excepthook = remember
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@atexit.register
def _finish_open_runs() -> None:
    """Runs never ended by the script keep their data: write it and end them."""
    status = "FAILED" if _uncaught else "FINISHED"
    for run in list(_unfinished):
        try:
            run.end(status)
        except Exception as exc:  # noqa: BLE001 - report, then carry on with the others
            print(f"tidal: could not end run {run.id}: {exc}", file=sys.stderr)
