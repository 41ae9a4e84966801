"""Rollouts on real logged traffic (the prediction log's own format, compacted as the
monitors read it): a good candidate goes shadow → canary steps → promoted; broken ones
are rolled back at the first analysis that sees them; an inconclusive step holds for a
person; and a person can pause, resume, promote, abort and roll back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from monitor_harness import ELEC2_FEATURES, elec2, elec2_time, log_predictions

import tidal
from tidal.control.rollout import Rollouts
from tidal.core.clock import ManualClock
from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.runtime.loaded import load_version
from tidal.store.events import list_events

SIGNATURE = {"inputs": [{"name": f, "datatype": "FP64", "nullable": True}
                        for f in ELEC2_FEATURES],
             "outputs": [{"name": "label", "datatype": "INT64"},
                         {"name": "probabilities", "datatype": "FP64"}],
             "task": "classification", "classes": [0, 1]}
START = 17_424 - 4000
PLAN = ('[rollout]\nshadow_requests = 300\nshadow_time = "100h"\nsteps = [0.2, 0.5, 1.0]\n'
        'step_time = "30m"\ninconclusive_limit = "2h"\n'
        '[rollout.analysis]\nmin_requests = 100\n')


@pytest.fixture
def project(tmp_path: Path):
    """Elec2 served by a logistic regression (v1); v2 a forest trained on later rows (a
    genuine candidate), v3 a model that always answers 1 (a broken one)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import RandomForestClassifier

    from tidal.train.candidates import make_candidate

    data = elec2()
    old, new = data.iloc[START - 3000:START - 1000], data.iloc[START - 2000:START]
    stable = make_candidate("linear", "classification", ELEC2_FEATURES, [], seed=0).fit(
        old[ELEC2_FEATURES], old["target"])
    better = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1).fit(
        new[ELEC2_FEATURES], new["target"])
    constant = DummyClassifier(strategy="constant", constant=1).fit(
        new[ELEC2_FEATURES], new["target"])
    (tmp_path / "tidal.toml").write_text(PLAN)
    clock = ManualClock(float(elec2_time([START])[0]))
    handle = tidal.Project(tmp_path, clock=clock)
    for model in (stable, better, constant):
        handle.register_model("elec2", model, signature=SIGNATURE)
    handle.set_deployment("elec2", "elec2:1")
    yield handle
    handle.close()


class Traffic:
    """Serves Elec2 rows in order, as the server would log them under the deployment's
    current routing (stable, plus the canary's share or the shadow's copies)."""

    def __init__(self, project: tidal.Project) -> None:
        self.project = project
        self.row = START
        self.folder = project.settings.serve.log_path(project.settings.project_dir)
        self.models: dict[int, object] = {}

    def model(self, version: int):
        if version not in self.models:
            self.models[version] = load_version(
                self.project.artifacts, self.project.model_version(f"elec2:{version}"))
        return self.models[version]

    def serve(self, rows: int) -> None:
        """``rows`` requests, one row each, half an hour apart in event time, ending at
        the clock (which moves to the last request's time)."""
        deployment = self.project.get_deployment("elec2")
        frame = elec2().iloc[self.row:self.row + rows]
        times = elec2_time(range(self.row, self.row + rows))
        self.row += rows
        to_canary = np.zeros(rows, dtype=bool)
        if deployment.canary_version is not None:
            to_canary = np.random.default_rng(self.row).random(rows) < deployment.canary_weight
        stable_ids = log_predictions(self.folder, "elec2", self.model(
            deployment.stable_version), frame[~to_canary], times[~to_canary])
        if to_canary.any():
            log_predictions(self.folder, "elec2", self.model(deployment.canary_version),
                            frame[to_canary], times[to_canary], route="canary")
        if deployment.shadow_version is not None:
            log_predictions(self.folder, "elec2", self.model(deployment.shadow_version),
                            frame[~to_canary], times[~to_canary], route="shadow",
                            request_ids=stable_ids)
        self.project.clock.set(float(times[-1]) + 1)


def _kinds(project: tidal.Project) -> list[str]:
    return [e.kind for e in list_events(project.db, entity_type="deployment",
                                        entity_id="elec2") if e.kind.startswith("rollout.")]


