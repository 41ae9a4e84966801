"""Monitoring records: reference profiles, computed windows, check values, alert states.

A window is written once, with its check values, the alert states it moves and the events
of those moves, in one transaction (:meth:`MonitoringRepository.record_window`): a monitor
that dies mid-way leaves either the whole window or nothing, and two monitors racing on
one window cannot both write it (the ``(deployment, start, end)`` key), so the loser's
work is simply dropped. The alert states are read inside that same transaction and the
caller's ``evaluate`` function turns them into the new ones, so hysteresis counts every
window exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Integer, and_, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .database import Database
from .events import record_event
from .feedback import mark_matched
from .models import AlertState, CheckValue, MonitorWindow, ReferenceProfile


@dataclass(frozen=True)
class ReferenceRecord:
    version_id: str
    artifact_sha256: str
    rows: int
    source: str | None
    created_at: float
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WindowRecord:
    id: int
    deployment: str
    start: float
    end: float
    rows: int
    requests: int
    version: int | None
    profile_sha256: str | None
    computed_at: float
    predictions_sha256: str | None = None
    quality_at: float | None = None
    quality_cursor: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckPoint:
    """One check's value in one window (``level``: ok, warn, alert or none)."""

    deployment: str
    check: str
    subject: str
    window_start: float
    window_end: float
    value: float | None
    level: str
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AlertStateRecord:
    deployment: str
    check: str
    subject: str
    state: str
    since: float
    warn_streak: int
    alert_streak: int
    clear_streak: int
    last_value: float | None
    last_window_end: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NewWindow:
    deployment: str
    start: float
    end: float
    rows: int
    requests: int
    version: int | None
    profile_sha256: str | None
    predictions_sha256: str | None = None


@dataclass(frozen=True)
class StateChange:
    """An alert state that moved, written as an event (``monitor.<new state>``)."""

    state: AlertStateRecord
    previous: str
    reason: str


#: (points, the states before) → (the states after, the changes among them)
Evaluate = Callable[[Sequence[CheckPoint], dict[tuple[str, str], AlertStateRecord]],
                    tuple[list[AlertStateRecord], list[StateChange]]]


class MonitoringRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- references ----------------------------------------------------------------------
    def set_reference(self, version_id: str, *, artifact_sha256: str, rows: int,
                      source: str | None, now: float,
                      calibration: dict[str, Any] | None = None) -> ReferenceRecord:
        """Set (or replace) the reference profile of a model version."""
        def write(session: Session) -> None:
            row = session.get(ReferenceProfile, version_id, with_for_update=True)
            if row is None:
                row = ReferenceProfile(version_id=version_id)
                session.add(row)
            row.artifact_sha256, row.rows, row.source, row.created_at = \
                artifact_sha256, rows, source, now
            row.calibration = calibration

        try:
            self.db.transact(write)
        except IntegrityError:  # another process added it meanwhile: now it is an update
            self.db.transact(write)
        return ReferenceRecord(version_id, artifact_sha256, rows, source, now, calibration)

    def get_reference(self, version_id: str) -> ReferenceRecord | None:
        with self.db.read() as session:
            row = session.get(ReferenceProfile, version_id)
            if row is None:
                return None
            return ReferenceRecord(row.version_id, row.artifact_sha256, row.rows, row.source,
                                   row.created_at, row.calibration)

    # -- windows -------------------------------------------------------------------------
    def last_window_end(self, deployment: str) -> float | None:
        """The end of the latest computed window of ``deployment`` (None: none yet)."""
        with self.db.read() as session:
            return session.scalar(select(func.max(MonitorWindow.end))
                                  .where(MonitorWindow.deployment == deployment))

    def record_window(self, window: NewWindow, points: Sequence[CheckPoint],
                      evaluate: Evaluate, *, now: float, actor: str | None
                      ) -> tuple[WindowRecord, list[StateChange]] | None:
        """Write a window, its check values and the alert states ``evaluate`` derives from
        the stored ones, with an event per state change; None if the window exists."""
        def write(session: Session) -> tuple[WindowRecord, list[StateChange]]:
            row = MonitorWindow(
                deployment=window.deployment, start=window.start, end=window.end,
                rows=window.rows, requests=window.requests, version=window.version,
                profile_sha256=window.profile_sha256, computed_at=now,
                predictions_sha256=window.predictions_sha256)
            session.add(row)
            session.flush()
            session.add_all(CheckValue(
                window_id=row.id, deployment=p.deployment, check=p.check, subject=p.subject,
                window_start=p.window_start, window_end=p.window_end, value=p.value,
                level=p.level, details=p.details) for p in points)
            changes = _move_states(session, window.deployment, points, evaluate, now=now,
                                   actor=actor)
            return _window_record(row), changes

        try:
            return self.db.transact(write)
        except IntegrityError:
            with self.db.read() as session:  # another monitor wrote this window first?
                exists = session.scalar(select(MonitorWindow.id).where(
                    MonitorWindow.deployment == window.deployment,
                    MonitorWindow.start == window.start, MonitorWindow.end == window.end))
            if exists is None:
                raise
            return None

    def quality_due(self, deployment: str, *, ready_before: float, horizon_start: float,
                    labels: int, limit: int = 10_000) -> list[WindowRecord]:
        """Windows whose labelled quality is due: never judged and ended before
        ``ready_before``, or judged, ended after ``horizon_start`` and with labels newer
        since it was joined (``labels``: how many labels the deployment has now; labels
        are never deleted, so any label committed since makes it larger)."""
        query = select(MonitorWindow).where(
            MonitorWindow.deployment == deployment,
            MonitorWindow.predictions_sha256.is_not(None),
            MonitorWindow.end <= ready_before,
            or_(MonitorWindow.quality_at.is_(None),
                and_(MonitorWindow.end > horizon_start,
                     MonitorWindow.quality_cursor != labels)))
        with self.db.read() as session:
            return [_window_record(w) for w in session.scalars(
                query.order_by(MonitorWindow.end).limit(limit))]

    def record_quality(self, window: WindowRecord, points: Sequence[CheckPoint],
                       evaluate: Evaluate | None, *, cursor: int, now: float,
                       actor: str | None, matched: Sequence[int] = ()
                       ) -> list[StateChange]:
        """Write (or rewrite) a window's labelled-quality points, and mark the labels
        that were joined (``matched``, feedback ids). A point moves the alert states
        (``evaluate``) the first time it is judged (not ``none``), and never again: a
        window whose labels come late is judged when they come, and counted once."""
        def write(session: Session) -> list[StateChange]:
            # locked: two monitors judging one window take turns (PostgreSQL; SQLite's
            # write transactions are exclusive already)
            row = session.get(MonitorWindow, window.id, with_for_update=True)
            if row is None:
                return []
            judged_now = _upsert_points(session, window.id, points)
            mark_matched(session, matched, now=now)
            if row.quality_at is None:
                row.quality_at = now
            row.quality_cursor = cursor
            if evaluate is None or not judged_now:
                return []
            return _move_states(session, window.deployment, judged_now, evaluate, now=now,
                                actor=actor)

        return self.db.transact(write)

    def record_points(self, window: WindowRecord, points: Sequence[CheckPoint],
                      evaluate: Evaluate | None, *, now: float, actor: str | None
                      ) -> list[StateChange]:
        """Add (or rewrite) points of checks computed apart from the window job (the skew
        check) in a stored window; as for quality, a point moves the alert states the
        first time it is judged."""
        def write(session: Session) -> list[StateChange]:
            if session.get(MonitorWindow, window.id, with_for_update=True) is None:
                return []
            judged_now = _upsert_points(session, window.id, points)
            if evaluate is None or not judged_now:
                return []
            return _move_states(session, window.deployment, judged_now, evaluate, now=now,
                                actor=actor)

        return self.db.transact(write)

    def windows(self, deployment: str, *, since: float | None = None,
                until: float | None = None, limit: int = 10_000) -> list[WindowRecord]:
        """Computed windows of ``deployment``, oldest first, ending in ``(since, until]``."""
        query = select(MonitorWindow).where(MonitorWindow.deployment == deployment)
        if since is not None:
            query = query.where(MonitorWindow.end > since)
        if until is not None:
            query = query.where(MonitorWindow.end <= until)
        with self.db.read() as session:
            return [_window_record(w) for w in session.scalars(
                query.order_by(MonitorWindow.end).limit(limit))]

    def latest_window(self, deployment: str) -> WindowRecord | None:
        """The computed window of ``deployment`` that ends last (None: none yet)."""
        with self.db.read() as session:
            row = session.scalars(select(MonitorWindow).where(
                MonitorWindow.deployment == deployment)
                .order_by(MonitorWindow.end.desc()).limit(1)).first()
            return None if row is None else _window_record(row)

    # -- check values and states ---------------------------------------------------------
    def series(self, deployment: str, check: str, subject: str = "", *,
               since: float | None = None, limit: int = 100_000) -> list[CheckPoint]:
        """One check's time series, oldest first."""
        query = select(CheckValue).where(CheckValue.deployment == deployment,
                                         CheckValue.check == check,
                                         CheckValue.subject == subject)
        if since is not None:
            query = query.where(CheckValue.window_end > since)
        with self.db.read() as session:
            return [_point(v) for v in session.scalars(
                query.order_by(CheckValue.window_end).limit(limit))]

    def bucketed(self, deployment: str, since: float, until: float, buckets: int
                 ) -> list[tuple[str, str, int, float, float, float, float]]:
        """Every check's values in the windows ending in ``(since, until]``, grouped in
        the database into ``buckets`` equal spans of time: ``(check, subject, bucket,
        lowest, highest, mean, last window end)`` per check, subject and bucket. A year
        of hourly windows is a few thousand rows this way, not a hundred thousand."""
        width = max((until - since) / buckets, 1e-9)
        # a bucket holds the windows ending in (its start, its end]: the microsecond taken
        # off puts a window ending on a boundary in the bucket it closes; the offset is
        # not negative (the windows end after ``since``), so truncation is floor
        offset = (CheckValue.window_end - since - 1e-6) / width
        index = (func.floor(offset) if self.db.engine.dialect.name == "postgresql"
                 else cast(offset, Integer)).label("bucket")
        query = (select(CheckValue.check, CheckValue.subject, index,
                        func.min(CheckValue.value), func.max(CheckValue.value),
                        func.avg(CheckValue.value), func.max(CheckValue.window_end))
                 .where(CheckValue.deployment == deployment, CheckValue.window_end > since,
                        CheckValue.window_end <= until, CheckValue.value.is_not(None))
                 .group_by(CheckValue.check, CheckValue.subject, index))
        with self.db.read() as session:
            return [(check, subject, min(int(bucket), buckets - 1), low, high, mean, end)
                    for check, subject, bucket, low, high, mean, end
                    in session.execute(query)]

    def recent_values(self, deployment: str, check: str, *, since: float,
                      before: float) -> dict[str, list[float]]:
        """Every subject's values of one check in the windows ending in ``(since,
        before)``, oldest first (one query for all the subjects)."""
        query = (select(CheckValue.subject, CheckValue.value).where(
            CheckValue.deployment == deployment, CheckValue.check == check,
            CheckValue.window_end > since, CheckValue.window_end < before,
            CheckValue.value.is_not(None)).order_by(CheckValue.window_end))
        found: dict[str, list[float]] = {}
        with self.db.read() as session:
            for subject, value in session.execute(query):
                found.setdefault(subject, []).append(value)
        return found

    def latest_points(self, deployment: str) -> list[CheckPoint]:
        """Every check's value in the latest window that has one, per check and subject."""
        latest = (select(CheckValue.check, CheckValue.subject,
                         func.max(CheckValue.window_end).label("end"))
                  .where(CheckValue.deployment == deployment)
                  .group_by(CheckValue.check, CheckValue.subject).subquery())
        query = select(CheckValue).join(latest, and_(
            CheckValue.check == latest.c.check, CheckValue.subject == latest.c.subject,
            CheckValue.window_end == latest.c.end)).where(
            CheckValue.deployment == deployment).order_by(CheckValue.check,
                                                          CheckValue.subject)
        with self.db.read() as session:
            return [_point(v) for v in session.scalars(query)]

    def states(self, deployment: str | None = None) -> list[AlertStateRecord]:
        """Current alert states (of one deployment, or all), worst first."""
        query = select(AlertState)
        if deployment is not None:
            query = query.where(AlertState.deployment == deployment)
        with self.db.read() as session:
            records = [_state_record(s) for s in session.scalars(query)]
        order = {"alert": 0, "warn": 1, "ok": 2}
        return sorted(records, key=lambda s: (s.deployment, order.get(s.state, 3), s.check,
                                              s.subject))


