"""Experiment tracking on both backends: what is logged is what is read back."""

from __future__ import annotations

import math

import pytest

import tidal
from tidal.core.errors import ConflictError, NotFoundError, TidalError, ValidationError


def test_a_run_keeps_params_metrics_tags_and_code_info(project, clock):
    with project.start_run("elec2", name="first", params={"lr": 0.1},
                           tags={"team": "pricing"}) as run:
        run.log_params({"model": "hgb", "max_iter": 200})
        clock.advance(5)
        run.log_metrics({"accuracy": 0.81, "auc": 0.9})
        run.set_tag("stage", "dev")
        clock.advance(1)

    record = project.get_run(run.id)
    assert record.experiment == "elec2"
    assert record.name == "first"
    assert record.status == "FINISHED"
    assert record.params == {"lr": "0.1", "model": "hgb", "max_iter": "200"}
    assert record.metric("accuracy") == pytest.approx(0.81)
    assert record.tags == {"team": "pricing", "stage": "dev"}
    assert record.start_time == 1_700_000_000.0
    assert record.duration == pytest.approx(6.0)
    assert record.actor == "tester"
    assert record.python_version and "sqlalchemy" in record.packages


def test_metric_history_keeps_every_point_and_latest_is_highest_step(project):
    with project.start_run() as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("loss", 99.0, step=2)  # a late point for an old step
    history = project.tracking.metric_history(run.id, "loss")
    assert [p.step for p in history] == [0, 1, 2, 2, 3, 4]
    assert project.get_run(run.id).metric("loss") == pytest.approx(0.2)


def test_steps_count_up_per_key_when_not_given(project):
    with project.start_run() as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
        run.log_metric("acc", 0.5)
    steps = [p.step for p in project.tracking.metric_history(run.id, "loss")]
    assert steps == [0, 1, 2]
    assert project.get_run(run.id).metrics["acc"].step == 0


def test_nan_and_infinity_survive_the_round_trip(project):
    with project.start_run() as run:
        run.log_metrics({"nan": float("nan"), "inf": float("inf"), "neg": -float("inf")})
    record = project.get_run(run.id)
    assert math.isnan(record.metric("nan"))
    assert record.metric("inf") == float("inf")
    assert record.metric("neg") == -float("inf")


def test_100k_points_are_all_stored(project):
    with project.start_run() as run:
        for step in range(100_000):
            run.log_metric("loss", float(step), step=step)
    history = project.tracking.metric_history(run.id, "loss")
    assert len(history) == 100_000
    assert history[-1].value == 99_999.0
    assert project.get_run(run.id).metrics["loss"].step == 99_999


def test_params_are_write_once(project):
    with project.start_run() as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(ConflictError, match="write-once"):
            run.log_param("lr", 0.2)
        run.flush()
    # the repository refuses too, even when the handle is bypassed
    with pytest.raises(ConflictError, match="already '0.1'"):
        project.tracking.log_batch(run.id, params={"lr": "0.3"})
    assert project.get_run(run.id).params == {"lr": "0.1"}


def test_an_exception_marks_the_run_failed_and_keeps_what_was_logged(project):
    with pytest.raises(RuntimeError):
        with project.start_run() as run:
            run.log_metric("loss", 0.5)
            raise RuntimeError("boom")
    record = project.get_run(run.id)
    assert record.status == "FAILED"
    assert record.metric("loss") == 0.5


def test_an_ended_run_refuses_more_logging(project):
    run = project.start_run()
    run.end()
    with pytest.raises(TidalError, match="has ended"):
        run.log_metric("x", 1.0)


@pytest.mark.parametrize("bad", ["", " lead", "a" * 251, "semi;colon", "new\nline", 3])
def test_bad_keys_are_refused_at_the_call(project, bad):
    with project.start_run() as run:
        with pytest.raises(ValidationError, match="invalid metric key"):
            run.log_metric(bad, 1.0)


@pytest.mark.parametrize("bad", ["0.5", None, True, [1]])
def test_non_numeric_metric_values_are_refused(project, bad):
    with project.start_run() as run:
        with pytest.raises(ValidationError, match="must be a number"):
            run.log_metric("x", bad)


def test_writing_to_an_unknown_run_is_not_found(project):
    with pytest.raises(NotFoundError):
        project.tracking.log_batch("0" * 32, params={"a": 1})
    with pytest.raises(NotFoundError):
        project.tracking.end_run("0" * 32, "FINISHED", 0.0)


def test_runs_found_by_unique_prefix(project):
    with project.start_run() as run:
        pass
    assert project.get_run(run.id[:10]).id == run.id
    with pytest.raises(NotFoundError):
        project.get_run("ffffffffff")
    with pytest.raises(ValidationError):
        project.get_run("not-hex!")


def test_artifacts_are_listed_with_their_hash(project):
    with project.start_run() as run:
        digest = run.log_dict({"threshold": 0.5}, "config/settings.json")
    record = project.get_run(run.id)
    assert [(a.name, a.sha256) for a in record.artifacts] == [("config/settings.json", digest)]
    assert b'"threshold": 0.5' in project.artifacts.get_bytes(digest)


def test_module_level_api_uses_the_active_run(project):
    tidal.set_project(project)
    try:
        with tidal.start_run("module") as run:
            tidal.log_params({"a": 1})
            tidal.log_metrics({"m": 2.0})
            tidal.set_tags({"t": "x"})
        record = project.get_run(run.id)
        assert (record.params, record.metric("m"), record.tags) == ({"a": "1"}, 2.0, {"t": "x"})
        with pytest.raises(TidalError, match="no active run"):
            tidal.log_metrics({"m": 1.0})
    finally:
        tidal.set_project(None)


def test_an_experiment_name_with_a_nul_is_refused_on_every_backend(project):
    with pytest.raises(ValidationError, match="printable"), \
            project.start_run("exp\u0000eriment"):
        pass


def test_a_value_the_database_refuses_is_a_validation_error_not_a_driver_error(
        tmp_path, postgres_url):
    """A last line of defence: what slips past the checks and PostgreSQL refuses as data
    (class 22: too long, NUL, division by zero…) reaches users as a ValidationError.
    PostgreSQL only: SQLite takes all of these."""
    from sqlalchemy import text

    with tidal.Project(tmp_path, store_url=postgres_url) as project:
        with pytest.raises(ValidationError, match="the metadata store refused a value"):
            project.db.transact(lambda session: session.execute(text("SELECT 1 / 0")))
