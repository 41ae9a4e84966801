"""Scheduled batch scoring: each window of a ``[[schedules]]`` entry scored once.

A schedule's cron firing at T stands for the window ``[previous firing, T)``; it is due
once the project clock has reached T (the clock, never the wall clock: a replay at a
thousand times real speed fires schedules on its own time). The window's input and
output are the schedule's patterns filled with its ``{start}`` and ``{end}``.

Which windows run (:func:`tidal.core.cron.due_windows`):

- a schedule never run by the controller runs its latest complete window only (no
  backfill from the epoch);
- after that, each window since the last one the controller accounted for runs once,
  oldest first; after a downtime at most the newest ``catch_up`` of them, the older ones
  recorded as one ``skipped`` span;
- the controller runs at most one window per schedule per tick, so a catch-up of many
  windows never holds up the monitors and rollouts of the ticks in between.

Exactly once: a window is claimed by inserting its row before any scoring
(:class:`tidal.store.schedules.ScheduleRunRepository`); a window already recorded, by
another controller, by this one before a restart, or by hand, is never run again by the
controller. A run that fails (a missing input file, an unknown deployment) is recorded
``failed`` with the reason and is not retried by later ticks: the next window runs when
it is due, and the failed one is rerun by hand once its cause is fixed.

A run left ``running`` by a controller that died is marked ``failed`` ("interrupted")
when a controller next leads, and is not rerun automatically: its job may have logged
part of its predictions already (their request ids start with the recorded job id), and
a second run would log them twice. ``tidal schedules run NAME --window START`` reruns
it (or any window) explicitly.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidal.core.config import ScheduleSection, resolve_store_url
from tidal.core.cron import Due, due_windows, format_window, utc
from tidal.core.errors import NotFoundError, TidalError, ValidationError
from tidal.core.ids import new_id
from tidal.store.schedules import ScheduleRunRecord

if TYPE_CHECKING:
    from tidal.batch.job import ScoreResult
    from tidal.project import Project

log = logging.getLogger("tidal.batch")
CONTROLLER = "controller"
MANUAL = "manual"


class Schedules:
    """The project's schedules, run by the controller (:meth:`run_due`) or by hand
    (:meth:`run_window`). ``runner`` names this process in the runs it claims."""

    def __init__(self, project: Project, *, actor: str = CONTROLLER,
                 runner: str | None = None) -> None:
        self.project = project
        self.actor = actor
        self.runner = runner or f"{socket.gethostname()}:{os.getpid()}"
        self.runs = project.schedule_runs

    def get(self, name: str) -> ScheduleSection:
        for schedule in self.project.settings.schedules:
            if schedule.name == name:
                return schedule
        known = ", ".join(s.name for s in self.project.settings.schedules) or "none"
        raise NotFoundError(f"no schedule {name!r} in tidal.toml (there are: {known})")

    # -- the controller's part -----------------------------------------------------------
    def run_due(self, *, stop: Callable[[], bool] | None = None) -> list[ScheduleRunRecord]:
        """One tick: mark runs left by a dead controller interrupted, then run the oldest
        due window of each schedule (recording older missed ones as skipped). ``stop()``
        true ends the round before the next schedule (the controller lost its lead)."""
        now = self.project.clock.now()
        records = self.runs.interrupt(
            trigger=CONTROLLER, now=now, actor=self.actor,
            reason="interrupted: the controller running it stopped before it finished; "
                   "the prediction log may hold part of its predictions (request ids "
                   "starting with the job id), so it is not rerun automatically: rerun it "
                   "with `tidal schedules run NAME --window START`")
        for schedule in self.project.settings.schedules:
            if stop is not None and stop():
                break
            records += self._run_next(schedule)
        return records

    def _run_next(self, schedule: ScheduleSection) -> list[ScheduleRunRecord]:
        now = self.project.clock.now()
        due = self._due(schedule, now)
        records = []
        if due.skipped is not None:
            start, end = due.skipped
            skipped = self.runs.skip(
                schedule.name, start, end, now=now, actor=self.actor,
                reason=f"missed windows from {_iso(start)} to {_iso(end)} UTC skipped: more "
                       f"than catch_up = {schedule.catch_up} were due")
            records += [skipped] if skipped is not None else []
        for start, end in self._unrecorded(schedule, due.windows):
            record = self.run_window(schedule, start, end, trigger=CONTROLLER)
            if record is not None:  # else claimed meanwhile: the next one, then
                return [*records, record]
        return records

    def _due(self, schedule: ScheduleSection, now: float) -> Due:
        after = self.runs.last_end(schedule.name, origin=CONTROLLER)
        return due_windows(schedule.parsed_cron(), after=after, now=now, limit=schedule.catch_up)

    def _unrecorded(self, schedule: ScheduleSection,
                    windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """The windows with no record (one run by hand ahead of the controller has)."""
        if not windows:
            return []
        recorded = self.runs.starts(schedule.name, windows[0][0])
        return [(s, e) for s, e in windows if s not in recorded]

    # -- one window ----------------------------------------------------------------------
    def window(self, schedule: ScheduleSection, start: float) -> tuple[float, float]:
        """The complete window of ``schedule`` that starts at ``start`` (ValidationError
        if none does, or if it has not ended yet)."""
        cron = schedule.parsed_cron()
        recorded = self.runs.get(schedule.name, start)
        if recorded is not None and recorded.status != "skipped":
            end = recorded.window_end  # as it was run (the cron may have changed since)
        elif cron.latest(start) == start:
            end = cron.next_after(start)
        else:
            holding = cron.latest(start)
            raise ValidationError(
                f"no window of {schedule.name!r} ({schedule.cron}) starts at {_iso(start)} "
                f"UTC; the one holding it starts at {_iso(holding)}")
        if end > self.project.clock.now():
            raise ValidationError(f"the window from {_iso(start)} UTC ends at {_iso(end)}, "
                                  "which is still to come: it can be scored after that")
        return start, end

    def run_window(self, schedule: ScheduleSection, start: float, end: float, *,
                   trigger: str = MANUAL, rerun: bool = False, force: bool = False,
                   raise_errors: bool = False) -> ScheduleRunRecord | None:
        """Claim the window, score it and record how it ended; None if it was recorded
        already (``rerun``: run it again all the same; ``force``: even if it is marked
        running). A failure is recorded and returned (``raise_errors``: raised)."""
        job = new_id()
        details = {"deployment": schedule.deployment}
        claimed = self.runs.claim(schedule.name, start, end, job=job, trigger=trigger,
                                  actor=self.actor, runner=self.runner,
                                  now=self.project.clock.now(), rerun=rerun, force=force,
                                  details=details)
        if claimed is None:
            return None
        try:
            result = self._score(schedule, start, end, job)
        except BaseException as error:
            reason = str(error) if isinstance(error, TidalError) else \
                f"{type(error).__name__}: {error}"
            if isinstance(error, TidalError):
                log.warning("schedule %s: the window from %s UTC failed: %s",
                            schedule.name, _iso(start), reason)
            elif isinstance(error, Exception):
                log.exception("schedule %s: the window from %s UTC failed", schedule.name,
                              _iso(start))
            failed = self.runs.finish(schedule.name, start, job=job, status="failed",
                                      now=self.project.clock.now(), actor=self.actor,
                                      reason=reason, details=details, error=reason)
            if raise_errors or not isinstance(error, Exception):
                raise
            return failed or claimed
        summary = "; ".join([
            f"scored {result.scored:,} of {result.rows:,} rows with {result.model}:"
            f"{result.version}",
            *([f"{result.rejected:,} rejected"] if result.rejected else []),
            *([f"triaged rows not delivered: {result.webhook_error}"]
              if result.webhook_error else [])])
        done = self.runs.finish(
            schedule.name, start, job=job, status="done", now=self.project.clock.now(),
            actor=self.actor, reason=summary,
            details={**details, "model": f"{result.model}:{result.version}",
                     "triaged": result.triaged},
            rows=result.rows, scored=result.scored, rejected=result.rejected,
            output=result.output, seconds=result.seconds)
        return done or claimed

    def _score(self, schedule: ScheduleSection, start: float, end: float,
               job: str) -> ScoreResult:
        from tidal.batch.job import Triage, score

        folder = self.project.settings.project_dir

        def fill(pattern: str) -> str:
            return format_window(pattern, start, end, schedule.timezone)

        options = schedule.score_options()
        options.update({k: fill(options[k]) for k in ("query", "table") if k in options})
        output = _place(fill(schedule.output), folder)
        if isinstance(output, Path):
            output.parent.mkdir(parents=True, exist_ok=True)
            beside = output.with_name(output.stem)
        else:  # a table: its rejects and triage files in the project folder, not the cwd
            beside = folder / options["table"]
            options["rejects"] = beside.with_name(beside.name + ".rejects.csv")
        triage = None
        if schedule.by is not None:
            where = _place(fill(schedule.triage_output), folder) if schedule.triage_output \
                else beside.with_name(beside.name + ".triage.parquet")
            triage = Triage(by=schedule.by, output=Path(where), top=schedule.top,
                            above=schedule.above, review=schedule.review,
                            webhook=schedule.webhook)
        return score(self.project, schedule.deployment, _place(fill(schedule.input), folder),
                     output, triage=triage, job=job, **options)

    # -- looking -------------------------------------------------------------------------
    def overview(self, *, limit: int = 5) -> list[dict[str, Any]]:
        """Each schedule: its settings, next firing, the windows due now and its latest
        recorded windows (newest first)."""
        now = self.project.clock.now()
        listed = []
        for schedule in self.project.settings.schedules:
            due = self._unrecorded(schedule, self._due(schedule, now).windows)
            listed.append({
                "name": schedule.name, "deployment": schedule.deployment,
                "cron": schedule.cron, "timezone": schedule.timezone,
                "input": schedule.input, "output": schedule.output,
                "next": schedule.parsed_cron().next_after(now),
                "due": [{"window_start": s, "window_end": e} for s, e in due],
                "runs": [r.to_dict() for r in self.runs.history(schedule.name, limit)]})
        return listed


def _place(text: str, folder: Path) -> str | Path:
    """A path, relative ones against the project folder; a SQLAlchemy URL as it is, but
    a relative SQLite file against the project folder too (like the store's)."""
    from tidal.batch.sources import is_url  # (it imports PyArrow: only when a job runs)

    if is_url(text):
        return resolve_store_url(text, folder)
    path = Path(text).expanduser()
    return path if path.is_absolute() else folder / path


def _iso(at: float) -> str:
    return utc(at).strftime("%Y-%m-%d %H:%M")
