"""Pipeline runs, step runs, the step cache and lineage, on both backends."""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import inspect

from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.core.hashing import sha256_bytes
from tidal.project import Project
from tidal.store import migrate
from tidal.store.database import HEAD_REVISION, WRITE_OPTION


def h(text: str) -> str:
    return sha256_bytes(text.encode())


def start(project, name="train", params=None, run_id=None):
    return project.lineage.start_pipeline_run(
        name, params=params if params is not None else {"seed": 7},
        code_commit="abc123", code_dirty_hash=None, actor="tester", run_id=run_id,
        now=project.clock.now(),
    )


def step(project, pipeline_run_id, name, *, inputs=(), output=None, key=None, cached=False,
         status="FINISHED", params=None, error=None, seconds=1.0):
    """Record a step that started now and took ``seconds`` (the clock moves on)."""
    started = project.clock.now()
    project.clock.advance(seconds)
    return project.lineage.record_step(
        pipeline_run_id, step=name, cache_key=key or h(f"key:{name}"), code_hash=h(name),
        params=params or {}, inputs=[{"name": n, "sha256": s} for n, s in inputs],
        output_sha256=output, output_size=None if output is None else 10, cached=cached,
        status=status, started_at=started, ended_at=project.clock.now(), error=error,
    )


def test_start_record_finish(project, clock):
    run = start(project, params={"lr": 0.1})
    assert (run.status, run.ended_at, run.duration, run.steps) == ("RUNNING", None, None, [])
    assert (run.name, run.actor, run.code_commit, run.params) == (
        "train", "tester", "abc123", {"lr": 0.1})
    load = step(project, run.id, "load", inputs=[("csv", h("csv"))], output=h("frame"),
                seconds=2.5)
    fit = step(project, run.id, "fit", inputs=[("frame", h("frame"))], output=h("model"))
    assert (load.duration, load.status, load.cached) == (2.5, "FINISHED", False)

    done = project.lineage.finish_pipeline_run(run.id, status="FINISHED", now=clock.now())
    assert (done.status, done.ended_at, done.duration) == ("FINISHED", clock.now(), 3.5)
    assert [s.id for s in done.steps] == [load.id, fit.id]
    assert done.steps[1].inputs == [{"name": "frame", "sha256": h("frame")}]
    json.dumps(done.to_dict())  # the CLI's --json output
    assert done.to_dict()["steps"][0]["step"] == "load"

    with pytest.raises(ConflictError, match="already FINISHED"):
        step(project, run.id, "late", output=h("late"))
    with pytest.raises(ConflictError, match="already FINISHED"):
        project.lineage.finish_pipeline_run(run.id, status="FAILED", now=clock.now())
    with pytest.raises(NotFoundError):
        step(project, "0" * 32, "orphan", output=h("x"))


def test_a_failed_pipeline_keeps_its_error_and_its_finished_steps(project, clock):
    run = start(project)
    ok = step(project, run.id, "load", output=h("frame"))
    step(project, run.id, "fit", inputs=[("frame", h("frame"))], status="FAILED",
         error="ValueError: y has NaN")
    failed = project.lineage.finish_pipeline_run(
        run.id, status="FAILED", error="step 'fit' failed: ValueError: y has NaN",
        now=clock.now())
    assert failed.status == "FAILED" and "y has NaN" in failed.error
    assert [(s.step, s.status, s.error) for s in failed.steps] == [
        ("load", "FINISHED", None), ("fit", "FAILED", "ValueError: y has NaN")]
    assert project.lineage.cached_output(ok.cache_key).id == ok.id


def test_cache_lookup_returns_the_newest_finished_output_and_ignores_failures(project):
    key = h("fit-key")
    assert project.lineage.cached_output(key) is None
    first_run = start(project)
    old = step(project, first_run.id, "fit", key=key, output=h("model-1"))
    newer = step(project, first_run.id, "fit", key=key, output=h("model-2"))
    step(project, first_run.id, "fit", key=key, status="FAILED", error="boom")
    step(project, first_run.id, "fit", key=key)  # finished without an output: unusable
    step(project, first_run.id, "other", key=h("other-key"), output=h("other"))
    hit = project.lineage.cached_output(key)
    assert hit.id == newer.id != old.id
    assert hit.output_sha256 == h("model-2")

    # a cache hit is itself recorded (FINISHED, cached) and may serve later lookups
    second_run = start(project)
    reused = step(project, second_run.id, "fit", key=key, output=hit.output_sha256,
                  cached=True, seconds=0.0)
    again = project.lineage.cached_output(key)
    assert (again.id, again.cached, again.output_sha256) == (reused.id, True, h("model-2"))


