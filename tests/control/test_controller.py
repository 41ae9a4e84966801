"""The controller: one leader at a time through a lease in the store (SQLite and
PostgreSQL), a takeover when the leader dies, policies that fire on their triggers, run
the real pipeline and start a rollout, once; and `tidal why` telling the story."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tidal
from tidal.control.controller import LEASE, Controller
from tidal.control.policies import Policies
from tidal.core.errors import ConflictError
from tidal.store.events import list_events, record_event
from tidal.store.feedback import FeedbackItem
from tidal.store.leases import LeaseRepository


def test_a_lease_has_one_holder_until_it_expires_or_is_released(project):
    leases = LeaseRepository(project.db)
    assert leases.acquire("controller", "a", ttl=10, now=100.0)
    assert not leases.acquire("controller", "b", ttl=10, now=105.0)
    assert leases.acquire("controller", "a", ttl=10, now=108.0)  # renewed to 118
    assert not leases.acquire("controller", "b", ttl=10, now=117.0)
    assert leases.acquire("controller", "b", ttl=10, now=118.5)  # a went silent
    assert leases.get("controller").holder == "b"
    leases.release("controller", "a")  # not a's any more: nothing happens
    assert leases.get("controller").holder == "b"
    leases.release("controller", "b")
    assert leases.acquire("controller", "c", ttl=10, now=119.0)


@pytest.fixture
def loop_project(trained_project: Path, tmp_path: Path):
    """The served project (elec2:1 linear, elec2:2 forest, a pipeline that trains a
    forest), deployed at version 1, with a policy on 20 new labels."""
    folder = tmp_path / "project"
    shutil.copytree(trained_project, folder)
    with (folder / "tidal.toml").open("a") as config:
        config.write('\n[[policies]]\nname = "labels"\ndeployment = "elec2"\n'
                     'new_labels = 20\ncooldown = "1h"\nstrategy = "canary"\n')
    project = tidal.Project(folder)
    project.set_deployment("elec2", "elec2:1")
    yield project
    project.close()


def test_one_controller_leads_and_another_takes_over_when_it_dies(loop_project):
    first = Controller(loop_project, lease_ttl=1.0, holder="first", monitor_sinks=[])
    second = Controller(tidal.Project(loop_project.settings.project_dir), lease_ttl=1.0,
                        holder="second", monitor_sinks=[])
    assert first.tick().leader and not second.tick().leader
    assert first.tick().leader  # renewed
    time.sleep(1.2)  # the first one stopped ticking (it "died" without letting go)
    assert second.tick().leader and not first.tick().leader
    second.leases.release(LEASE, "second")
    second.project.close()


def test_a_policy_fires_runs_the_pipeline_and_starts_a_rollout_once(loop_project):
    controller = Controller(loop_project, holder="only", monitor_sinks=[])
    assert controller.tick().policies == []  # no labels yet
    loop_project.feedback.add([FeedbackItem("elec2", 1, request_id=f"r{i}")
                               for i in range(25)], source="api", actor="t",
                              now=loop_project.clock.now())
    tick = controller.tick()
    (outcome,) = tick.policies
    assert outcome.trigger == "25 new labels" and outcome.status == "blessed", outcome
    rollout = loop_project.rollouts.active("elec2")
    assert rollout is not None and rollout.id == outcome.rollout
    assert rollout.strategy == "canary"
    assert loop_project.get_deployment("elec2").canary_version == rollout.candidate_version
    assert controller.tick().policies == []  # cooling down, and a rollout is under way
    kinds = [e.kind for e in list_events(loop_project.db, entity_type="policy",
                                         entity_id="labels")]
    assert kinds == ["policy.watching", "policy.fired", "policy.trained", "policy.done"]
    # a controller that died after training and starting the rollout, before recording
    # the outcome: the one that takes over finishes the firing with the model it trained,
    # and does not start a second rollout (nor train again)
    from tidal.control.rollout import Rollouts

    Rollouts(loop_project).abort("elec2", reason="clear the way for the crash test")
    trained = loop_project.model_version(outcome.model)

    def event(kind: str, payload: dict) -> None:
        loop_project.db.transact(lambda session: record_event(
            session, at=loop_project.clock.now(), kind=kind, entity_type="policy",
            entity_id="labels", actor="controller", reason="25 new labels",
            payload=payload))

    event("policy.fired", {"labels": 50})
    fired = list_events(loop_project.db, entity_type="policy", entity_id="labels",
                        kind="policy.fired", newest_first=True)[0]
    event("policy.trained", {"fired": fired.id, "model": trained.ref, "status": "blessed",
                             "pipeline_run": "before-the-crash"})
    started = Rollouts(loop_project, actor="controller").start("elec2", trained)
    latest = loop_project.model_version("elec2").version
    (resumed,) = Policies(loop_project).resume_unfinished()
    assert resumed.rollout == started.id and "already started" in resumed.note, resumed
    assert loop_project.model_version("elec2").version == latest  # no retraining
    assert [r.id for r in loop_project.rollouts.history("elec2")] == [started.id, rollout.id]
    # by hand, meanwhile, the deployment cannot be changed under the rollout
    with pytest.raises(ConflictError, match="rollout"):
        loop_project.set_deployment("elec2", "elec2:2")


def test_why_tells_which_rollout_and_policy_put_a_version_in_service(loop_project):
    controller = Controller(loop_project, holder="only", monitor_sinks=[])
    controller.tick()  # the policy starts counting labels from here
    loop_project.feedback.add([FeedbackItem("elec2", 1, request_id=f"r{i}")
                               for i in range(25)], source="api", actor="t",
                              now=loop_project.clock.now())
    controller.tick()
    from tidal.control.rollout import Rollouts

    Rollouts(loop_project).promote("elec2", reason="checked the canary by hand")
    folder = loop_project.settings.project_dir
    result = subprocess.run([sys.executable, "-m", "tidal", "why", "elec2", "--json"],
                            env={**os.environ, "TIDAL_PROJECT_DIR": str(folder)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    story = json.loads(result.stdout)
    serving = loop_project.get_deployment("elec2").stable_version
    assert story["serving"]["stable"] == serving and serving > 2
    assert story["policy"]["name"] == "labels"
    assert story["policy"]["trigger"] == "25 new labels"
    assert [s["kind"] for s in story["rollout"]["steps"]] == ["rollout.started",
                                                              "rollout.promoted"]
    assert story["model"]["status"] == "blessed" and "champion" in story["model"]["aliases"]
    text = subprocess.run([sys.executable, "-m", "tidal", "why", "elec2"],
                          env={**os.environ, "TIDAL_PROJECT_DIR": str(folder)},
                          capture_output=True, text=True, timeout=120).stdout
    assert "policy labels fired (25 new labels)" in text and "rollout" in text


def test_a_controller_killed_mid_rollout_is_replaced_and_the_rollout_goes_on(loop_project):
    """`tidal controller` in a process, SIGKILLed while a rollout runs; a new one takes
    over once the lease expires and moves the rollout on (here: abandons nothing, and
    holds it for a person when no traffic comes)."""
    folder = loop_project.settings.project_dir
    with (folder / "tidal.toml").open("a") as config:
        config.write('\n[rollout]\nshadow_time = "1s"\ninconclusive_limit = "2s"\n')
    from tidal.control.rollout import Rollouts

    fresh = tidal.Project(folder)
    Rollouts(fresh).start("elec2", fresh.model_version("elec2:2"))
    env = {**os.environ, "TIDAL_PROJECT_DIR": str(folder)}
    command = [sys.executable, "-m", "tidal", "controller", "--interval", "0.2",
               "--lease-ttl", "2"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(lambda: _holder(fresh) is not None, 60)
        holder = _holder(fresh)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait(lambda: _holder(fresh) not in (None, holder), 30)  # the new one leads
            _wait(lambda: fresh.rollouts.active("elec2").status == "holding", 30)
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(30)
        assert _holder(fresh) is None  # a clean stop lets go
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        fresh.close()


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _holder(project) -> str | None:
    lease = LeaseRepository(project.db).get(LEASE)
    return None if lease is None else lease.holder
