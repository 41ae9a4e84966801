"""Schedule runs: the record of each window a ``[[schedules]]`` entry scored, or not.

A window runs once because it is *claimed* before any work: :meth:`claim` inserts its
row (status ``running``) in a transaction, and the unique ``(schedule, window_start)``
turns a second claim, by another controller or by the same one after a restart, into
"already recorded" instead of a second run. :meth:`finish` then writes how it ended.
Each change lands with its event (``schedule.started``, ``.done``, ``.failed``,
``.skipped``, ``.interrupted``; entity type ``schedule``), in the same transaction.

The ``job`` written at the claim is the claim's token: a finish only updates the row
that still holds its job, so a run that lost its window to a rerun by hand cannot
overwrite the rerun's record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidal.core.errors import ConflictError

from .database import Database
from .events import record_event
from .models import ScheduleRun


@dataclass(frozen=True)
class ScheduleRunRecord:
    id: int
    schedule: str
    window_start: float
    window_end: float
    status: str
    trigger: str
    origin: str
    actor: str | None
    runner: str | None
    job: str | None
    attempts: int
    started_at: float
    finished_at: float | None
    rows: int | None
    scored: int | None
    rejected: int | None
    output: str | None
    seconds: float | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ScheduleRunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, schedule: str, start: float, end: float, *, job: str, trigger: str,
              actor: str | None, runner: str | None, now: float, rerun: bool = False,
              force: bool = False, details: dict[str, Any] | None = None,
              ) -> ScheduleRunRecord | None:
        """Record the window as ``running`` under ``job``, with a ``schedule.started``
        event; None when the window is recorded already. ``rerun``: take a recorded
        window over instead (unless it is running; ``force``: even then)."""
        def write(session: Session) -> ScheduleRunRecord | None:
            row = _row(session, schedule, start)
            if row is not None and not rerun:
                return None
            if row is None:
                row = ScheduleRun(schedule=schedule, window_start=start, attempts=0,
                                  origin=trigger)
                session.add(row)
            elif row.status == "running" and not force:
                raise ConflictError(
                    f"the window of {schedule!r} from {_iso(start)} UTC is being run by "
                    f"{row.runner} (job {row.job}); if that process is gone, run it "
                    "again with --force")
            elif row.status == "skipped" and row.window_end > end:
                _keep_skipping(session, row, end)
            row.window_end, row.status, row.trigger = end, "running", trigger
            row.actor, row.runner, row.job, row.started_at = actor, runner, job, now
            row.attempts += 1
            row.finished_at = row.rows = row.scored = row.rejected = None
            row.output = row.seconds = row.error = None
            session.flush()
            _event(session, row, "schedule.started", now, actor,
                   f"window {_span(row)} ({trigger}, attempt {row.attempts})", details)
            return _record(row)

        try:
            return self.db.transact(write)
        except IntegrityError:  # another writer claimed it between our look and insert
            if rerun:
                raise ConflictError(f"the window of {schedule!r} from {_iso(start)} UTC "
                                    "was claimed meanwhile; look again") from None
            return None

    def finish(self, schedule: str, start: float, *, job: str, status: str, now: float,
               actor: str | None, reason: str, details: dict[str, Any] | None = None,
               rows: int | None = None, scored: int | None = None,
               rejected: int | None = None, output: str | None = None,
               seconds: float | None = None, error: str | None = None,
               ) -> ScheduleRunRecord | None:
        """How the run of ``job`` ended (``done`` or ``failed``), with its event. The row
        is left alone (None returned) if the window was claimed again since."""
        if status not in ("done", "failed"):
            raise ValueError(f"a run finishes done or failed, not {status!r}")

        def write(session: Session) -> ScheduleRunRecord | None:
            row = _row(session, schedule, start)
            mine = row is not None and row.job == job
            if mine:
                row.status, row.finished_at, row.rows, row.scored = status, now, rows, scored
                row.rejected, row.output, row.seconds, row.error = rejected, output, seconds, \
                    error
            record_event(session, at=now, kind=f"schedule.{status}", entity_type="schedule",
                         entity_id=schedule, actor=actor,
                         reason=reason if mine else f"{reason} (the window was claimed "
                         "again meanwhile: its record is the newer run's)",
                         payload={"window_start": start, "job": job, "rows": rows,
                                  "scored": scored, "rejected": rejected, "output": output,
                                  "error": error, **(details or {})})
            return _record(row) if mine else None

        return self.db.transact(write)

    def skip(self, schedule: str, start: float, end: float, *, now: float,
             actor: str | None, reason: str) -> ScheduleRunRecord | None:
        """Record the windows from ``start`` to ``end`` as given up on (None if a row
        starts there already)."""
        def write(session: Session) -> ScheduleRunRecord | None:
            if _row(session, schedule, start) is not None:
                return None
            row = ScheduleRun(schedule=schedule, window_start=start, window_end=end,
                              status="skipped", trigger="controller", origin="controller",
                              actor=actor,
                              attempts=0, started_at=now, finished_at=now, error=reason)
            session.add(row)
            session.flush()
            _event(session, row, "schedule.skipped", now, actor, reason, None)
            return _record(row)

        try:
            return self.db.transact(write)
        except IntegrityError:
            return None

    def interrupt(self, *, trigger: str, now: float, actor: str | None,
                  reason: str) -> list[ScheduleRunRecord]:
        """Mark every ``running`` window of ``trigger`` failed with ``reason``: called by
        the controller when it leads and runs nothing, so each of them was left by a
        controller that died (or lost the lead) during the run. Called every tick, it
        looks before it takes a write lock."""
        running = select(ScheduleRun).where(ScheduleRun.status == "running",
                                            ScheduleRun.trigger == trigger)
        with self.db.read() as session:
            if session.scalar(running.limit(1)) is None:
                return []

        def write(session: Session) -> list[ScheduleRunRecord]:
            rows = list(session.scalars(running.order_by(ScheduleRun.id).with_for_update()))
            for row in rows:
                row.status, row.finished_at, row.error = "failed", now, reason
                _event(session, row, "schedule.interrupted", now, actor,
                       f"window {_span(row)}: {reason}", {"runner": row.runner})
            return [_record(r) for r in rows]

        return self.db.transact(write)

    def last_end(self, schedule: str, *, origin: str) -> float | None:
        """The end of the latest window first claimed (or skipped) by ``origin``; None
        when it has none yet."""
        with self.db.read() as session:
            return session.scalar(select(ScheduleRun.window_end).where(
                ScheduleRun.schedule == schedule, ScheduleRun.origin == origin)
                .order_by(ScheduleRun.window_end.desc()).limit(1))

    def starts(self, schedule: str, since: float) -> set[float]:
        """The starts of the windows recorded from ``since`` on."""
        with self.db.read() as session:
            return set(session.scalars(select(ScheduleRun.window_start).where(
                ScheduleRun.schedule == schedule, ScheduleRun.window_start >= since)))

    def get(self, schedule: str, start: float) -> ScheduleRunRecord | None:
        with self.db.read() as session:
            row = _row(session, schedule, start, lock=False)
            return None if row is None else _record(row)

    def history(self, schedule: str, limit: int = 20) -> list[ScheduleRunRecord]:
        """The schedule's recorded windows, the newest window first."""
        with self.db.read() as session:
            return [_record(r) for r in session.scalars(
                select(ScheduleRun).where(ScheduleRun.schedule == schedule)
                .order_by(ScheduleRun.window_start.desc()).limit(limit))]