def diamond(project, cached=False):
    """source -> A -> (B, C) -> D, the four steps in one pipeline run."""
    run = start(project)
    a = step(project, run.id, "A", inputs=[("raw", h("source"))], output=h("a"), cached=cached)
    b = step(project, run.id, "B", inputs=[("x", h("a"))], output=h("b"), cached=cached)
    c = step(project, run.id, "C", inputs=[("x", h("a"))], output=h("c"), cached=cached)
    d = step(project, run.id, "D", inputs=[("left", h("b")), ("right", h("c"))],
             output=h("d"), cached=cached)
    project.lineage.finish_pipeline_run(run.id, status="FINISHED", now=project.clock.now())
    return run, [a, b, c, d]


def test_lineage_walks_a_diamond_once_in_dependency_order(project):
    _, steps = diamond(project)
    walked = project.lineage.lineage(h("d"))
    assert [s.id for s in walked] == [s.id for s in steps]  # A, B, C, D: A only once
    assert [s.step for s in project.lineage.lineage(h("b"))] == ["A", "B"]
    assert project.lineage.lineage(h("source")) == []  # a source: nobody produced it
    assert project.lineage.producers(h("source")) == []


def test_lineage_follows_the_newest_execution_and_stays_in_it(project):
    first, _ = diamond(project)
    second, cached = diamond(project, cached=True)
    # a producer of the same output in a third run, newer than everything in the second
    third = start(project)
    stray = step(project, third.id, "A-again", inputs=[("raw", h("other-source"))],
                 output=h("a"))

    producers = project.lineage.producers(h("a"))
    assert [p.pipeline_run_id for p in producers] == [third.id, second.id, first.id]
    assert producers[0].id == stray.id

    walked = project.lineage.lineage(h("d"))
    assert [s.id for s in walked] == [s.id for s in cached]
    assert {s.pipeline_run_id for s in walked} == {second.id}
    assert all(s.cached for s in walked)
    # starting from h("a") itself, the newest producer is the stray one
    assert [s.id for s in project.lineage.lineage(h("a"))] == [stray.id]


def test_lineage_survives_a_step_whose_output_is_its_input(project):
    run = start(project)
    load = step(project, run.id, "load", inputs=[("raw", h("src"))], output=h("frame"))
    same = step(project, run.id, "noop", inputs=[("frame", h("frame"))], output=h("frame"))
    # the newest producer of "frame" is the no-op, whose input is that same hash: the walk
    # stops there instead of looping (the earlier producer is still listed as one)
    assert [s.id for s in project.lineage.lineage(h("frame"))] == [same.id]
    assert [s.id for s in project.lineage.producers(h("frame"))] == [same.id, load.id]


def test_prefix_lookup_and_not_found(project):
    first = start(project)
    second = start(project)  # same millisecond: the ids share their first 12 characters
    assert project.lineage.get_pipeline_run(first.id[:16]).id == first.id
    assert project.lineage.get_pipeline_run(second.id).id == second.id
    with pytest.raises(ValidationError, match="several"):
        project.lineage.get_pipeline_run(first.id[:12])
    with pytest.raises(NotFoundError, match="starts with 'fff'"):
        project.lineage.get_pipeline_run("fff")
    with pytest.raises(NotFoundError):
        project.lineage.get_pipeline_run("f" * 32)
    for bad in ("", "XYZ", "g" * 5, "0" * 33):
        with pytest.raises(ValidationError):
            project.lineage.get_pipeline_run(bad)


def test_list_pipeline_runs_newest_first_by_name(project, clock):
    made = []
    for name in ("train", "score", "train"):
        made.append(start(project, name=name))
        clock.advance(1)
    step(project, made[2].id, "load", output=h("frame"))
    listed = project.lineage.list_pipeline_runs()
    assert [r.id for r in listed] == [r.id for r in reversed(made)]
    assert [len(r.steps) for r in listed] == [1, 0, 0]
    assert [r.id for r in project.lineage.list_pipeline_runs("train")] == [made[2].id,
                                                                          made[0].id]
    assert [r.id for r in project.lineage.list_pipeline_runs(limit=1)] == [made[2].id]
    assert project.lineage.list_pipeline_runs("nothing") == []


