"""Cron schedules and their windows: which windows are due, after a first start, a
restart and a long downtime; and the patterns that name a window's files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidal.core.cron import Cron, check_pattern, due_windows, format_window


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    return datetime(2024, 3, day, hour, minute, second, tzinfo=UTC).timestamp()


HOURLY = Cron("0 * * * *")


def hours(windows: list[tuple[float, float]]) -> list[tuple[int, int]]:
    return [(datetime.fromtimestamp(s, UTC).hour, datetime.fromtimestamp(e, UTC).hour)
            for s, e in windows]


def test_a_firing_closes_the_window_since_the_previous_one():
    assert HOURLY.latest(at(5, 10, 0)) == at(5, 10)  # due the moment it fires
    assert HOURLY.latest(at(5, 10, 59, 59)) == at(5, 10)
    assert HOURLY.previous(at(5, 10)) == at(5, 9)
    assert HOURLY.next_after(at(5, 10)) == at(5, 11)
    assert HOURLY.next_after(at(5, 10, 0, 1)) == at(5, 11)
    weekdays = Cron("30 6 * * 1-5")  # 2024-03-08 is a Friday
    assert weekdays.next_after(at(8, 7)) == at(11, 6, 30)
    assert weekdays.previous(at(11, 6, 30)) == at(8, 6, 30)
    assert Cron("@daily").fields == "0 0 * * *" and Cron("  0  * * * * ").expression == \
        "0 * * * *"


def test_a_new_schedule_runs_only_its_latest_complete_window():
    due = due_windows(HOURLY, after=None, now=at(5, 10, 20), limit=24)
    assert hours(due.windows) == [(9, 10)] and due.skipped is None
    daily = due_windows(Cron("0 0 * * *"), after=None, now=at(5, 10, 20), limit=24)
    assert daily.windows == [(at(4, 0), at(5, 0))]


def test_windows_chain_on_from_the_last_one_accounted_for():
    assert due_windows(HOURLY, after=at(5, 10), now=at(5, 10, 20), limit=24).windows == []
    assert hours(due_windows(HOURLY, after=at(5, 9), now=at(5, 10, 20), limit=24).windows) \
        == [(9, 10)]
    # a downtime: each missed window, oldest first, none overlapping, none left out
    assert hours(due_windows(HOURLY, after=at(5, 6), now=at(5, 10, 20), limit=24).windows) \
        == [(6, 7), (7, 8), (8, 9), (9, 10)]
    # the cron changed since: the first window starts where the last one ended
    assert hours(due_windows(Cron("0 */4 * * *"), after=at(5, 6), now=at(5, 10, 20),
                             limit=24).windows) == [(6, 8)]
    # a clock that went back (a replay started over) finds nothing due
    assert due_windows(HOURLY, after=at(6, 0), now=at(5, 10), limit=24).windows == []


def test_catch_up_keeps_the_newest_windows_and_skips_the_older_span():
    due = due_windows(HOURLY, after=at(5, 2), now=at(5, 10, 20), limit=3)
    assert hours(due.windows) == [(7, 8), (8, 9), (9, 10)]
    assert due.skipped == (at(5, 2), at(5, 7))
    exactly = due_windows(HOURLY, after=at(5, 7), now=at(5, 10, 20), limit=3)
    assert hours(exactly.windows) == [(7, 8), (8, 9), (9, 10)] and exactly.skipped is None
    # a year of a minutely cron missed costs no more than the windows kept
    long = due_windows(Cron("* * * * *"), after=at(5, 0) - 366 * 86400, now=at(5, 10),
                       limit=2)
    assert long.windows == [(at(5, 9, 58), at(5, 9, 59)), (at(5, 9, 59), at(5, 10))]
    assert long.skipped == (at(5, 0) - 366 * 86400, at(5, 9, 58))


@pytest.mark.parametrize("expression,message", [
    ("0 * * *", "has 4 field"),
    ("0 0 * * * *", "has 6 field"),  # seconds are not standard cron
    ("61 * * * *", "bad minute"),
    ("0 25 * * *", "bad hour"),
    ("0 0 30 2 *", "bad day-of-month"),  # never fires
    ("@reboot", "has 1 field"),
    ("every hour", "has 2 field"),
])
def test_a_bad_cron_says_what_is_wrong(expression, message):
    with pytest.raises(ValueError, match=message):
        Cron(expression)


def test_patterns_take_the_windows_utc_times_and_nothing_else():
    pattern = "in/{start:%Y-%m-%d_%H}-{end:%H}.parquet"
    assert format_window(check_pattern(pattern), at(5, 9), at(5, 10)) == \
        "in/2024-03-05_09-10.parquet"
    assert format_window("{start.year}/{start:%j}", at(5, 9), at(5, 10)) == "2024/065"
    assert check_pattern("no/placeholder.parquet") == "no/placeholder.parquet"
    for bad, message in [("in/{day}.parquet", "placeholder {day}"),
                         ("in/{}.parquet", "placeholder {}"),
                         ("in/{0}.parquet", "placeholder {0}"),
                         ("in/{start.hours}.parquet", "no attribute"),
                         ("in/{start:%Y.parquet", "unmatched '{'"),
                         ("in/start}.parquet", "Single '}'")]:
        with pytest.raises(ValueError, match=message):
            check_pattern(bad)


def paris(month: int, day: int, hour: int, minute: int = 0) -> float:
    from zoneinfo import ZoneInfo

    return datetime(2024, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Paris")
                    ).timestamp()


def test_a_zoned_cron_fires_on_local_clocks_and_its_windows_follow_daylight_saving():
    daily = Cron("0 6 * * *", "Europe/Paris")
    # 06:00 in Paris is 05:00 UTC in winter and 04:00 UTC in summer (from 31 March)
    assert daily.next_after(paris(3, 30, 7)) == paris(3, 31, 6) == at(31, 4)
    assert daily.previous(paris(3, 31, 6)) == paris(3, 30, 6) == at(30, 5)
    # across the change the windows chain on: one of 23 hours, none lost or doubled
    due = due_windows(daily, after=paris(3, 29, 6), now=paris(4, 1, 7), limit=24)
    assert [(e - s) / 3600 for s, e in due.windows] == [24, 23, 24]
    assert all(a[1] == b[0] for a, b in zip(due.windows, due.windows[1:], strict=False))
    autumn = due_windows(daily, after=paris(10, 26, 6), now=paris(10, 27, 7), limit=24)
    assert [(e - s) / 3600 for s, e in autumn.windows] == [25]


def test_a_zoned_firing_in_a_skipped_or_repeated_hour_runs_once_as_debian_cron_does():
    night = Cron("30 2 * * *", "Europe/Paris")
    # 02:30 does not exist on 31 March: the job runs at the first minute after the gap
    assert night.next_after(paris(3, 31, 0)) == paris(3, 31, 3) == at(31, 1)
    # 02:30 happens twice on 27 October: the job runs once, at the first
    first = night.next_after(paris(10, 27, 0))
    assert datetime.fromtimestamp(first, UTC).hour == 0  # 02:30 CEST is 00:30 UTC
    assert night.next_after(first) == paris(10, 28, 2, 30)


def test_a_zoned_pattern_names_local_times_and_an_unknown_zone_is_refused():
    assert format_window("in/{start:%Y-%m-%d_%H}", at(5, 9), at(5, 10), "Asia/Kolkata") \
        == "in/2024-03-05_14"  # UTC+05:30: 09:00 UTC is 14:30 there
    assert format_window("in/{start:%H}", at(5, 9), at(5, 10)) == "in/09"  # UTC by default
    assert repr(Cron("@hourly", "utc")) == "Cron('@hourly', 'UTC')"
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Cron("0 * * * *", "Mars/Olympus")
