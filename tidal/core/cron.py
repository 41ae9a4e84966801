"""Cron schedules and the time windows they cut, for ``[[schedules]]``.

A schedule's cron fires at times T; the firing at T stands for the window
``[previous firing, T)``, which is complete (and so may be scored) once the project
clock has reached T. Cron expressions are evaluated in UTC by default, the time every
store record and log file uses, so a window never shifts or doubles across a
daylight-saving change. A schedule may name an IANA time zone instead
(``Europe/Paris``): its cron is then read on that zone's clocks, as Debian's cron does
(cronsim's rules): a firing in the hour skipped in spring runs at the first minute after
it, one in the hour repeated in autumn runs once, so a daily window is 23 or 25 hours
long on those days and windows still never overlap or leave a gap (they are stored as
epoch seconds).

Parsing and iteration are cronsim's (the parser Healthchecks.io runs, with no
dependencies of its own, iterating backwards as well as forwards); this module only
holds the project's rules around it: exactly five fields (cronsim would also take a
sixth, seconds), the usual ``@daily``-style shorthands, and epoch seconds in and out.

Path and query patterns name a window's bounds as ``{start}`` and ``{end}``: datetimes
in the schedule's zone (UTC by default), so any ``strftime`` spec works
(``{start:%Y-%m-%d_%H}``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

#: the shorthands Vixie cron and its descendants accept, as the five fields they mean
SHORTHANDS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = "minute hour day-of-month month day-of-week"
PLACEHOLDERS = ("start", "end")
#: a window's bounds used to try a pattern out when the configuration is read
_SAMPLE = datetime(2024, 2, 29, 13, 45, tzinfo=UTC)


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Paris``); ValueError if unknown."""
    if name.upper() == "UTC":
        return UTC  # cronsim's fast path: no daylight-saving handling to do
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: give an IANA name such as "
                         "\"Europe/Paris\" or \"America/New_York\" (the zone database "
                         "is the system's, or the tzdata package's)") from None


class Cron:
    """A validated five-field cron expression (ValueError with the reason otherwise),
    read on the clocks of ``timezone`` (UTC by default)."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        text = " ".join(expression.split())
        fields = SHORTHANDS.get(text.lower(), text)
        if len(fields.split()) != 5:
            raise ValueError(f"cron {expression!r} has {len(fields.split())} field(s); give "
                             f"five ({FIELDS}), e.g. \"0 * * * *\" for every hour, or "
                             f"one of {', '.join(SHORTHANDS)}")
        try:
            next(CronSim(fields, _SAMPLE))
        except (CronSimError, StopIteration) as error:
            reason = str(error).lower() or "it never fires"
            raise ValueError(f"cron {expression!r} is not valid: {reason} (the fields are "
                             f"{FIELDS})") from None
        self.expression = text
        self.fields = fields
        self.zone = zone(timezone)

    def _clock(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, self.zone)

    def next_after(self, at: float) -> float:
        """The first firing strictly after ``at``."""
        return next(CronSim(self.fields, self._clock(int(at)))).timestamp()

    def latest(self, at: float) -> float:
        """The last firing at or before ``at``."""
        return next(self.backwards(at))

    def previous(self, firing: float) -> float:
        """The last firing strictly before ``firing``."""
        return next(CronSim(self.fields, self._clock(firing), reverse=True)).timestamp()

    def backwards(self, at: float) -> Iterator[float]:
        """The firings at or before ``at``, newest first (endless)."""
        start = self._clock(int(at) + 1)
        for moment in CronSim(self.fields, start, reverse=True):
            yield moment.timestamp()

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {str(self.zone)!r})"


@dataclass(frozen=True)
class Due:
    """The windows of a schedule to run now, oldest first, and the older missed span that
    is given up on (``skipped``: its start and end), if any."""

    windows: list[tuple[float, float]]
    skipped: tuple[float, float] | None = None


def due_windows(cron: Cron, *, after: float | None, now: float, limit: int) -> Due:
    """The complete windows ending after ``after`` (the end of the last window already
    accounted for) and at or before ``now``, at most the newest ``limit`` of them.

    With nothing accounted for yet (``after`` None), only the latest complete window is
    due: a new schedule does not score history back to the epoch. Windows chain on from
    ``after`` (the first starts there, even if the cron was changed since and ``after``
    is not one of its firings), so none overlaps and none is left out. Only the newest
    ``limit + 1`` firings are ever looked at, so a long downtime costs nothing extra.
    """
    if after is None:
        end = cron.latest(now)
        return Due([(cron.previous(end), end)])
    ends: list[float] = []  # newest first
    for firing in cron.backwards(now):
        if firing <= after or len(ends) > limit:
            break
        ends.append(firing)
    if len(ends) <= limit:
        bounds = [after, *reversed(ends)]
        return Due(list(zip(bounds, bounds[1:], strict=False)))
    bounds = ends[limit::-1]  # the firing before the newest ``limit`` ends, then those
    return Due(list(zip(bounds, bounds[1:], strict=False)), skipped=(after, bounds[0]))


def check_pattern(pattern: str) -> str:
    """``pattern`` if its placeholders are only ``{start}`` and ``{end}`` with specs a
    datetime takes; else ValueError saying what is wrong."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(pattern)
                  if field is not None]
    except ValueError as error:  # an unmatched brace
        raise ValueError(f"{pattern!r}: {error} (write a literal brace as {{{{ or }}}})"
                         ) from None
    for field in fields:
        if re.split(r"[.\[]", field, maxsplit=1)[0] not in PLACEHOLDERS:
            raise ValueError(f"{pattern!r} has the placeholder {{{field}}}; the window's "
                             "time is {start} or {end}, with a strftime format such as "
                             "{start:%Y-%m-%d_%H}")
    try:
        format_window(pattern, _SAMPLE.timestamp(), _SAMPLE.timestamp())
    except (ValueError, AttributeError, IndexError, KeyError, TypeError) as error:
        raise ValueError(f"{pattern!r} cannot be filled with a window's time: {error}"
                         ) from None
    return pattern


def format_window(pattern: str, start: float, end: float, timezone: str = "UTC") -> str:
    """``pattern`` with the window's bounds (datetimes in ``timezone``) in place."""
    clocks = zone(timezone)
    return pattern.format(start=datetime.fromtimestamp(start, clocks),
                          end=datetime.fromtimestamp(end, clocks))


def utc(at: float) -> datetime:
    """Epoch seconds as a UTC datetime."""
    return datetime.fromtimestamp(at, UTC)
