"""Deployments on both backends: what each endpoint serves, its revision and its history."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import event, inspect

from tidal.core.errors import NotFoundError, ValidationError
from tidal.project import Project
from tidal.store import migrate
from tidal.store.database import WRITE_OPTION
from tidal.store.records import DeploymentRecord


def models(project, name="elec2", versions=3, champion=2, challenger=3):
    for index in range(versions):
        project.register_model(name, {"i": index}, signature={"inputs": []})
    if champion:
        project.set_alias(name, "champion", champion)
    if challenger:
        project.set_alias(name, "challenger", challenger)


def test_set_get_and_list(project, clock):
    models(project)
    models(project, "churn", versions=1, champion=1, challenger=None)
    assert project.list_deployments() == []
    made = project.set_deployment("elec2", "elec2@champion", canary=3, canary_weight=0.1,
                                  shadow=1, max_batch_size=32, max_batch_wait_ms=2.5,
                                  reason="first rollout")
    assert isinstance(made, DeploymentRecord)
    assert (made.name, made.model, made.stable_version, made.canary_version,
            made.canary_weight, made.shadow_version, made.max_batch_size,
            made.max_batch_wait_ms) == ("elec2", "elec2", 2, 3, 0.1, 1, 32, 2.5)
    assert (made.created_at, made.updated_at, made.updated_by) == (clock.now(), clock.now(),
                                                                   "tester")
    assert made.revision == 1
    assert project.get_deployment("elec2") == made
    assert project.deployments.get("elec2") == made
    assert made.to_dict()["canary_weight"] == 0.1
    assert json.loads(json.dumps(made.to_dict()))["model"] == "elec2"

    clock.advance(10)
    other = project.set_deployment("churn-eu", "churn")  # a bare name: its latest version
    assert (other.model, other.stable_version, other.canary_version, other.canary_weight,
            other.shadow_version, other.max_batch_size, other.max_batch_wait_ms) == (
        "churn", 1, None, 0.0, None, None, None)
    assert [d.name for d in project.list_deployments()] == ["churn-eu", "elec2"]

    # replacing keeps created_at and resets what is not given
    replaced = project.set_deployment("elec2", "elec2:3")
    assert (replaced.stable_version, replaced.canary_version, replaced.shadow_version,
            replaced.max_batch_size) == (3, None, None, None)
    assert replaced.created_at == made.created_at
    assert replaced.updated_at == clock.now() and replaced.revision == 3


@pytest.mark.parametrize("model,options,expected", [
    ("elec2@champion", {}, (2, None, None)),
    ("elec2:1", {"canary": "challenger", "canary_weight": 0.5}, (1, 3, None)),
    ("elec2", {"stable": "champion", "canary": "elec2@challenger"}, (2, 3, None)),
    ("elec2", {"stable": 1, "canary": "elec2:2", "shadow": "latest"}, (1, 2, 3)),
    ("elec2", {"stable": "3", "shadow": "champion"}, (3, None, 2)),
    ("elec2:latest", {"shadow": "1"}, (3, None, 1)),
])
def test_references_resolve_through_the_registry(project, model, options, expected):
    models(project)
    made = project.set_deployment("d", model, **options)
    assert (made.stable_version, made.canary_version, made.shadow_version) == expected


def test_a_version_record_is_a_reference(project):
    models(project)
    made = project.set_deployment("d", project.model_version("elec2@challenger"), shadow=1)
    assert (made.model, made.stable_version, made.shadow_version) == ("elec2", 3, 1)


def test_aliases_are_resolved_when_set_not_followed_later(project):
    models(project)
    project.set_deployment("elec2", "elec2@champion")
    project.set_alias("elec2", "champion", 3)
    assert project.get_deployment("elec2").stable_version == 2


@pytest.mark.parametrize("name,model,options,error,message", [
    ("d", "elec2:1", {"canary": 2, "canary_weight": 1.5}, ValidationError, "from 0 to 1"),
    ("d", "elec2:1", {"canary": 2, "canary_weight": -0.1}, ValidationError, "from 0 to 1"),
    ("d", "elec2:1", {"canary": 2, "canary_weight": math.nan}, ValidationError, "from 0 to 1"),
    ("d", "elec2:1", {"canary": 2, "canary_weight": "0.5"}, ValidationError, "from 0 to 1"),
    ("d", "elec2:1", {"canary_weight": 0.2}, ValidationError, "needs a canary version"),
    ("d", "elec2:2", {"canary": "champion"}, ValidationError,
     "canary version must differ from the stable one"),
    ("d", "elec2:2", {"shadow": 2}, ValidationError,
     "shadow version must differ from the stable one"),
    ("d", "elec2:1", {"max_batch_size": 0}, ValidationError, "max_batch_size"),
    ("d", "elec2:1", {"max_batch_size": 2.5}, ValidationError, "max_batch_size"),
    ("d", "elec2:1", {"max_batch_wait_ms": -1}, ValidationError, "max_batch_wait_ms"),
    ("d", "elec2:1", {"max_batch_wait_ms": math.inf}, ValidationError, "max_batch_wait_ms"),
    ("bad name", "elec2:1", {}, ValidationError, "invalid deployment name"),
    ("-d", "elec2:1", {}, ValidationError, "invalid deployment name"),
    ("d" * 65, "elec2:1", {}, ValidationError, "invalid deployment name"),
    ("d", "elec2:1", {"canary": 0}, ValidationError, "canary version must be a version number"),
    ("d", "elec2:1", {"canary": True}, ValidationError, "canary version must be"),
    ("d", "elec2:1", {"canary": "churn:1"}, ValidationError, "must be a version of 'elec2'"),
    ("d", "elec2:1", {"stable": 2}, ValidationError, "not both"),
    ("d", "elec2", {"canary": "Not An Alias"}, ValidationError, "invalid alias"),
    ("d", "what?:1", {}, ValidationError, "invalid model"),
    ("d", "ghost@champion", {}, NotFoundError, "no registered model named 'ghost'"),
    ("d", "ghost", {"stable": 1}, NotFoundError, "no registered model named 'ghost'"),
    ("d", "elec2:9", {}, NotFoundError, "model 'elec2' has no version 9"),
    ("d", "elec2:1", {"canary": 9}, NotFoundError,
     "model 'elec2' has no version 9 (the canary version of deployment 'd')"),
    ("d", "elec2:1", {"shadow": "12"}, NotFoundError, "has no version 12 (the shadow"),
    ("d", "elec2:1", {"canary": "retired"}, NotFoundError, "no alias 'retired'"),
    ("d", "elec2@retired", {}, NotFoundError, "no alias 'retired'"),
])
def test_bad_settings_are_refused_with_clear_messages(project, name, model, options, error,
                                                      message):
    models(project)
    models(project, "churn", versions=1, champion=None, challenger=None)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        project.set_deployment(name, model, **options)
    assert project.list_deployments() == []
    assert project.deployments.latest_revision() == 0
    assert project.deployment_history("d") == []


def test_the_repository_checks_versions_in_its_own_transaction(project):
    models(project)
    repo = project.deployments
    with pytest.raises(NotFoundError, match="no version 7 .the stable version"):
        repo.set("d", model="elec2", stable_version=7, now=1.0, actor=None, reason=None)
    with pytest.raises(NotFoundError, match="no registered model named 'ghost'"):
        repo.set("d", model="ghost", stable_version=1, now=1.0, actor=None, reason=None)
    with pytest.raises(ValidationError, match="stable version must be a version number"):
        repo.set("d", model="elec2", stable_version="1", now=1.0, actor=None,  # type: ignore
                 reason=None)
    made = repo.set("d", model="elec2", stable_version=1, canary_version=2, canary_weight=1,
                    now=5.0, actor=None, reason=None)
    assert (made.canary_weight, made.updated_by, made.updated_at) == (1.0, None, 5.0)
    with pytest.raises(NotFoundError, match="no deployment named 'ghost'"):
        repo.get("ghost")
    with pytest.raises(ValidationError, match="invalid deployment name"):
        repo.get("no such/name")


def test_the_revision_grows_on_every_set_and_delete(project, clock):
    models(project)
    revisions = [project.deployments.latest_revision()]
    assert revisions == [0]
    for index, (name, weight) in enumerate([("a", 0.1), ("b", 0.2), ("a", 0.3), ("b", 0.0)]):
        clock.advance(1)
        made = project.set_deployment(name, "elec2@champion", canary=3, canary_weight=weight)
        assert made.revision == project.deployments.latest_revision() == index + 1
        revisions.append(made.revision)
    project.delete_deployment("a", reason="retired")
    revisions.append(project.deployments.latest_revision())
    recreated = project.set_deployment("a", "elec2:1")
    revisions.append(recreated.revision)
    project.delete_deployment("b")
    revisions.append(project.deployments.latest_revision())
    assert revisions == list(range(8))
    assert [d.name for d in project.list_deployments()] == ["a"]
    with pytest.raises(NotFoundError, match="no deployment named 'b'"):
        project.get_deployment("b")
    with pytest.raises(NotFoundError, match="no deployment named 'b'"):
        project.delete_deployment("b")
    assert project.deployments.latest_revision() == 7  # a failed delete changes nothing


def test_setting_what_is_deployed_changes_nothing(project, clock):
    models(project)
    first = project.set_deployment("d", "elec2@champion", canary="challenger",
                                   canary_weight=0.25)
    clock.advance(5)
    again = project.set_deployment("d", "elec2:2", canary=3, canary_weight=0.25, reason="no-op")
    assert again == first
    assert project.deployments.latest_revision() == 1
    assert len(project.deployment_history("d")) == 1


def test_every_change_is_an_event_with_before_and_after(project, clock):
    models(project)
    project.set_deployment("elec2", "elec2@champion", reason="launch")
    clock.advance(60)
    project.set_deployment("elec2", "elec2@champion", canary="challenger", canary_weight=0.05,
                           shadow=1, reason="canary 3")
    clock.advance(60)
    project.delete_deployment("elec2", reason="moved")
    history = project.deployment_history("elec2")
    assert [(e.kind, e.entity_type, e.entity_id, e.actor, e.reason) for e in history] == [
        ("deployment_set", "deployment", "elec2", "tester", "launch"),
        ("deployment_set", "deployment", "elec2", "tester", "canary 3"),
        ("deployment_deleted", "deployment", "elec2", "tester", "moved"),
    ]
    assert [e.at for e in history] == [1_700_000_000.0, 1_700_000_060.0, 1_700_000_120.0]
    launch, canary, deleted = (e.payload for e in history)
    settings = {"model": "elec2", "stable_version": 2, "canary_version": None,
                "canary_weight": 0.0, "shadow_version": None, "max_batch_size": None,
                "max_batch_wait_ms": None}
    assert launch == {"deployment": "elec2", "revision": 1, "before": None, "after": settings}
    after = settings | {"canary_version": 3, "canary_weight": 0.05, "shadow_version": 1}
    assert canary == {"deployment": "elec2", "revision": 2, "before": settings, "after": after}
    assert deleted == {"deployment": "elec2", "revision": 3, "before": after, "after": None}
    assert [e.kind for e in project.deployment_history("elec2", limit=2)] == [
        "deployment_set", "deployment_deleted"]
    # the registry's history is not mixed with the deployment's
    assert {e.kind for e in project.model_history("elec2")} == {"version_registered",
                                                                  "alias_set"}


def test_latest_revision_is_one_query(project):
    models(project)
    project.set_deployment("d", "elec2:1")
    assert project.deployments.latest_revision() == 1  # schema checked, pool warm
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            statements.append(statement)

    event.listen(project.db.engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            assert project.deployments.latest_revision() == 1
    finally:
        event.remove(project.db.engine, "before_cursor_execute", seen)
    assert len(statements) == 3
    assert all("deployment_revision" in s for s in statements)


def test_concurrent_setters_in_threads_never_share_a_revision(project):
    models(project)
    threads_count, writes = 4, 12
    revisions: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(worker: int) -> None:
        try:
            for index in range(writes):
                # two threads per deployment name, and every write is a real change
                weight = (worker * writes + index + 1) / 1000
                made = project.set_deployment(f"d{worker % 2}", "elec2:1", canary=2,
                                              canary_weight=weight)
                with lock:
                    revisions.append(made.revision)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    total = threads_count * writes
    assert sorted(revisions) == list(range(1, total + 1))
    assert project.deployments.latest_revision() == total
    events = project.deployment_history("d0", limit=1000) + project.deployment_history(
        "d1", limit=1000)
    assert sorted(e.payload["revision"] for e in events) == list(range(1, total + 1))


WORKER = textwrap.dedent(
    """
    import json, sys
    from tidal.project import Project

    url, artifacts, worker, writes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    project = Project(artifacts, store_url=url, artifact_root=artifacts, actor="w" + str(worker))
    revisions = []
    for index in range(writes):
        weight = (worker * writes + index + 1) / 1000
        name = "shared" if index % 2 else "own" + str(worker)
        revisions.append(project.set_deployment(name, "elec2:1", canary=2,
                                                canary_weight=weight).revision)
        if index % 5 == 4:
            project.delete_deployment("own" + str(worker))
            revisions.append(project.deployments.latest_revision())
    print(json.dumps(revisions))
    """
)


def test_concurrent_setters_in_processes_never_share_a_revision(project, store_url,
                                                                tmp_path: Path):
    models(project)
    workers, writes = 4, 10
    script = tmp_path / "deploy_worker.py"
    script.write_text(WORKER)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), store_url, str(tmp_path / "artifacts"), str(worker),
             str(writes)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for worker in range(workers)
    ]
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    sets = [json.loads(out) for out, _ in outputs]
    total = workers * (writes + writes // 5)
    assert project.deployments.latest_revision() == total
    # the revision each writer saw right after its own write grows for that writer
    for seen in sets:
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
    events = project.deployment_history("shared", limit=1000)
    for worker in range(workers):
        events += project.deployment_history(f"own{worker}", limit=1000)
    assert sorted(e.payload["revision"] for e in events) == list(range(1, total + 1))
    assert [d.name for d in project.list_deployments()] == ["shared"]


def test_upgrading_a_store_from_0002_adds_deployments(project, tmp_path, clock):
    # a store that a Tidal knowing only schema 0002 created and registered models in
    migrate.upgrade(project.db, "0002")
    project.db._schema_ready = True  # noqa: SLF001 - act as the Tidal that knew only 0002
    models(project)
    assert "deployments" not in inspect(project.db.engine).get_table_names()
    url = project.settings.store_url
    project.close()

    newer = Project(tmp_path, store_url=url, artifact_root=str(tmp_path / "artifacts"),
                    clock=clock, actor="tester")
    try:
        assert newer.deployments.latest_revision() == 0  # first use upgrades the store
        assert migrate.current_revision(newer.db) == migrate.head_revision()
        made = newer.set_deployment("elec2", "elec2@champion", canary="challenger",
                                    canary_weight=0.5)
        assert (made.stable_version, made.canary_version, made.revision) == (2, 3, 1)
        assert newer.load_model("elec2:2") == {"i": 1}

        # and back down: 0003 (and what came after) drops only its own tables
        config = migrate.alembic_config()
        with newer.db.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
            with connection.begin():
                config.attributes["connection"] = connection
                command.downgrade(config, "0002")
        tables = set(inspect(newer.db.engine).get_table_names())
        assert not tables & {"deployments", "deployment_revision", "monitor_windows"}
        assert {"registered_models", "model_versions", "pipeline_runs"} <= tables
        assert migrate.current_revision(newer.db) == "0002"
        assert newer.model_version("elec2@champion").version == 2
    finally:
        newer.close()


# -- decisions taken on a deployment read earlier, and versions that may not serve -----------

def test_a_vetoed_version_gets_no_traffic_unless_forced(project):
    from tidal.control.rollout import Rollouts
    from tidal.core.errors import ConflictError

    models(project, challenger=None)
    project.set_deployment("elec2", "elec2:1")
    project.set_status("elec2", 3, "vetoed", reason="gate failed")
    with pytest.raises(ConflictError, match="elec2:3 is vetoed; rolling it out needs force"):
        Rollouts(project).start("elec2", project.model_version("elec2:3"),
                                strategy="blue_green")
    with pytest.raises(ConflictError, match="elec2:3 is vetoed; deploying it needs force"):
        project.set_deployment("elec2", "elec2:1", canary=3, canary_weight=0.5)
    with pytest.raises(ConflictError, match="vetoed"):
        project.set_deployment("fresh", "elec2:3")
    assert project.get_deployment("elec2").stable_version == 1
    # a person who insists can; a version vetoed after it was deployed keeps its place
    project.set_deployment("elec2", "elec2:1", canary=3, canary_weight=0.5, force=True)
    project.set_status("elec2", 1, "vetoed")
    assert project.set_deployment("elec2", "elec2:1", canary=3, canary_weight=0.2) \
        .canary_weight == 0.2
    rollout = Rollouts(project).start("elec2", project.model_version("elec2:2"),
                                      strategy="blue_green")
    assert rollout.status == "promoted"


def test_a_rollout_started_on_a_stale_read_is_refused(project):
    """The deployment changed between the read a rollout's traffic was derived from and
    its start: the start is refused instead of silently undoing the change."""
    from tidal.control.rollout import Rollouts
    from tidal.core.errors import ConflictError

    models(project, versions=4, champion=None, challenger=None)
    project.set_deployment("elec2", "elec2:1")
    project.set_deployment("elec2", "elec2:2")
    rollouts = Rollouts(project)
    read = project.get_deployment
    stale = read("elec2")
    project.get_deployment = lambda name: stale  # what start saw, before the change below
    project.set_deployment("elec2", "elec2:3", reason="hotfix")
    with pytest.raises(ConflictError, match="changed while this was decided"):
        rollouts.start("elec2", project.model_version("elec2:4"), strategy="canary")
    with pytest.raises(ConflictError, match="changed while this was decided"):
        rollouts.rollback("elec2")
    del project.get_deployment
    assert read("elec2").stable_version == 3
    assert project.rollouts.active("elec2") is None
    assert rollouts.start("elec2", project.model_version("elec2:4"),
                          strategy="canary").baseline_version == 3


def test_json_columns_store_infinities_and_nan_on_every_backend(project):
    """PostgreSQL refuses NaN and infinities in JSON; a rollout analysis with an infinite
    distance (a candidate answering NaN) must still be stored, and its rollback with it."""
    from tidal.control.rollout import Rollouts

    models(project, champion=None, challenger=None)
    project.set_deployment("elec2", "elec2:1")
    rollout = Rollouts(project).start("elec2", project.model_version("elec2:2"),
                                      strategy="canary")
    analysis = {"verdict": "fail", "distance": math.inf, "spread": [-math.inf, math.nan, 1.5]}
    finished = project.rollouts.transition(
        rollout.id, expect=("running",), changes={"status": "rolled_back",
                                                  "last_analysis": analysis},
        settings=None, kind="rollout.rolled_back", now=project.clock.now(), actor="t",
        reason="analysis failed", payload={"analysis": analysis})
    assert finished.status == "rolled_back"
    stored = project.rollouts.get(rollout.id).last_analysis
    assert stored == {"verdict": "fail", "distance": "inf", "spread": ["-inf", "nan", 1.5]}