def _upsert_points(session: Session, window_id: int,
                   points: Sequence[CheckPoint]) -> list[CheckPoint]:
    """Insert or rewrite a window's points; returns those judged for the first time."""
    existing = {(v.check, v.subject): v for v in session.scalars(
        select(CheckValue).where(CheckValue.window_id == window_id,
                                 CheckValue.check.in_({p.check for p in points})))}
    judged_now = []
    for p in points:
        value = existing.get((p.check, p.subject))
        if value is None:
            session.add(CheckValue(
                window_id=window_id, deployment=p.deployment, check=p.check,
                subject=p.subject, window_start=p.window_start, window_end=p.window_end,
                value=p.value, level=p.level, details=p.details))
            first = True
        else:
            first = value.level == "none"
            value.value, value.level, value.details = p.value, p.level, p.details
        if first and p.level != "none":
            judged_now.append(p)
    return judged_now


def _move_states(session: Session, deployment: str, points: Sequence[CheckPoint],
                 evaluate: Evaluate, *, now: float, actor: str | None) -> list[StateChange]:
    """Read the deployment's alert states, let ``evaluate`` move them, write them back,
    and record an event per change."""
    stored = {(s.check, s.subject): s for s in session.scalars(
        select(AlertState).where(AlertState.deployment == deployment))}
    before = {key: _state_record(s) for key, s in stored.items()}
    after, changes = evaluate(points, before)
    for state in after:
        target = stored.get((state.check, state.subject))
        if target is None:
            target = AlertState(deployment=state.deployment, check=state.check,
                                subject=state.subject)
            session.add(target)
        for name, value in state.to_dict().items():
            setattr(target, name, value)
    for change in changes:
        s = change.state
        record_event(session, at=now, kind=f"monitor.{s.state}", entity_type="deployment",
                     entity_id=s.deployment, actor=actor, reason=change.reason,
                     payload={"check": s.check, "subject": s.subject,
                              "previous": change.previous, "state": s.state,
                              "value": s.last_value, "window_end": s.last_window_end})
    return changes


def _window_record(row: MonitorWindow) -> WindowRecord:
    return WindowRecord(row.id, row.deployment, row.start, row.end, row.rows, row.requests,
                        row.version, row.profile_sha256, row.computed_at,
                        row.predictions_sha256, row.quality_at, row.quality_cursor)


def _point(row: CheckValue) -> CheckPoint:
    return CheckPoint(row.deployment, row.check, row.subject, row.window_start,
                      row.window_end, row.value, row.level, row.details)


def _state_record(row: AlertState) -> AlertStateRecord:
    return AlertStateRecord(row.deployment, row.check, row.subject, row.state, row.since,
                            row.warn_streak, row.alert_streak, row.clear_streak,
                            row.last_value, row.last_window_end, row.updated_at)