def test_params_and_inputs_round_trip_as_json(project):
    import numpy as np

    params = {"model": {"kind": "gbm", "depth": 6, "rates": [0.1, 0.01]}, "note": "é ✓",
              "flag": True, "none": None, "nan": float("nan"), "n": np.int64(3)}
    run = start(project, params=params)
    inputs = [("train frame", h("t")), ("schema", h("s"))]
    recorded = step(project, run.id, "fit", inputs=inputs, params=params, output=h("m"))
    expected = {**params, "nan": "nan", "n": 3}
    loaded = project.lineage.get_pipeline_run(run.id)
    assert loaded.params == expected
    assert loaded.steps[0].params == expected
    assert loaded.steps[0].inputs == [{"name": "train frame", "sha256": h("t")},
                                      {"name": "schema", "sha256": h("s")}]
    assert loaded.steps[0] == recorded
    assert json.loads(json.dumps(loaded.to_dict()))["params"] == expected


def test_bad_records_are_refused(project):
    run = start(project)
    with pytest.raises(ValidationError, match="cache_key"):
        step(project, run.id, "fit", key="not-a-hash")
    with pytest.raises(ValidationError, match="cached step run is FINISHED"):
        step(project, run.id, "fit", status="FAILED", cached=True)
    with pytest.raises(ValidationError, match="FINISHED or FAILED"):
        step(project, run.id, "fit", status="RUNNING")
    with pytest.raises(ValidationError, match="sha256"):
        step(project, run.id, "fit", inputs=[("x", "abc")])
    with pytest.raises(ValidationError, match="params"):
        start(project, params={"f": object()})
    with pytest.raises(ValidationError, match="run_id"):
        start(project, run_id="run-1")
    with pytest.raises(ValidationError, match="FINISHED or FAILED"):
        project.lineage.finish_pipeline_run(run.id, status="DONE", now=0.0)
    assert project.lineage.get_pipeline_run(run.id).steps == []


def test_upgrading_a_store_from_0001_keeps_its_runs_and_models(project, tmp_path, clock):
    # a store that an older Tidal (schema 0001) created and logged into
    migrate.upgrade(project.db, "0001")
    project.db._schema_ready = True  # noqa: SLF001 - act as the Tidal that knew only 0001
    with project.start_run("exp", params={"lr": 0.1}, tags={"team": "a"}) as run:
        run.log_metric("auc", 0.8)
        run.register_model("churn", {"w": 1}, metrics={"auc": 0.8})
    assert migrate.current_revision(project.db) == "0001"
    assert "pipeline_runs" not in inspect(project.db.engine).get_table_names()
    url = project.settings.store_url
    project.close()

    newer = Project(tmp_path, store_url=url, artifact_root=str(tmp_path / "artifacts"),
                    clock=clock, actor="tester")
    try:
        assert newer.lineage.list_pipeline_runs() == []  # first use upgrades the store
        assert migrate.current_revision(newer.db) == migrate.head_revision() == HEAD_REVISION
        kept = newer.get_run(run.id)
        assert (kept.params, kept.tags, kept.metric("auc")) == ({"lr": "0.1"}, {"team": "a"}, 0.8)
        assert newer.model_version("churn:1").run_id == run.id
        assert newer.load_model("churn:1") == {"w": 1}
        linked = start(newer, run_id=run.id)
        assert newer.lineage.get_pipeline_run(linked.id).run_id == run.id

        # and back down: 0002 drops only its own tables
        config = migrate.alembic_config()
        with newer.db.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
            with connection.begin():
                config.attributes["connection"] = connection
                command.downgrade(config, "0001")
        tables = set(inspect(newer.db.engine).get_table_names())
        assert not tables & {"pipeline_runs", "step_runs"}
        assert migrate.current_revision(newer.db) == "0001"
        assert newer.tracking.get_run(run.id).metric("auc") == 0.8
    finally:
        newer.close()