def test_a_good_candidate_goes_from_shadow_through_the_canary_steps_to_promotion(project):
    rollouts, traffic = Rollouts(project), Traffic(project)
    started = rollouts.start("elec2", project.model_version("elec2:2"))
    assert (started.phase, started.status, started.baseline_version) == ("shadow", "running", 1)
    assert project.get_deployment("elec2").shadow_version == 2
    traffic.serve(150)  # not enough mirrored requests yet, nor time
    first = rollouts.reconcile("elec2")
    assert (first.phase, first.status) == ("shadow", "running"), first.last_analysis
    traffic.serve(200)
    moved = rollouts.reconcile("elec2")
    assert (moved.phase, moved.step) == ("canary", 0), moved.last_analysis
    deployment = project.get_deployment("elec2")
    assert (deployment.canary_version, deployment.canary_weight, deployment.shadow_version) \
        == (2, 0.2, None)
    agreement = {c["name"]: c for c in moved.last_analysis["comparisons"]}["agreement"]
    assert 0.5 <= agreement["candidate"] < 1.0  # a different model, mostly agreeing
    traffic.serve(1000)  # ~200 canary requests over 500 hours of event time
    assert rollouts.reconcile("elec2").step == 1
    assert project.get_deployment("elec2").canary_weight == 0.5
    traffic.serve(400)
    promoted = rollouts.reconcile("elec2")
    assert (promoted.status, promoted.finished_at is not None) == ("promoted", True)
    deployment = project.get_deployment("elec2")
    assert (deployment.stable_version, deployment.canary_version) == (2, None)
    assert _kinds(project) == ["rollout.started", "rollout.step", "rollout.step",
                               "rollout.promoted"]
    assert rollouts.reconcile("elec2") is None  # nothing left to do


def test_a_constant_candidate_is_rolled_back_by_the_shadow_analysis(project):
    rollouts, traffic = Rollouts(project), Traffic(project)
    rollouts.start("elec2", project.model_version("elec2:3"))
    traffic.serve(350)
    ended = rollouts.reconcile("elec2")
    assert ended.status == "rolled_back"
    failed = {c["name"] for c in ended.last_analysis["comparisons"] if c["verdict"] == "fail"}
    assert "collapsed_outputs" in failed
    deployment = project.get_deployment("elec2")
    assert (deployment.stable_version, deployment.shadow_version,
            deployment.canary_version) == (1, None, None)
    events = list_events(project.db, entity_type="deployment", entity_id="elec2")
    assert "analysis failed" in [e for e in events if e.kind == "rollout.rolled_back"][0].reason


def test_a_canary_that_fails_is_rolled_back_without_waiting_for_the_step(project):
    project_plan = project.settings.rollout.model_copy(update={"strategy": "canary"})
    rollouts, traffic = Rollouts(project), Traffic(project)
    rollouts.start("elec2", project.model_version("elec2:3"), plan=project_plan)
    assert project.get_deployment("elec2").canary_weight == 0.2
    traffic.serve(800)  # ~160 canary requests
    ended = rollouts.reconcile("elec2")
    assert ended.status == "rolled_back" and ended.phase == "canary"
    assert project.get_deployment("elec2").canary_version is None


@pytest.mark.parametrize("waiting", ["paused", "holding"])
def test_a_failing_candidate_is_rolled_back_even_while_waiting_for_a_person(project,
                                                                           waiting):
    """Pausing (or holding) stops a rollout moving forward, never its rollback: the
    broken candidate keeps no share of the traffic while nobody looks."""
    plan = project.settings.rollout.model_copy(update={"strategy": "canary"})
    rollouts, traffic = Rollouts(project), Traffic(project)
    started = rollouts.start("elec2", project.model_version("elec2:3"), plan=plan)
    if waiting == "paused":
        rollouts.pause("elec2")
    else:  # as an inconclusive step leaves it
        project.rollouts.transition(started.id, expect=("running",),
                                    changes={"status": "holding"}, settings=None,
                                    kind="rollout.holding", now=project.clock.now(),
                                    actor="test", reason="inconclusive")
    traffic.serve(800)  # ~160 canary requests of a model that always answers 1
    ended = rollouts.reconcile("elec2")
    assert ended.status == "rolled_back", ended.last_analysis
    assert project.get_deployment("elec2").canary_version is None


def test_an_inconclusive_step_waits_then_holds_for_a_person(project):
    rollouts = Rollouts(project)
    rollouts.start("elec2", project.model_version("elec2:2"))
    project.clock.advance(100 * 3600 + 1)  # the shadow time passed without a request
    waiting = rollouts.reconcile("elec2")
    assert waiting.status == "running" and waiting.inconclusive_since is not None
    project.clock.advance(2 * 3600)
    held = rollouts.reconcile("elec2")
    assert held.status == "holding"
    assert rollouts.reconcile("elec2").status == "holding"  # a person decides now
    resumed = rollouts.resume("elec2")
    assert (resumed.status, resumed.inconclusive_since) == ("running", None)


