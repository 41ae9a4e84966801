"""The replay on real data through the real server, monitors and controller: every
production row is served and logged, labels come back a day late and are joined, the
static model and the online reference are scored on the same rows, and the report is one
self-contained page. (The full-length runs are the benchmarks' job.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tidal
from tidal.demo import run_loop_demo

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "elec2.csv.gz").is_file(),
                                reason="shared/data is not beside the checkout")


def test_three_weeks_of_elec2_go_through_the_whole_loop(tmp_path: Path):
    summary = run_loop_demo("elec2", tmp_path / "loop", DATA, quiet=True, weeks=3)
    assert summary["dataset"] == "elec2" and summary["metric"] == "accuracy"
    assert summary["rows"] == 3 * 7 * 48
    for name in ("static", "tidal", "reference_online"):
        assert 0.4 < summary[name] < 1.0, (name, summary[name])
    assert set(summary["weeks"]) == {"static", "tidal", "reference_online"}
    assert all(len(values) == 3 for values in summary["weeks"].values())
    with tidal.Project(tmp_path / "loop") as project:
        # every label due by the end (a day after its prediction) came back through
        # POST /v1/feedback: all but the last day's
        assert summary["rows"] - 48 <= project.feedback.count("live") < summary["rows"]
        windows = project.monitoring.windows("live")
        assert len(windows) >= 20  # a window per simulated day, computed by the controller
        assert project.monitoring.series("live", "quality", "accuracy")  # labels joined
    page = Path(summary["report"]).read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "http" not in page.replace("http://www.w3.org", "")  # nothing to fetch


def test_the_command_line_replays_any_table(tmp_path: Path):
    import pandas as pd

    frame = pd.read_csv(DATA / "elec2.csv.gz").iloc[:4000]
    frame["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        30 * frame.index.to_numpy(), unit="min")
    frame.to_parquet(tmp_path / "stream.parquet")
    result = subprocess.run(
        [sys.executable, "-m", "tidal", "replay", str(tmp_path / "stream.parquet"),
         "--time", "when", "--target", "target", "--train-until", "2020-02-10",
         "--into", str(tmp_path / "replayed"), "--json"],
        capture_output=True, text=True, timeout=900, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert {"dataset", "metric", "static", "tidal", "reference_online", "retrains",
            "promotions", "rollbacks"} <= set(summary)
    assert summary["dataset"] == "stream.parquet" and summary["metric"] == "accuracy"
    assert (tmp_path / "replayed" / "report.html").is_file()


def test_broken_candidates_injected_during_a_replay_never_reach_a_user(tmp_path: Path):
    """The fault benchmark in small: with no policy, the replay's ``on_tick`` starts
    rollouts of broken candidates; each is rolled back in its shadow phase, and no
    request of the simulated users is answered by one."""

    from tidal.control.replay import ReplaySpec, run_replay
    from tidal.control.rollout import Rollouts
    from tidal.control.traffic import read_traffic
    from tidal.demo import elec2_frame
    from tidal.runtime.faults import Constant, Inverted
    from tidal.store.rollouts import RolloutRepository

    frame = elec2_frame(DATA).iloc[20_000:20_000 + 48 * 60].reset_index(drop=True)
    until = frame["time"].iloc[48 * 54]
    # the linear model answers 0 nearly always here: a constant 1 is the broken one
    wrappers = [lambda m: Constant(m, 1), Inverted]
    started: list[int] = []

    def inject(day: int, project: tidal.Project) -> None:
        if not wrappers or RolloutRepository(project.db).active("live"):
            return
        stable = project.model_version(f"live:{project.get_deployment('live').stable_version}")
        broken = project.register_model("live", wrappers.pop(0)(project.load_model(stable.ref)),
                                        signature=stable.signature)
        started.append(Rollouts(project).start("live", broken).id)

    spec = ReplaySpec(frame, time="time", target="target", policy="", users=7,
                      candidates=["linear"], reference_online=False, on_tick=inject)
    spec.train_until = until.tz_localize("UTC").timestamp()
    summary = run_replay(spec, tmp_path / "faults")
    assert summary["retrains"] == 0 and summary["promotions"] == 0  # no policy ran
    assert summary["rollbacks"] == 2 and summary["versions_served"] == [1]
    with tidal.Project(tmp_path / "faults") as project:
        rollouts = [RolloutRepository(project.db).get(i) for i in started]
        assert [(r.status, r.phase) for r in rollouts] == [("rolled_back", "shadow")] * 2
        traffic = read_traffic(project, "live", spec.train_until, spec.train_until + 7 * 86400)
        assert traffic.canary.num_rows == 0
        assert set(traffic.stable.column("version").to_pylist()) == {1}
        assert {r.candidate_version for r in rollouts} <= set(
            traffic.shadow.column("version").to_pylist())  # they did see the traffic
        assert set(traffic.stable.column("key").to_pylist()) == {str(k) for k in range(7)}
