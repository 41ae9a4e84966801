"""The window job: the prediction log, window by window, into check values and alerts.

:meth:`Monitor.run` first compacts the prediction log into Parquet (exactly once, see
:mod:`tidal.serve.compaction`), then, per deployment, takes every tumbling window of
``[monitor] window`` seconds of event time that closed since the last run (a window
closes once the clock passes its end plus ``lateness``) and, for each:

1. reads its rows (stable and canary; shadow rows are the candidate's business) from the
   hour partitions it overlaps, keeping the current hour in memory while the windows
   inside it are computed, so a day of 5-minute windows reads each hour once;
2. profiles its inputs and monitored outputs on the reference's bins, and stores the
   profile as an artifact (so longer periods are merges, never rereads);
3. computes the checks (:mod:`tidal.monitor.checks`) against the reference of the version
   that answered most of its rows (:mod:`tidal.monitor.reference`);
4. writes the window, its check values, the alert states they move and an event per move
   in one transaction (:mod:`tidal.store.monitoring`), then tells the sinks.

No window is computed twice and none is reread later: cost is linear in new data. Records
that arrive for a window after it was computed are not counted in it; ``lateness`` is
how long the job waits for them. Windows without rows are skipped, not stored.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidal.core.clock import Clock
from tidal.core.errors import NotFoundError
from tidal.data.profiles import profile
from tidal.monitor.alerts import ALERT, DEFAULT_RULES, NONE, Rule, Rules, evaluate
from tidal.monitor.checks import Measured, WindowData, compute, error_rates
from tidal.monitor.outputs import outputs_of_table
from tidal.monitor.quality import (
    join,
    matched_ids,
    measure,
    measure_slices,
    prediction_index,
    read_index,
)
from tidal.monitor.reference import Reference, reference_for
from tidal.monitor.review import alerting_slice_rows, pick
from tidal.monitor.sinks import LogSink, WebhookSink
from tidal.serve.compaction import compact, concat_parts
from tidal.serve.router import SHADOW_ROUTES
from tidal.store.monitoring import CheckPoint, NewWindow, StateChange, WindowRecord

if TYPE_CHECKING:
    from tidal.project import Project

log = logging.getLogger("tidal.monitor")

#: columns of a window's frame that checks read raw but that are not profiled
_NOT_PROFILED = ("latency_ms", "row")
_HOUR = 3600.0


@dataclass
class DeploymentRun:
    """What one run did for one deployment."""

    deployment: str
    windows: list[WindowRecord] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
    skipped_empty: int = 0
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "windows": len(self.windows),
                "rows": sum(w.rows for w in self.windows),
                "first_window": self.windows[0].start if self.windows else None,
                "last_window": self.windows[-1].end if self.windows else None,
                "state_changes": [{"check": c.state.check, "subject": c.state.subject,
                                   "previous": c.previous, "state": c.state.state,
                                   "reason": c.reason} for c in self.changes],
                "note": self.note}


@dataclass
class MonitorRun:
    compacted: dict[str, Any] | None
    deployments: list[DeploymentRun]

    def to_dict(self) -> dict[str, Any]:
        return {"compacted": self.compacted,
                "deployments": [d.to_dict() for d in self.deployments]}


class Monitor:
    """Window jobs for a project's deployments (see the module docstring).

    ``clock`` defaults to the project's; ``sinks`` to the log plus the configured
    webhooks. Call :meth:`close` (or use ``with``) to let the webhooks finish.
    """

    def __init__(self, project: Project, *, clock: Clock | None = None,
                 sinks: list[Any] | None = None) -> None:
        self.project = project
        self.clock = clock or project.clock
        settings = project.settings
        self.config = settings.monitor
        self.log_folder = settings.serve.log_path(settings.project_dir)
        self.compacted = self.config.compacted_path(settings.project_dir, self.log_folder)
        objective = settings.serve.latency_objective_ms
        defaults = dict(DEFAULT_RULES)
        defaults["latency_p99_ms"] = Rule("latency_p99_ms", warn=objective,
                                          alert=4 * objective)
        self.rules = Rules(self.config.alerts, defaults=defaults)
        self.sinks = sinks if sinks is not None else [LogSink()] + [
            WebhookSink(hook.url, timeout=hook.timeout, attempts=hook.attempts,
                        on_failure=self._webhook_failed, project=str(settings.project_dir))
            for hook in self.config.webhooks]
        self._references: dict[str, Reference | None] = {}
        self._recent_values: dict[tuple[str, str, float, float], dict[str, list[float]]] = {}

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self, timeout: float = 30.0) -> None:
        for sink in self.sinks:
            sink.close(timeout)

    # -- the run -------------------------------------------------------------------------
    def run(self, deployments: Iterable[str] | None = None, *,
            on_window: Callable[[str, WindowRecord], None] | None = None) -> MonitorRun:
        """Compact the log, then compute every closed window not computed yet."""
        compacted = None
        if self.log_folder.is_dir():
            compacted = compact(self.log_folder, self.compacted)
        names = list(deployments) if deployments is not None else self.deployment_names()
        now = self.clock.now()
        runs = []
        for name in names:  # one deployment's failure does not stop the others
            try:
                runs.append(self.run_deployment(name, now, on_window=on_window))
            except Exception as exc:  # noqa: BLE001 - its windows are retried next run
                log.exception("monitoring %s stopped", name)
                runs.append(DeploymentRun(name, note=f"stopped: {exc}"))
        return MonitorRun(compacted, runs)

    def deployment_names(self) -> list[str]:
        """Deployments in the store, and any that only the prediction log knows."""
        names = {d.name for d in self.project.list_deployments()}
        if self.compacted.is_dir():
            names |= {unquote(p.name[len("deployment="):])
                      for p in self.compacted.glob("deployment=*") if p.is_dir()}
        return sorted(names)

    def pending_windows(self, deployment: str, now: float) -> list[tuple[float, float]]:
        """The closed windows of ``deployment`` not computed yet that may hold rows."""
        last = self.project.monitoring.last_window_end(deployment)
        return self._pending(now, HourReader(self.compacted, deployment, since=last).hours,
                             last)

    def _pending(self, now: float, hours: list[float], last: float | None
                 ) -> list[tuple[float, float]]:
        """The windows from ``last`` (the end of the last one computed) to ``now`` that
        overlap one of ``hours`` (the starts of the deployment's hour partitions)."""
        length, lateness = self.config.window, self.config.lateness
        if not hours:
            return []
        start = last if last is not None else math.floor(hours[0] / length) * length
        spans = []
        while start + length + lateness <= now:
            end = start + length
            # the first hour partition that ends after the window starts
            index = bisect.bisect_right(hours, start - _HOUR)
            if index == len(hours):
                break  # no data from here on
            if hours[index] < end:
                spans.append((start, end))
                start = end
            else:  # jump over a stretch without data
                start = max(end, math.floor(hours[index] / length) * length)
        return spans

    def run_deployment(self, deployment: str, now: float, *,
                       on_window: Callable[[str, WindowRecord], None] | None = None
                       ) -> DeploymentRun:
        result = DeploymentRun(deployment)
        last = self.project.monitoring.last_window_end(deployment)
        reader = HourReader(self.compacted, deployment, since=last)
        for start, end in self._pending(now, reader.hours, last):
            wants_shadow = self.config.review.shadow_disagreement
            table, shadow = reader.window_and_shadow(start, end, shadow=wants_shadow)
            if table.num_rows == 0:
                result.skipped_empty += 1
                continue
            written = self._window(deployment, start, end, table,
                                   shadow if wants_shadow else None)
            if written is None:
                continue
            record, changes = written
            result.windows.append(record)
            result.changes += changes
            for change in changes:
                for sink in self.sinks:
                    sink.send(change)
            if on_window is not None:
                on_window(deployment, record)
        result.changes += self.run_quality(deployment, now)
        return result

    def run_quality(self, deployment: str, now: float) -> list[StateChange]:
        """Join the labels to the windows whose quality is due (see
        :mod:`tidal.monitor.quality`); returns the alert state changes."""
        # counted before the labels are read: one committed after this is counted next run
        counted = self.project.feedback.count(deployment)
        if counted == 0:
            return []
        changes: list[StateChange] = []
        for window in self.project.monitoring.quality_due(
                deployment, ready_before=now - self.config.label_delay,
                horizon_start=now - self.config.label_horizon, labels=counted):
            assert window.predictions_sha256 is not None
            index = read_index(self.project.artifacts.get_bytes(window.predictions_sha256))
            keys = index.column("key").drop_null().to_pylist() \
                if "key" in index.column_names else []
            labels = self.project.feedback.labels_for(
                deployment, index.column("request_id").drop_null().to_pylist(), keys,
                start=window.start, end=window.end)
            model, version_number = _majority_version(index)
            version = self._version(model or self._model_of(deployment),
                                    version_number or window.version)
            signature = (version.signature if version else None) or {}
            joined = join(index, labels)
            measured = measure(index, joined, task=signature.get("task"),
                               classes=signature.get("classes"),
                               reference=version.metrics if version else None,
                               min_rows=self.config.min_rows)
            if len(measured) > 1:  # judged overall: per slice too
                measured += measure_slices(index, joined,
                                           self.project.settings.pipeline.slices,
                                           task=signature.get("task"),
                                           classes=signature.get("classes"),
                                           reference=version.metrics if version else None)
            points = [self.point(deployment, window.start, window.end, m) for m in measured]
            if labels.corrections:
                points = [replace(p, details={**(p.details or {}),
                                              "corrected": labels.corrections})
                          if p.check == "labelled" else p for p in points]
            stamp = self.clock.now()
            changes += self.project.monitoring.record_quality(
                window, points, functools.partial(evaluate, rules=self.rules, now=stamp),
                cursor=counted, now=stamp, actor="monitor",
                matched=matched_ids(index, labels))
        return changes

    def _model_of(self, deployment: str) -> str | None:
        try:
            return self.project.get_deployment(deployment).model
        except NotFoundError:
            return None

    # -- one window ----------------------------------------------------------------------
    def _window(self, deployment: str, start: float, end: float, table: pa.Table,
                shadow: pa.Table | None = None
                ) -> tuple[WindowRecord, list[StateChange]] | None:
        table, failed = _split_failures(table)
        if shadow is not None and shadow.num_rows:
            shadow = _split_failures(shadow)[0]  # a failed shadow call has nothing to compare
        model, version = _majority_version(table if table.num_rows else failed)
        version_record = self._version(model, version)
        requests = pc.count_distinct(table.column("request_id")).as_py() \
            if table.num_rows and "request_id" in table.column_names else table.num_rows
        measured = error_rates(requests, failed)
        profile_sha = index_sha = None
        if table.num_rows:
            reference = self._reference(version_record)
            features = reference.features if reference is not None else sorted(
                name[len("in."):] for name in table.column_names if name.startswith("in."))
            frame = _monitored_frame(table, features)
            window_profile = profile(
                frame, reference=reference.profile if reference else None,
                columns=[name for name in frame.column_names if name not in _NOT_PROFILED])
            measured = compute(
                WindowData(frame, window_profile, features, requests, end), reference,
                registered_at=version_record.created_at if version_record else None,
                min_rows=self.config.min_rows) + measured
            profile_sha = self.project.artifacts.put_bytes(window_profile.to_bytes()).sha256
            index_sha = self.project.artifacts.put_bytes(prediction_index(
                table, [s.column for s in self.project.settings.pipeline.slices])).sha256
            self.project.review.add(pick(deployment, table, frame, shadow,
                                         self.config.review,
                                         self._alerting_slices(deployment, table)),
                                    now=self.clock.now())
        else:  # only failures in this window
            measured = [Measured("rows", "", 0.0), Measured("requests", "", 0.0), *measured]
        points = [self.point(deployment, start, end, m) for m in measured]
        now = self.clock.now()
        return self.project.monitoring.record_window(
            NewWindow(deployment, start, end, table.num_rows, requests, version, profile_sha,
                      index_sha), points,
            lambda pts, before: evaluate(pts, before, self.rules, now=now),
            now=now, actor="monitor")

    def _alerting_slices(self, deployment: str, table: pa.Table) -> np.ndarray | None:
        """The window's rows in a slice whose ``quality_slice_drop`` is in alert."""
        slices = self.project.settings.pipeline.slices
        if not slices or not self.config.review.alerting_slices \
                or self.config.review.max_per_window == 0:
            return None
        subjects = [s.subject for s in self.project.monitoring.states(deployment)
                    if s.check == "quality_slice_drop" and s.state == ALERT]
        if not subjects:
            return None
        try:
            return alerting_slice_rows(table, subjects, slices)
        except (ValueError, TypeError) as exc:  # a slice column logged as text, say
            log.warning("review: cannot cut the alerting slices of %s: %s", deployment, exc)
            return None

    def point(self, deployment: str, start: float, end: float, m: Measured) -> CheckPoint:
        """A measured value as a stored point, judged by the rules: by itself, or, for a
        rule with a longer ``window``, as the mean of its values over that span (the
        earlier ones read from the store; the mean is kept in the point's details)."""
        value = None if m.value is None or not math.isfinite(m.value) else float(m.value)
        rule = self.rules.rule_for(m.check, m.subject)
        if rule is None:
            return CheckPoint(deployment, m.check, m.subject, start, end, value, NONE,
                              m.details)
        details, judged = m.details, value
        if rule.window is not None and rule.window > end - start and value is not None:
            earlier = self._recent(deployment, m.check, end - rule.window, end).get(
                m.subject, [])
            judged = (sum(earlier) + value) / (len(earlier) + 1)
            details = {**(details or {}), "judged": judged, "judged_windows": len(earlier) + 1}
        return CheckPoint(deployment, m.check, m.subject, start, end, value,
                          rule.level(judged), details)

    def _recent(self, deployment: str, check: str, since: float,
                end: float) -> dict[str, list[float]]:
        """A check's earlier values per subject, read once per window (every subject of
        a windowed rule needs them)."""
        key = (deployment, check, since, end)
        if key not in self._recent_values:
            self._recent_values = {key: self.project.monitoring.recent_values(
                deployment, check, since=since, before=end)} | {
                k: v for k, v in self._recent_values.items() if k[3] == end}
        return self._recent_values[key]

    def _version(self, model: str | None, version: int | None):  # -> VersionRecord | None
        if model is None or version is None:
            return None
        try:
            return self.project.model_version(f"{model}:{version}")
        except NotFoundError:
            return None

    def _reference(self, version: Any) -> Reference | None:
        """The version's reference (None when there is nothing to build one from). Any
        other failure propagates: the deployment's windows wait for the next run rather
        than being stored, for good, without their drift checks."""
        if version is None:
            return None
        if version.id not in self._references:
            self._references[version.id] = reference_for(self.project, version)
        return self._references[version.id]

    def _webhook_failed(self, url: str, body: dict[str, Any], error: str) -> None:
        from tidal.store.events import record_event

        self.project.db.transact(lambda session: record_event(
            session, at=self.clock.now(), kind="monitor.webhook_failed",
            entity_type="deployment", entity_id=str(body.get("deployment")),
            actor="monitor", reason=f"{url}: {error}", payload=body))


class HourReader:
    """The rows of one deployment's hour partitions. The partitions are listed once; the
    last hour read is kept, split into its stable/canary rows and its shadow rows, so the
    windows inside one hour read it once between them, shadows included."""

    def __init__(self, compacted: Path, deployment: str, since: float | None = None) -> None:
        """``since``: only the hours from the one holding ``since`` on are listed (a
        job that knows where it stands does not pay for every hour ever logged)."""
        folder = compacted / f"deployment={quote(deployment, safe='')}"
        self.parts: dict[float, list[str]] = {}
        # hour folder names sort as their times do, so they are filtered unparsed
        first = "" if since is None else \
            time.strftime("hour=%Y-%m-%dT%H", time.gmtime(since - _HOUR))
        if folder.is_dir():
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("hour=") and entry.name >= first \
                            and entry.is_dir():
                        with os.scandir(entry.path) as files:
                            parts = sorted(f.path for f in files
                                           if f.name.startswith("part-")
                                           and f.name.endswith(".parquet"))
                        if parts:
                            self.parts[_hour_start(entry.name)] = parts
        self.hours = sorted(self.parts)
        self._hour: float | None = None
        self._tables: tuple[pa.Table, pa.Table] | None = None

    def window(self, start: float, end: float) -> pa.Table:
        """The stable and canary rows with event times in ``[start, end)``."""
        return self.window_and_shadow(start, end, shadow=False)[0]

    def window_and_shadow(self, start: float, end: float, *, shadow: bool = True
                          ) -> tuple[pa.Table, pa.Table]:
        """The stable and canary rows with event times in ``[start, end)``, and the
        shadow's (an empty table unless ``shadow``), from one read of each hour."""
        first = bisect.bisect_right(self.hours, start - _HOUR)
        last = bisect.bisect_left(self.hours, end)
        low, high = round(start * 1e6), round(end * 1e6)
        found: tuple[list[pa.Table], list[pa.Table]] = ([], [])
        for hour in self.hours[first:last]:
            for kind, table in enumerate(self._read(hour)[:2 if shadow else 1]):
                if hour < start or hour + _HOUR > end:  # the hour sticks out of the window
                    times = table.column("event_time").cast(pa.int64())
                    table = table.filter(pc.and_(pc.greater_equal(times, low),
                                                 pc.less(times, high)))
                if table.num_rows:
                    found[kind].append(table)
        stable, shadows = (concat_parts(tables) if tables else pa.table({})
                           for tables in found)
        return stable, shadows

    def _read(self, hour: float) -> tuple[pa.Table, pa.Table]:
        if hour == self._hour and self._tables is not None:
            return self._tables
        table = concat_parts([pq.read_table(part) for part in self.parts[hour]])
        if "route" in table.column_names:
            is_shadow = pc.fill_null(pc.is_in(table.column("route"),
                                                 pa.array(SHADOW_ROUTES)), False)
            tables = table.filter(pc.invert(is_shadow)), table.filter(is_shadow)
        else:
            tables = table, table.slice(0, 0)
        self._hour, self._tables = hour, tables
        return tables


def _split_failures(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(prediction rows, rows of failed requests): logs written before failures were
    logged have no status column, and all their rows are predictions."""
    if "status" not in table.column_names:
        return table, table.slice(0, 0)
    failed = pc.greater_equal(pc.fill_null(table.column("status"), 200), 400)
    return table.filter(pc.invert(failed)), table.filter(failed)


def _monitored_frame(table: pa.Table, features: list[str]) -> pa.Table:
    """The window's inputs (``in.*`` of the features), monitored outputs, latency, row."""
    columns: dict[str, Any] = {}
    for feature in features:
        name = f"in.{feature}"
        if name in table.column_names:
            column = table.column(name)
            if pa.types.is_null(column.type):
                column = column.cast(pa.float64())
            columns[name] = column
    for name, values in outputs_of_table(table).items():
        columns[name] = values if isinstance(values, pa.ChunkedArray | pa.Array) else \
            pa.array(np.asarray(values))
    for name in ("latency_ms", "row"):
        if name in table.column_names:
            columns[name] = table.column(name)
    return pa.table(columns)


def _majority_version(table: pa.Table) -> tuple[str | None, int | None]:
    if "version" not in table.column_names or "model" not in table.column_names:
        return None, None
    counts = pc.value_counts(table.column("version").drop_null())
    if len(counts) == 0:
        return None, None
    values, tallies = counts.field("values"), counts.field("counts").to_numpy()
    version = values[int(np.argmax(tallies))].as_py()
    models = table.column("model").filter(pc.equal(table.column("version"), version))
    return models[0].as_py(), version


def _hour_start(name: str) -> float:
    import calendar
    import time

    return float(calendar.timegm(time.strptime(name[len("hour="):], "%Y-%m-%dT%H")))