def test_a_person_pauses_resumes_promotes_aborts_and_rolls_back(project):
    rollouts = Rollouts(project)
    rollouts.start("elec2", project.model_version("elec2:2"))
    with pytest.raises(ConflictError):  # one rollout at a time per deployment
        rollouts.start("elec2", project.model_version("elec2:3"))
    assert rollouts.pause("elec2").status == "paused"
    assert rollouts.reconcile("elec2").status == "paused"  # the controller leaves it
    with pytest.raises(ConflictError):
        rollouts.pause("elec2")
    rollouts.resume("elec2")
    promoted = rollouts.promote("elec2", reason="looks right")
    assert promoted.status == "promoted"
    assert project.get_deployment("elec2").stable_version == 2
    with pytest.raises(NotFoundError, match="no rollout in progress"):
        rollouts.abort("elec2")
    # with no rollout in progress, a rollback returns the stable version before this one
    assert project.model_version("elec2@champion").version == 2  # promoted: the champion
    back = rollouts.rollback("elec2")
    assert (back.stable_version, back.shadow_version) == (1, None)
    assert project.model_version("elec2@champion").version == 1  # and back with it
    rollouts.start("elec2", project.model_version("elec2:3"))
    aborted = rollouts.abort("elec2")
    assert aborted.status == "aborted" and project.get_deployment("elec2").stable_version == 1
    # a second rollback does not undo the first: 1 came back by a rollback, and before
    # the change that first made it stable there was nothing
    with pytest.raises(NotFoundError, match="nothing to roll back"):
        rollouts.rollback("elec2")


def test_a_decision_on_a_state_that_moved_meanwhile_is_refused(project):
    rollouts = Rollouts(project)
    rollouts.start("elec2", project.model_version("elec2:2"))
    seen = project.rollouts.active("elec2")
    project.clock.advance(1)
    rollouts.pause("elec2", reason="a person, meanwhile")
    with pytest.raises(ConflictError, match="moved"):
        project.rollouts.transition(seen.id, expect=("running", "paused"),
                                    read_at=seen.updated_at, changes={"step": 1},
                                    settings=None, kind="rollout.step",
                                    now=project.clock.now(), actor="controller",
                                    reason="a stale decision")
    assert project.rollouts.active("elec2").step == 0
    project.set_deployment("elec3", "elec2:1")
    with pytest.raises(ValidationError, match="100 %"):
        Rollouts(project).start("elec3", project.model_version("elec2:2"), strategy="canary",
                                plan=project.settings.rollout.model_copy(
                                    update={"steps": [1.0]}))


def test_blue_green_switches_at_once_and_rolls_back_at_once(project):
    rollouts = Rollouts(project)
    switched = rollouts.start("elec2", project.model_version("elec2:2"), strategy="blue_green")
    assert (switched.status, switched.phase) == ("promoted", "switched")
    assert project.get_deployment("elec2").stable_version == 2
    assert rollouts.rollback("elec2").stable_version == 1
    with pytest.raises(ConflictError, match="already the stable"):
        rollouts.start("elec2", project.model_version("elec2:1"))


def test_the_champion_moves_in_the_same_transaction_as_the_switch(project, monkeypatch):
    """A promotion and the @champion it earns commit together: when writing the alias
    fails, the switch did not happen either (a controller dying between two separate
    writes would have left the old champion for the next gate to compare with)."""
    rollouts = Rollouts(project)
    registry = type(project.registry)

    def failing(*args, **kwargs):
        raise RuntimeError("the store went away")

    with monkeypatch.context() as patched:
        patched.setattr(registry, "write_alias", failing)
        with pytest.raises(RuntimeError, match="went away"):
            rollouts.start("elec2", project.model_version("elec2:2"), strategy="blue_green")
    assert project.get_deployment("elec2").stable_version == 1
    assert project.rollouts.active("elec2") is None and project.rollouts.history("elec2") == []
    rollouts.start("elec2", project.model_version("elec2:2"), strategy="blue_green")
    assert project.model_version("elec2@champion").version == 2
    rollouts.rollback("elec2")
    assert project.model_version("elec2@champion").version == 1


def test_a_deployment_that_served_one_version_has_nothing_to_roll_back_to(project):
    with pytest.raises(NotFoundError, match="nothing to roll back"):
        Rollouts(project).rollback("elec2")


def test_a_rollback_reaches_a_live_server_within_a_second(served):
    """The server answers with version 2, `tidal rollback` runs, and within a second of
    the command returning the server answers with version 1 again."""
    from serve_harness import wait_until

    served.project.set_deployment("elec2", "elec2:2", reason="the forest")
    body = {"records": [served.rows[ELEC2_FEATURES].iloc[0].to_dict()]}

    def version() -> int:
        with served.client() as http:
            return http.post("/v1/predict/elec2", json=body).json()["version"]

    wait_until(lambda: version() == 2, timeout=10)
    result = subprocess.run(
        [sys.executable, "-m", "tidal", "rollback", "elec2", "-r", "bad forest", "--json"],
        env={**os.environ, "TIDAL_PROJECT_DIR": str(served.folder)},
        capture_output=True, text=True, timeout=120)
    returned = time.monotonic()
    assert result.returncode == 0, result.stderr
    assert '"stable_version": 1' in result.stdout
    waited = wait_until(lambda: version() == 1, timeout=5, interval=0.02)
    assert time.monotonic() - returned < 1.0, waited