def _keep_skipping(session: Session, row: ScheduleRun, end: float) -> None:
    """A skipped span whose first window is run by hand: the rest stays skipped."""
    if _row(session, row.schedule, end) is None:
        session.add(ScheduleRun(
            schedule=row.schedule, window_start=end, window_end=row.window_end,
            status="skipped", trigger=row.trigger, origin=row.origin, actor=row.actor,
            attempts=0,
            started_at=row.started_at, finished_at=row.finished_at, error=row.error))


def _row(session: Session, schedule: str, start: float, *,
         lock: bool = True) -> ScheduleRun | None:
    query = select(ScheduleRun).where(ScheduleRun.schedule == schedule,
                                      ScheduleRun.window_start == start)
    return session.scalar(query.with_for_update() if lock else query)


def _event(session: Session, row: ScheduleRun, kind: str, now: float, actor: str | None,
           reason: str, details: dict[str, Any] | None) -> None:
    record_event(session, at=now, kind=kind, entity_type="schedule", entity_id=row.schedule,
                 actor=actor, reason=reason,
                 payload={"window_start": row.window_start, "window_end": row.window_end,
                          "job": row.job, "trigger": row.trigger, **(details or {})})


def _span(row: ScheduleRun) -> str:
    return f"{_iso(row.window_start)} → {_iso(row.window_end)} UTC"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _record(row: ScheduleRun) -> ScheduleRunRecord:
    return ScheduleRunRecord(
        row.id, row.schedule, row.window_start, row.window_end, row.status, row.trigger,
        row.origin, row.actor, row.runner, row.job, row.attempts, row.started_at,
        row.finished_at, row.rows, row.scored, row.rejected, row.output, row.seconds, row.error)
