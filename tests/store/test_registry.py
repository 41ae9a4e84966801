"""The model registry on both backends: versions, aliases, statuses and their history."""

from __future__ import annotations

import pytest

from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.store.registry import parse_ref


def register(project, name="churn", payload=None, **options):
    return project.register_model(name, payload or {"weights": [1, 2, 3]}, **options)


def test_versions_count_up_and_keep_their_lineage(project):
    with project.start_run("train") as run:
        run.log_metric("auc", 0.8)
        first = run.register_model("churn", {"w": 1}, metrics={"auc": 0.8},
                                   dataset_hash="a" * 64, signature={"inputs": []})
    second = register(project)
    assert (first.version, second.version) == (1, 2)
    assert first.run_id == run.id
    assert first.dataset_hash == "a" * 64
    assert first.metrics == {"auc": 0.8}
    assert first.status == "registered"
    assert project.model_version("churn:latest").version == 2
    assert project.model_version("churn").version == 2
    assert project.model_version("churn:1").artifact_sha256 == first.artifact_sha256


def test_the_registered_model_loads_back(project):
    register(project, payload={"coefficients": [0.5, -1.25]})
    assert project.load_model("churn:1") == {"coefficients": [0.5, -1.25]}


def test_aliases_move_and_every_move_is_an_event(project, clock):
    register(project, alias="champion", reason="first model")
    register(project)
    clock.advance(60)
    project.set_alias("churn", "champion", 2, reason="better auc")
    project.set_alias("churn", "champion", 2, reason="no-op")  # already there: no event
    project.set_alias("churn", "challenger", 1)
    project.remove_alias("churn", "challenger", reason="done comparing")

    assert project.model_version("churn@champion").version == 2
    with pytest.raises(NotFoundError, match="no alias 'challenger'"):
        project.model_version("churn@challenger")

    history = project.model_history("churn")
    kinds = [(e.kind, e.payload.get("alias"), e.payload.get("version")) for e in history]
    assert kinds == [
        ("version_registered", None, 1), ("alias_set", "champion", 1),
        ("version_registered", None, 2), ("alias_set", "champion", 2),
        ("alias_set", "challenger", 1), ("alias_removed", "challenger", None),
    ]
    moved = history[3]
    assert moved.payload["previous_version"] == 1
    assert (moved.actor, moved.reason, moved.at) == ("tester", "better auc", 1_700_000_060.0)
    models = project.list_models()
    assert [(m.name, m.latest_version, m.aliases) for m in models] == [
        ("churn", 2, {"champion": 2})]


def test_status_changes_are_recorded_and_guard_aliases(project):
    register(project)
    register(project)
    project.set_status("churn", 2, "vetoed", reason="worse on the holiday slice")
    with pytest.raises(ConflictError, match="vetoed"):
        project.set_alias("churn", "champion", 2)
    project.set_alias("churn", "champion", 2, force=True, reason="override")
    assert project.model_version("churn@champion").status == "vetoed"
    event = project.model_history("churn")[-2]
    assert event.kind == "status_changed"
    assert event.payload == {"model": "churn", "version": 2, "from": "registered",
                             "to": "vetoed"}
    with pytest.raises(ValidationError, match="unknown status"):
        project.set_status("churn", 1, "gold")


def test_unknown_models_versions_and_runs(project):
    with pytest.raises(NotFoundError, match="no registered model named 'ghost'"):
        project.model_version("ghost")
    register(project)
    with pytest.raises(NotFoundError, match="has no version 7"):
        project.set_alias("churn", "champion", 7)
    with pytest.raises(NotFoundError, match="no run"):
        register(project, run_id="0" * 32)


@pytest.mark.parametrize("ref", ["", "a:b", "a@B", "a@1x!", "../etc", "a:1:2", "a@b@c"])
def test_bad_references_are_refused(ref):
    with pytest.raises(ValidationError):
        parse_ref(ref)


def test_reference_forms():
    assert parse_ref("m") == ("m", None, None)
    assert parse_ref("m:3") == ("m", 3, None)
    assert parse_ref("m:latest") == ("m", None, None)
    assert parse_ref("m@champion") == ("m", None, "champion")


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 129])
def test_bad_model_names_are_refused(project, name):
    with pytest.raises(ValidationError, match="invalid model name"):
        register(project, name=name)


def test_latest_is_not_an_alias(project):
    register(project)
    with pytest.raises(ValidationError, match="reserved"):
        project.set_alias("churn", "latest", 1)


def test_vetoing_a_version_an_alias_serves_needs_force(project):
    register(project, alias="champion")
    with pytest.raises(ConflictError, match="still @champion"):
        project.set_status("churn", 1, "vetoed", reason="bad on holidays")
    assert project.model_version("churn:1").status == "registered"
    forced = project.set_status("churn", 1, "vetoed", reason="known", force=True)
    assert forced.status == "vetoed"
    project.set_status("churn", 1, "blessed")  # statuses that serve need no force


def test_non_finite_and_numpy_metrics_register_on_every_backend(project):
    import numpy as np

    version = register(project, metrics={"f1": float("nan"), "auc": np.float32(0.75),
                                         "n": np.int64(3), "per_slice": {"a": float("inf")}})
    assert version.metrics == {"f1": "nan", "auc": 0.75, "n": 3, "per_slice": {"a": "inf"}}
    with pytest.raises(ValidationError, match="JSON values"):
        register(project, metrics={"model": object()})


def test_a_failed_registration_leaves_nothing_behind(project):
    with pytest.raises(ValidationError, match="invalid alias"):
        register(project, alias="Champion")
    with pytest.raises(NotFoundError):
        register(project, run_id="0" * 32)
    assert project.list_models() == []
