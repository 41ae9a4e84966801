"""``tidal schedules``: the scheduled batch scoring jobs of ``[[schedules]]``.

    tidal schedules                     # each schedule, its next firing and last windows
    tidal schedules run hourly --window 2026-05-04T10:00     # one window, by hand
    tidal schedules run hourly --window 2026-05-04T10:00 --force   # even if "running"

Times are listed in UTC. A cron runs on UTC clocks unless its schedule's ``timezone``
names another zone, and ``--window`` reads a time without a zone on the schedule's
clocks. The controller runs due windows by itself (``tidal controller``); running one by
hand also reruns a window that failed, was interrupted or was skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tidal import display
from tidal.cli_options import JsonOption, ProjectOption, command_group, open_project
from tidal.core.errors import ConflictError, ValidationError

schedules_app = command_group(
    help="Scheduled batch scoring: list the schedules, run a window by hand.")

#: the exit status of a window that scored what it could but rejected some rows
SOME_REJECTED = 1


@schedules_app.callback(invoke_without_command=True)
def schedules(ctx: typer.Context, project: ProjectOption = None,
              as_json: JsonOption = False) -> None:
    """List the schedules: cron, next firing, windows due, and the latest windows run."""
    if ctx.invoked_subcommand is not None:
        return
    from tidal.batch.schedules import Schedules

    listed = Schedules(open_project(project)).overview()
    if as_json:
        display.print_json(listed)
        return
    if not listed:
        display.console.print("no schedules: add [[schedules]] to tidal.toml", highlight=False)
        return
    rows = [[s["name"], s["deployment"],
             s["cron"] if s["timezone"] == "UTC" else f"{s['cron']} ({s['timezone']})",
             _utc(s["next"], short=True),
             str(len(s["due"])), _latest(s["runs"])] for s in listed]
    display.console.print(display.table(
        "schedules (times UTC)", ["name", "deployment", "cron", "next", "due", "last window"],
        rows, no_wrap=("cron", "next", "last window")))
    for schedule in listed:
        last = schedule["runs"][0] if schedule["runs"] else None
        if last is not None and last["error"]:
            display.console.print(f"{schedule['name']}, {_utc(last['window_start'])}: "
                                  f"{last['error']}", highlight=False)


@schedules_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The schedule's name in tidal.toml.")],
    window: Annotated[str, typer.Option(
        "--window", "-w", help="The window's start: ISO 8601 (on the schedule's "
        "clocks, UTC unless its timezone says otherwise, or the zone the time gives) or "
        "epoch seconds, e.g. 2026-05-04T10:00.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Run it even if it is recorded as running (its process died).")
    ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score one window now (a new one, or a rerun).

    Any window that has ended may be run: one that failed, was interrupted or skipped,
    or one to redo. The run is recorded like the controller's."""
    from tidal.batch.schedules import Schedules

    handle = open_project(project)
    runner = Schedules(handle, actor=handle.settings.actor)
    schedule = runner.get(name)
    start, end = runner.window(schedule, parse_time(window, schedule.timezone))
    record = runner.run_window(schedule, start, end, rerun=True, force=force,
                               raise_errors=True)
    if record is None:  # a rerun claims the window or raises; this is for the types
        raise ConflictError(f"the window of {name!r} could not be claimed")
    if as_json:
        display.print_json(record.to_dict())
    else:
        display.console.print(
            f"{name}: window {_utc(start)} → {_utc(end)} UTC {record.status}: scored "
            f"{record.scored:,} of {record.rows:,} rows → {record.output}", highlight=False)
    if record.rejected:
        display.errors.print(f"{record.rejected:,} row(s) rejected (see the rejects file "
                             "beside the output)", highlight=False)
        raise typer.Exit(SOME_REJECTED)


def parse_time(text: str, timezone: str = "UTC") -> float:
    """Epoch seconds from epoch seconds or ISO 8601 (a time without a zone is on the
    clocks of ``timezone``)."""
    from tidal.core.cron import zone
    from tidal.core.validate import MAX_EPOCH_SECONDS

    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= seconds <= MAX_EPOCH_SECONDS:  # NaN too
            raise ValidationError(f"--window {text!r} is outside the years 1970-9999")
        return seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(f"--window takes ISO 8601 (2026-05-04T10:00) or epoch "
                              f"seconds, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(timezone))
    return moment.timestamp()


def _utc(at: float, short: bool = False) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%m-%d %H:%M" if short else
                                                     "%Y-%m-%d %H:%M")


def _latest(runs: list[dict[str, Any]]) -> str:
    """The latest window's start and status."""
    return f"{_utc(runs[0]['window_start'], short=True)} {runs[0]['status']}" if runs \
        else "-"