def _tidal(folder: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "tidal", *args],
                            env={**os.environ, "TIDAL_PROJECT_DIR": str(folder),
                                 "COLUMNS": "200"},
                            capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == status, result.stderr
    return result


def test_the_command_line_deploys_steers_and_rolls_back(project):
    import json

    folder = project.settings.project_dir
    started = json.loads(_tidal(folder, "deploy", "elec2@2", "--to", "elec2", "--strategy",
                                "canary", "--steps", "10,50,100", "--step-time", "5m",
                                "--json").stdout)
    assert started["rollout"]["plan"]["steps"] == [0.1, 0.5, 1.0]
    assert project.get_deployment("elec2").canary_weight == 0.1
    assert "canary at 10%" in _tidal(folder, "rollout", "status").stdout
    stepped = json.loads(_tidal(folder, "rollout", "step", "elec2", "--json").stdout)
    assert stepped["rollout"]["last_analysis"]["verdict"] == "inconclusive"  # no traffic
    assert "paused" in _tidal(folder, "rollout", "pause", "elec2", "-r", "lunch").stdout
    assert "running" in _tidal(folder, "rollout", "resume", "elec2").stdout
    _tidal(folder, "rollout", "promote", "elec2", "-r", "checked by hand")
    assert project.get_deployment("elec2").stable_version == 2
    back = json.loads(_tidal(folder, "rollback", "elec2", "--json").stdout)
    assert back["serving"]["stable_version"] == 1
    # mistakes are one line, never a traceback
    for args, words in [(("rollout", "abort", "elec2"), "no rollout in progress"),
                        (("deploy", "elec2@9", "--to", "elec2"), "version"),
                        (("deploy", "elec2@2", "--to", "elec2", "--steps", "50,10"),
                         "ascending"),
                        (("rollout", "pause", "nope"), "nope")]:
        failed = _tidal(folder, *args, status=_status_of(args))
        assert words in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    created = json.loads(_tidal(folder, "deploy", "elec2:3", "--to", "fresh", "--json").stdout)
    assert created["rollout"] is None and created["serving"]["stable_version"] == 3


def _status_of(args: tuple[str, ...]) -> int:
    """The exit status the README promises: 2 bad input, 3 not found."""
    return 2 if "--steps" in args else 3


def test_a_shadow_that_crashes_on_some_inputs_is_logged_and_rolled_back(served):
    """Through a live server: the shadow's failures are logged (never seen by the
    client), and the shadow analysis rolls the candidate back on them."""
    from serve_harness import wait_until

    from tidal.core.config import AnalysisSection, RolloutSection
    from tidal.runtime.faults import Crashing
    from tidal.serve.predlog import read_log

    stable = served.project.model_version("elec2:1")
    crashing = served.project.register_model(
        "elec2", Crashing(served.project.load_model("elec2:1"), "feat_1", 0.5),
        signature=stable.signature)
    plan = RolloutSection(strategy="shadow", shadow_requests=40,
                          analysis=AnalysisSection(min_requests=30))
    rollouts = Rollouts(served.project)
    rollouts.start("elec2", crashing, plan=plan)
    records = served.rows[ELEC2_FEATURES].iloc[:60].to_dict("records")
    wait_until(lambda: _answers(served, records[0]) and served.project.get_deployment(
        "elec2").shadow_version == crashing.version, timeout=10)
    time.sleep(1.0)  # the replica polls every 0.5 s
    for record in records:
        assert _answers(served, record)  # the client never sees the shadow's crash
    log = served.folder / ".tidal" / "predictions"
    wait_until(lambda: sum(r.route == "shadow" for r in read_log(log)) >= 60, timeout=10)
    failed = [r for r in read_log(log) if r.route == "shadow" and r.status >= 500]
    assert failed and all("injected crash" in r.error for r in failed)
    ended = rollouts.reconcile("elec2")
    assert ended.status == "rolled_back", ended.last_analysis
    assert {c["name"]: c["verdict"] for c in ended.last_analysis["comparisons"]}[
        "server_errors"] == "fail"


def _answers(served, record) -> bool:
    with served.client() as http:
        return http.post("/v1/predict/elec2", json=[record]).status_code == 200
