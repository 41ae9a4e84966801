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

_active = threading.local()
#: runs not yet ended, held strongly so that buffered values are written at exit even if
#: the script dropped its reference to the run
_unfinished: set[ActiveRun] = set()


class ActiveRun:
    """A run in progress. Use it as a context manager, or call :meth:`end`."""

    def __init__(self, project: Project, run_id: str, experiment: str) -> None:
        self.project = project
        self.id = run_id
        self.experiment = experiment
        self._lock = threading.RLock()
        self._params: dict[str, str] = {}
        self._logged_params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._metrics: list[PendingMetric] = []
        self._next_step: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self._ended = False
        _unfinished.add(self)

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
        when = self.project.clock.now() if timestamp is None else float(timestamp)
        with self._lock:
            self._check_open()
            next_step = self._next_step
            for key, value in metrics.items():
                if key not in next_step:
                    validate.check_key("metric", key)
                    next_step[key] = 0
                # fast path for plain floats; everything else goes through validation
                number = value if type(value) is float else validate.metric_value(key, value)
                if step is None:
                    point_step = next_step[key]
                else:
                    point_step = step if type(step) is int else validate.step_value(key, step)
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
        with self._lock:
            if self._ended:
                return
            # the last buffered values and the end of the run land in one transaction
            self.project.tracking.log_batch(
                self.id, params=self._params, metrics=self._metrics, tags=self._tags,
                end_status=status, end_time=self.project.clock.now(),
            )
            self._params, self._tags, self._metrics = {}, {}, []
            self._ended = True
            _unfinished.discard(self)

    def info(self) -> RunRecord:
        self.flush()
        return self.project.tracking.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        stack = _run_stack()
        stack.append(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        stack = _run_stack()
        if stack and stack[-1] is self:
            stack.pop()
        if kind is None:
            status = "FINISHED"
        elif issubclass(kind, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self.end(status)

    def _check_open(self) -> None:
        if self._ended:
            raise TidalError(f"run {self.id} has ended; start a new run to log more")

    def _maybe_flush(self) -> None:
        if (len(self._metrics) >= FLUSH_POINTS
                or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            self.flush()

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, experiment={self.experiment!r})"


def active_run() -> ActiveRun | None:
    """The innermost run started with ``with`` in this thread, if any."""
    stack = _run_stack()
    return stack[-1] if stack else None


def _run_stack() -> list[ActiveRun]:
    if not hasattr(_active, "stack"):
        _active.stack = []
    return _active.stack


@atexit.register
def _finish_open_runs() -> None:
    """Runs never ended by the script keep their data: flush and mark them FINISHED."""
    for run in list(_unfinished):
        try:
            run.end("FINISHED")
        except Exception:  # noqa: BLE001 - interpreter is exiting; nothing to report to
            pass
