"""Scheduled batch scoring run by the controller, on the trained project (elec2:1, a
logistic regression exported to ONNX) with a manual clock: real Parquet files named by
their window, the real prediction log, controllers that restart, the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import tidal
from tidal.batch.schedules import Schedules
from tidal.control.controller import LEASE, Controller
from tidal.core.clock import ManualClock
from tidal.serve.compaction import read_predictions
from tidal.store.events import list_events

H = 3600.0
T0 = 1_709_632_800.0  # 2024-03-05 10:00 UTC: the clock starts just after this firing
SCHEDULE = """
[[schedules]]
name = "hourly"
deployment = "elec2"
cron = "0 * * * *"
input = "incoming/{start:%Y-%m-%d_%H}.parquet"
output = "scored/{start:%Y-%m-%d_%H}.parquet"
keys = ["meter"]
partition_rows = 150
"""


@dataclass
class Setup:
    project: tidal.Project
    clock: ManualClock
    folder: Path
    rows: pd.DataFrame

    def arrive(self, hour: int) -> list[str]:
        """The input of the window starting at ``hour`` o'clock on 2024-03-05: 200 rows,
        their meters named after the hour; the meters, in order."""
        part = self.rows.iloc[hour * 200:(hour + 1) * 200].copy()
        part.insert(0, "meter", [f"{hour:02d}-{i}" for i in range(len(part))])
        (self.folder / "incoming").mkdir(exist_ok=True)
        part.to_parquet(self.folder / f"incoming/2024-03-05_{hour:02d}.parquet")
        return part["meter"].tolist()

    def controller(self, holder: str) -> Controller:
        """A controller of its own (a new process would open the project afresh)."""
        handle = tidal.Project(self.folder, clock=self.clock)
        return Controller(handle, holder=holder, monitor_sinks=[])

    def output(self, hour: int) -> Path:
        return self.folder / f"scored/2024-03-05_{hour:02d}.parquet"

    def logged(self, job: str) -> int:
        """Rows the prediction log holds for ``job`` (route batch; a batch job writes
        them straight into the log's Parquet folder)."""
        settings = self.project.settings
        logged = read_predictions(settings.monitor.compacted_path(
            self.folder, settings.serve.log_path(self.folder)), "elec2").to_pandas()
        mine = logged[logged["request_id"].str.startswith(job + "-")]
        assert set(mine["route"]) <= {"batch"}
        assert not mine.duplicated(["request_id", "row"]).any()
        return len(mine)

    def history(self) -> list[tuple[str, str]]:
        """Each recorded window, oldest first: its start hour and status."""
        return [(f"{time.gmtime(r.window_start).tm_hour:02d}", r.status)
                for r in reversed(self.project.schedule_runs.history("hourly", 100))]


@pytest.fixture
def setup(trained_project: Path, tmp_path: Path, request):
    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    with (folder / "tidal.toml").open("a") as config:
        config.write(SCHEDULE + getattr(request, "param", ""))
    clock = ManualClock(T0 + 30)
    project = tidal.Project(folder, clock=clock)
    project.set_deployment("elec2", "elec2:1")
    rows = pd.read_csv(folder / "elec2.csv")
    yield Setup(project, clock, folder, rows)
    project.close()


def test_a_due_window_is_scored_once_even_across_a_restart(setup):
    meters = setup.arrive(9)
    setup.arrive(10)  # already there, but its window is not complete yet
    first = setup.controller("first")
    tick = first.tick()
    (run,) = tick.schedules
    assert (run.window_start, run.window_end, run.status, run.trigger) == \
        (T0 - H, T0, "done", "controller")
    assert (run.rows, run.scored, run.rejected) == (200, 200, 0)
    out = pq.read_table(setup.output(9)).to_pandas()
    assert out["meter"].tolist() == meters and (out["model_version"] == 1).all()
    assert setup.logged(run.job) == 200  # the predictions, once, route batch
    assert set(out["request_id"].str.rsplit("-", n=2).str[0]) == {run.job}
    reported = tick.to_dict()["schedules"]
    assert reported == [{"schedule": "hourly", "window_start": T0 - H, "window_end": T0,
                         "status": "done", "job": run.job, "rows": 200, "scored": 200,
                         "rejected": 0, "output": str(setup.output(9)), "error": None}]
    written = setup.output(9).stat().st_mtime_ns

    assert first.tick().schedules == []  # the same controller, again
    first.leases.release(LEASE, "first")
    second = setup.controller("second")  # a restart: a new process, the same store
    again = second.tick()
    assert again.leader and again.schedules == [] and not again.errors
    assert setup.output(9).stat().st_mtime_ns == written
    assert setup.logged(run.job) == 200 and setup.history() == [("09", "done")]

    setup.clock.advance(H)  # 11:00:30: the window from 10:00 is complete
    (later,) = second.tick().schedules
    assert (later.window_start, later.status, later.scored) == (T0, "done", 200)
    kinds = [e.kind for e in list_events(setup.project.db, entity_type="schedule",
                                         entity_id="hourly")]
    assert kinds == ["schedule.started", "schedule.done"] * 2
    second.project.close()


@pytest.mark.parametrize("setup", ["", "stable_only = true\n"], indirect=True)
def test_a_canary_answers_scheduled_windows_unless_the_schedule_is_stable_only(setup):
    setup.project.set_deployment("elec2", "elec2:1", canary=2, canary_weight=1.0)
    setup.arrive(9)
    (run,) = setup.controller("first").tick().schedules
    out = pq.read_table(setup.output(9)).to_pandas()
    stable_only = setup.project.settings.schedules[0].stable_only
    assert run.status == "done" and run.scored == 200
    assert set(out["model_version"]) == ({1} if stable_only else {2})


@pytest.mark.parametrize("setup", ['timezone = "America/New_York"\n'], indirect=True)
def test_a_zoned_schedule_names_its_files_and_takes_its_times_on_local_clocks(setup):
    from tidal.cli_schedules import parse_time

    meters = setup.arrive(4)  # 04:00-05:00 in New York (EST) is 09:00-10:00 UTC
    (run,) = setup.controller("first").tick().schedules
    assert (run.window_start, run.window_end, run.status) == (T0 - H, T0, "done")
    assert pq.read_table(setup.output(4)).to_pandas()["meter"].tolist() == meters
    # by hand, a time without a zone is read on the schedule's clocks
    assert parse_time("2024-03-05T04:00", "America/New_York") == T0 - H
    assert parse_time("2024-03-05T09:00Z", "America/New_York") == T0 - H
    assert Schedules(setup.project).overview()[0]["timezone"] == "America/New_York"


def test_after_a_downtime_each_missed_window_runs_once_in_order(setup):
    setup.arrive(9)
    first = setup.controller("first")
    assert [r.status for r in first.tick().schedules] == ["done"]
    first.leases.release(LEASE, "first")  # ... and the controller is down for 3 hours
    setup.clock.advance(3 * H)  # 13:00:30
    for hour in (10, 11, 12):
        setup.arrive(hour)
    restarted = setup.controller("restarted")
    ran = [run for _ in range(4) for run in restarted.tick().schedules]  # one a tick
    assert [(r.window_start, r.status) for r in ran] == \
        [(T0, "done"), (T0 + H, "done"), (T0 + 2 * H, "done")]
    assert setup.history() == [("09", "done"), ("10", "done"), ("11", "done"),
                               ("12", "done")]
    assert all(setup.logged(r.job) == 200 for r in ran)
    assert len({r.job for r in ran}) == 3 and all(r.attempts == 1 for r in ran)
    assert all(setup.output(hour).exists() for hour in (10, 11, 12))
    restarted.project.close()


@pytest.mark.parametrize("setup", ["catch_up = 2\n"], indirect=True)
def test_catch_up_runs_the_newest_missed_windows_and_records_the_rest_skipped(setup):
    setup.arrive(9)
    assert [r.status for r in setup.controller("first").tick().schedules] == ["done"]
    setup.clock.advance(6 * H)  # 16:00:30: the windows from 10:00 to 15:00 were missed
    setup.arrive(14)
    setup.arrive(15)
    restarted = setup.controller("first")  # the same name after a restart
    skipped, run = restarted.tick().schedules
    assert (skipped.status, skipped.window_start, skipped.window_end) == \
        ("skipped", T0, T0 + 4 * H)
    assert "catch_up = 2" in skipped.error
    assert (run.window_start, run.status) == (T0 + 4 * H, "done")
    (last,) = restarted.tick().schedules
    assert (last.window_start, last.status) == (T0 + 5 * H, "done")
    assert restarted.tick().schedules == []
    assert setup.history() == [("09", "done"), ("10", "skipped"), ("14", "done"),
                               ("15", "done")]
    assert not any(setup.output(hour).exists() for hour in (10, 11, 12, 13))
    (event,) = list_events(setup.project.db, entity_type="schedule",
                           kind="schedule.skipped")
    assert "from 2024-03-05 10:00 to 2024-03-05 14:00 UTC" in event.reason
    restarted.project.close()


def test_windows_run_by_hand_neither_reset_nor_break_the_controllers_chain(setup):
    setup.arrive(9)
    controller = setup.controller("only")
    assert [r.status for r in controller.tick().schedules] == ["done"]
    schedules = Schedules(setup.project, actor="tester")
    hourly = schedules.get("hourly")
    redone = schedules.run_window(hourly, T0 - H, T0, rerun=True)  # redone by hand
    assert (redone.trigger, redone.origin, redone.attempts) == ("manual", "controller", 2)
    setup.clock.advance(3 * H)  # 13:00:30, the controller down meanwhile
    for hour in (10, 11, 12):
        setup.arrive(hour)
    ahead = schedules.run_window(hourly, T0 + 2 * H, T0 + 3 * H)  # 12:00, by hand first
    assert (ahead.status, ahead.origin) == ("done", "manual")
    ran = [run for _ in range(3) for run in controller.tick().schedules]
    assert [(r.window_start, r.status) for r in ran] == [(T0, "done"), (T0 + H, "done")]
    assert setup.history() == [("09", "done"), ("10", "done"), ("11", "done"),
                               ("12", "done")]
    assert setup.project.schedule_runs.get("hourly", T0 + 2 * H).attempts == 1
    controller.project.close()


def test_a_missing_input_is_recorded_as_failed_and_not_retried_each_tick(setup):
    controller = setup.controller("only")
    (failed,) = controller.tick().schedules
    missing = setup.folder / "incoming/2024-03-05_09.parquet"
    assert (failed.status, failed.error) == ("failed", f"no input at {missing}")
    assert not setup.output(9).exists()
    (event,) = list_events(setup.project.db, entity_type="schedule", kind="schedule.failed")
    assert event.reason == f"no input at {missing}" and event.payload["job"] == failed.job
    assert controller.tick().schedules == [] and controller.tick().schedules == []
    assert setup.project.schedule_runs.get("hourly", T0 - H).attempts == 1
    # the next window runs when it is due; the failed one is rerun by hand once fixed
    setup.clock.advance(H)
    setup.arrive(10)
    assert [(r.window_start, r.status) for r in controller.tick().schedules] == \
        [(T0, "done")]
    setup.arrive(9)
    schedules = Schedules(setup.project, actor="tester")
    hourly = schedules.get("hourly")
    rerun = schedules.run_window(hourly, *schedules.window(hourly, T0 - H), rerun=True)
    assert (rerun.status, rerun.attempts, rerun.trigger, rerun.actor) == \
        ("done", 2, "manual", "tester")
    assert setup.output(9).exists() and controller.tick().schedules == []
    controller.project.close()


def test_a_run_a_dead_controller_left_running_is_marked_interrupted_not_rerun(setup):
    setup.arrive(9)
    # what a controller killed while scoring the window leaves behind
    setup.project.schedule_runs.claim(
        "hourly", T0 - H, T0, job="killedjob", trigger="controller", actor="controller",
        runner="gone:4242", now=T0 + 5)
    controller = setup.controller("next")
    (interrupted,) = controller.tick().schedules
    assert (interrupted.window_start, interrupted.status, interrupted.job) == \
        (T0 - H, "failed", "killedjob")
    assert interrupted.error.startswith("interrupted") and \
        "tidal schedules run" in interrupted.error
    assert controller.tick().schedules == []
    assert not setup.output(9).exists()  # not rerun: it may have logged some rows
    (event,) = list_events(setup.project.db, entity_type="schedule",
                           kind="schedule.interrupted")
    assert event.payload["runner"] == "gone:4242"
    schedules = Schedules(setup.project, actor="tester")
    hourly = schedules.get("hourly")
    assert schedules.run_window(hourly, T0 - H, T0, rerun=True).status == "done"
    controller.project.close()


WAREHOUSE = """
[[schedules]]
name = "warehouse"
deployment = "elec2"
cron = "0 * * * *"
input = "sqlite:///warehouse.db"
query = "SELECT * FROM readings WHERE at >= '{start:%F %R}' AND at < '{end:%F %R}'"
output = "sqlite:///warehouse.db"
table = "scores_{start:%Y%m}"
if_exists = "append"
keys = ["meter", "at"]
by = "proba_1"
top = 5
"""


@pytest.mark.parametrize("setup", [WAREHOUSE], indirect=True)
def test_a_window_of_a_table_is_scored_into_a_table(setup):
    import sqlalchemy as sa

    frame = setup.rows.iloc[:600].drop(columns=["target"]).copy()
    frame.insert(0, "meter", [f"m{i}" for i in range(len(frame))])
    frame.insert(1, "at", [f"2024-03-05 {8 + i // 200:02d}:{i % 60:02d}" for i in
                           range(len(frame))])  # 200 rows an hour from 08:00 to 10:59
    engine = sa.create_engine(f"sqlite:///{setup.folder / 'warehouse.db'}")
    frame.to_sql("readings", engine, index=False)
    controller = setup.controller("only")
    runs = {r.schedule: r for r in controller.tick().schedules}
    assert runs["warehouse"].status == "done" and runs["warehouse"].scored == 200
    setup.clock.advance(H)
    runs = {r.schedule: r for r in controller.tick().schedules}
    assert runs["warehouse"].scored == 200
    scores = pd.read_sql("SELECT * FROM scores_202403 ORDER BY at", engine)
    assert len(scores) == 400 and scores["at"].str[11:13].tolist() == \
        ["09"] * 200 + ["10"] * 200  # the two windows, appended, nothing else
    triaged = pq.read_table(setup.folder / "scores_202403.triage.parquet").to_pandas()
    assert len(triaged) == 5 and set(triaged["at"].str[11:13]) == {"10"}
    engine.dispose()
    controller.project.close()


def test_the_command_line_lists_schedules_and_runs_a_window_by_hand(setup, tmp_path):
    setup.arrive(8)
    setup.arrive(9)
    controller = setup.controller("only")
    assert [r.status for r in controller.tick().schedules] == ["done"]
    controller.leases.release(LEASE, "only")
    controller.project.close()

    def tidal_cli(*args: str, folder: Path = setup.folder) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tidal", *args], capture_output=True,
                              text=True, timeout=300,
                              env={**os.environ, "TIDAL_PROJECT_DIR": str(folder)})

    listed = tidal_cli("schedules", "--json")
    assert listed.returncode == 0, listed.stderr
    (hourly,) = json.loads(listed.stdout)
    assert (hourly["name"], hourly["deployment"], hourly["cron"]) == \
        ("hourly", "elec2", "0 * * * *")
    assert hourly["next"] > time.time() and hourly["next"] % 3600 == 0  # the wall clock's
    assert len(hourly["due"]) == 24  # since 2024, by the real clock: catch_up's worth
    assert [(r["window_start"], r["status"]) for r in hourly["runs"]] == [(T0 - H, "done")]

    ran = tidal_cli("schedules", "run", "hourly", "--window", "2024-03-05T08:00", "--json")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert (record["window_start"], record["window_end"], record["status"],
            record["scored"], record["trigger"]) == (T0 - 2 * H, T0 - H, "done", 200,
                                                     "manual")
    assert pq.read_table(setup.output(8)).num_rows == 200
    assert setup.logged(record["job"]) == 200

    for window, status, message in [
            ("2024-03-05T08:30", 2, "the one holding it starts at 2024-03-05 08:00"),
            ("2024-03-05T07:00", 3, "no input at"),
            ("yesterday", 2, "ISO 8601")]:
        refused = tidal_cli("schedules", "run", "hourly", "--window", window)
        assert refused.returncode == status and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert setup.project.schedule_runs.get("hourly", T0 - 3 * H).status == "failed"

    table = tidal_cli("schedules")
    assert table.returncode == 0 and "hourly" in table.stdout and "done" in table.stdout

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tidal.toml").write_text(SCHEDULE.replace("0 * * * *", "0 * * *"))
    bad = tidal_cli("schedules", folder=broken)
    assert bad.returncode == 2 and "has 4 field(s)" in bad.stderr
    assert "Traceback" not in bad.stderr
