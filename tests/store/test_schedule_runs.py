"""Schedule runs on both backends: a window is claimed once, even by writers racing on
separate connections; a finish only lands for the claim that holds the window; a run
left running is marked interrupted; skipped spans and reruns keep the record whole."""

from __future__ import annotations

import threading

import pytest

from tidal.core.errors import ConflictError
from tidal.store.database import Database
from tidal.store.events import list_events
from tidal.store.schedules import ScheduleRunRepository

H = 3600.0
T = 1_709_632_800.0  # 2024-03-05 10:00 UTC


def claim(runs: ScheduleRunRepository, start: float, job: str, **options):
    return runs.claim("hourly", start, start + H, job=job, actor="controller",
                      runner="host:1", now=start + H + 5, trigger=options.pop(
                          "trigger", "controller"), **options)


def test_a_window_is_claimed_once_and_finished_by_its_claim(project):
    runs = project.schedule_runs
    first = claim(runs, T, "job1", details={"deployment": "elec2"})
    assert (first.status, first.job, first.attempts, first.window_end) == \
        ("running", "job1", 1, T + H)
    assert claim(runs, T, "job2") is None  # a restart, or another controller
    assert runs.get("hourly", T).job == "job1"
    done = runs.finish("hourly", T, job="job1", status="done", now=T + H + 9,
                       actor="controller", reason="scored 200 of 200 rows", rows=200,
                       scored=200, rejected=0, output="/x/out.parquet", seconds=0.5)
    assert (done.status, done.rows, done.scored, done.finished_at) == ("done", 200, 200,
                                                                       T + H + 9)
    events = list_events(project.db, entity_type="schedule", entity_id="hourly")
    assert [e.kind for e in events] == ["schedule.started", "schedule.done"]
    assert events[0].payload["deployment"] == "elec2" and events[1].payload["job"] == "job1"
    assert events[1].reason == "scored 200 of 200 rows"
    assert runs.last_end("hourly", origin="controller") == T + H
    assert runs.last_end("hourly", origin="manual") is None
    assert runs.starts("hourly", T - H) == {T} and runs.starts("hourly", T + 1) == set()


def test_racing_claims_on_separate_connections_have_one_winner(project, store_url):
    databases = [Database(store_url) for _ in range(4)]
    project.schedule_runs.last_end("hourly", origin="controller")  # the schema, once
    barrier = threading.Barrier(len(databases))
    won: list[str] = []

    def contend(index: int) -> None:
        runs = ScheduleRunRepository(databases[index])
        barrier.wait()
        if claim(runs, T, f"job{index}") is not None:
            won.append(f"job{index}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(databases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for db in databases:
        db.dispose()
    assert len(won) == 1 and project.schedule_runs.get("hourly", T).job == won[0]
    started = list_events(project.db, entity_type="schedule", kind="schedule.started")
    assert len(started) == 1


def test_a_rerun_takes_the_window_over_and_the_old_claim_cannot_overwrite_it(project):
    runs = project.schedule_runs
    claim(runs, T, "job1")
    runs.finish("hourly", T, job="job1", status="failed", now=T + H + 9,
                actor="controller", reason="no input at in.parquet",
                error="no input at in.parquet")
    claim(runs, T + H, "job2", trigger="manual")
    with pytest.raises(ConflictError, match="being run by host:1"):  # not while it runs
        claim(runs, T + H, "job3", trigger="manual", rerun=True)
    again = claim(runs, T, "job4", trigger="manual", rerun=True)
    assert (again.status, again.attempts, again.job, again.error, again.trigger) == \
        ("running", 2, "job4", None, "manual")
    # the controller's chain still counts the window as its own
    assert again.origin == "controller"
    assert runs.last_end("hourly", origin="controller") == T + H
    # the first run, had it still been going, finds its window taken over
    assert runs.finish("hourly", T, job="job1", status="done", now=T + 2 * H,
                       actor="controller", reason="late") is None
    assert runs.get("hourly", T).status == "running"
    assert claim(runs, T, "job5", trigger="manual", rerun=True, force=True).attempts == 3


def test_runs_left_running_by_a_controller_are_marked_interrupted(project):
    runs = project.schedule_runs
    claim(runs, T, "job1")
    claim(runs, T + H, "job2", trigger="manual")  # someone's command, still going
    (interrupted,) = runs.interrupt(trigger="controller", now=T + 3 * H, actor="controller",
                                    reason="interrupted: the controller stopped")
    assert (interrupted.status, interrupted.error, interrupted.finished_at) == \
        ("failed", "interrupted: the controller stopped", T + 3 * H)
    assert runs.get("hourly", T + H).status == "running"
    assert runs.interrupt(trigger="controller", now=T + 4 * H, actor="controller",
                          reason="again") == []
    (event,) = list_events(project.db, entity_type="schedule", kind="schedule.interrupted")
    assert event.payload["job"] == "job1" and event.payload["runner"] == "host:1"


def test_a_skipped_span_is_one_record_and_a_rerun_of_its_first_window_keeps_the_rest(
        project):
    runs = project.schedule_runs
    skipped = runs.skip("hourly", T, T + 5 * H, now=T + 8 * H, actor="controller",
                        reason="missed windows skipped")
    assert (skipped.status, skipped.window_end, skipped.attempts) == ("skipped", T + 5 * H, 0)
    assert runs.skip("hourly", T, T + 5 * H, now=T + 8 * H, actor="controller",
                     reason="twice") is None
    assert runs.last_end("hourly", origin="controller") == T + 5 * H
    rerun = claim(runs, T, "job1", trigger="manual", rerun=True)
    assert (rerun.window_start, rerun.window_end, rerun.status) == (T, T + H, "running")
    rest = runs.get("hourly", T + H)
    assert (rest.status, rest.window_end) == ("skipped", T + 5 * H)
    assert [r.window_start for r in runs.history("hourly")] == [T + H, T]
    kinds = [e.kind for e in list_events(project.db, entity_type="schedule")]
    assert kinds == ["schedule.skipped", "schedule.started"]
