"""The pipeline engine: caching by code, parameters and inputs; lineage; failures;
the inline and process executors. Real projects on SQLite, real files, real processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_steps import (
    explode,
    fan_out_pipeline,
    fresh,
    load,
    numbers_pipeline,
    scale,
    total,
)

import tidal
from tidal.core.errors import ValidationError
from tidal.pipeline import Pipeline, StepFailedError, run_pipeline


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "numbers.txt").write_text("1\n2\n3\n")
    return tmp_path


@pytest.fixture
def project(folder: Path):
    with tidal.Project(folder) as handle:
        yield handle


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    ran = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return ran


def test_a_second_run_takes_everything_from_the_cache(folder, project):
    first = run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                         executor="inline")
    assert first.output("total") == 12.0
    assert first.executed == ["load", "scale", "total"] and calls(folder) == first.executed
    again = run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                         executor="inline")
    assert again.cached == ["load", "scale", "total"] and calls(folder) == []
    assert again.output("total") == 12.0


def test_changing_a_parameter_reruns_only_what_depends_on_it(folder, project):
    run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                 executor="inline")
    calls(folder)
    changed = run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt", factor=3.0),
                           project=project, executor="inline")
    assert changed.cached == ["load"] and changed.executed == ["scale", "total"]
    assert changed.output("total") == 18.0


def test_editing_the_data_file_invalidates_the_steps_that_read_it(folder, project):
    run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                 executor="inline")
    (folder / "numbers.txt").write_text("1\n2\n3\n4\n")
    edited = run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                          executor="inline")
    assert edited.executed == ["load", "scale", "total"] and edited.output("total") == 20.0


def test_parameters_that_differ_have_different_keys():
    """A step gets the parameter itself: values that print alike must not share outputs."""
    from tidal.pipeline.keys import fingerprint

    pairs = [(float("inf"), "inf"), (float("nan"), "nan"), (float("-inf"), "-inf"),
             ((1, 2), [1, 2]), ({"a": (1,)}, {"a": [1]})]
    for one, other in pairs:
        assert fingerprint(one, "p") != fingerprint(other, "p"), (one, other)
    assert fingerprint((1, [2.5, float("inf")]), "p") == fingerprint((1, [2.5, float("inf")]),
                                                                     "p")


def test_a_change_of_code_changes_the_key():
    def before(x):
        return x + 1

    def after(x):
        return x + 2

    assert tidal.step(before).code_hash != tidal.step(after).code_hash
    assert tidal.step(version="2")(before).code_hash != tidal.step(before).code_hash


def test_a_failing_step_fails_the_run_and_keeps_finished_steps(folder, project):
    def broken(path: str) -> None:
        values = load(tidal.File(path))
        total(values)
        explode(values)

    with pytest.raises(StepFailedError, match="step 'explode' failed: ValueError: cannot "
                                              "handle 3 values") as failed:
        run_pipeline(Pipeline.build(broken, "numbers.txt"), project=project, executor="inline")
    assert "Traceback" in failed.value.trace
    calls(folder)
    recorded = project.lineage.list_pipeline_runs(limit=1)[0]
    assert recorded.status == "FAILED"

    def fixed(path: str) -> None:
        values = load(tidal.File(path))
        total(values)
        explode(values, fail=False)

    result = run_pipeline(Pipeline.build(fixed, "numbers.txt"), project=project,
                          executor="inline")
    assert result.cached == ["load", "total"] and result.executed == ["explode"]
    assert result.output("explode") == 3.0


def test_steps_after_a_failure_do_not_start(folder, project):
    def broken(path: str) -> None:
        total(scale(explode(load(tidal.File(path)))))

    with pytest.raises(StepFailedError):
        run_pipeline(Pipeline.build(broken, "numbers.txt"), project=project, executor="inline")
    assert calls(folder) == ["load", "explode"]


def test_the_process_executor_fans_out_and_gives_the_same_answers(folder, project):
    fan_out = fan_out_pipeline
    result = run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project,
                          executor="process", max_workers=2)
    assert result.output("combine") == sum(6.0 * i for i in range(6))
    pids = {result.output(label) for label in result.steps if label.startswith("where")}
    assert len(pids) >= 1 and all(pid != __import__("os").getpid() for pid in pids)
    inline = run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project,
                          executor="inline")
    assert inline.executed == [] and inline.output("combine") == result.output("combine")


def test_uncached_steps_and_lost_outputs_run_again(folder, project):
    def counting(path: str) -> None:
        fresh(load(tidal.File(path)))

    run_pipeline(Pipeline.build(counting, "numbers.txt"), project=project, executor="inline")
    second = run_pipeline(Pipeline.build(counting, "numbers.txt"), project=project,
                          executor="inline")
    assert second.cached == ["load"] and second.executed == ["fresh"]
    # an output deleted from the artifact store is recomputed, not trusted
    sha = second.steps["load"].output_sha256
    Path(project.artifacts.path_of(sha)).unlink()
    third = run_pipeline(Pipeline.build(counting, "numbers.txt"), project=project,
                         executor="inline")
    assert "load" in third.executed


def test_lineage_walks_back_from_an_output_to_the_data_file(folder, project):
    result = run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                          executor="inline")
    chain = project.lineage.lineage(result.steps["total"].output_sha256)
    assert [step.step for step in chain] == ["load", "scale", "total"]
    loaded = chain[0]
    assert loaded.params["path"]["__file__"] == "numbers.txt"
    assert len(loaded.params["path"]["sha256"]) == 64


def test_bad_definitions_are_clear_errors(folder, project):
    def with_frame() -> None:
        total(object())

    with pytest.raises(ValidationError, match="total.values: a object cannot be a step "
                                              "parameter"):
        run_pipeline(Pipeline.build(with_frame), project=project, executor="inline")
    with pytest.raises(ValidationError, match="step 'scale'"):
        Pipeline.build(lambda: scale(1, 2, 3))
    with pytest.raises(ValidationError, match="calls no step"):
        Pipeline.build(lambda: None)
    with pytest.raises(ValidationError, match="unknown executor"):
        run_pipeline(Pipeline.build(numbers_pipeline, "numbers.txt"), project=project,
                     executor="spark")


def test_a_step_outside_a_pipeline_is_the_plain_function(folder):
    assert scale([1.0, 2.0], factor=3.0) == [3.0, 6.0]
