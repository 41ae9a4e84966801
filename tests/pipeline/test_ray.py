"""The Ray executor: the same jobs as Ray tasks on a real local Ray instance (2 CPUs).

Ray is an optional extra (``pip install 'tidal-ml[ray]'``): without it the Ray tests skip,
and the tests that Ray stays unimported and that asking for it says how to install it run
either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_steps import fan_out_pipeline, load, total

import tidal
from tidal.core.errors import ValidationError
from tidal.pipeline import Pipeline, StepFailedError, run_pipeline
from tidal.pipeline.executors import make_executor

STEPS_DIR = Path(__file__).parent  # where pipeline_steps lives: Ray workers import it


fan_out = fan_out_pipeline


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory):
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed (optional extra: pip install 'tidal-ml[ray]')")
    # workers inherit the environment and working folder of the moment Ray starts
    saved_path, saved_cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STEPS_DIR), saved_path]))
    os.chdir(tmp_path_factory.mktemp("ray_workers"))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        os.chdir(saved_cwd)
        if saved_path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved_path
    yield ray
    ray.shutdown()


def make_project(folder: Path) -> tidal.Project:
    folder.mkdir()
    (folder / "numbers.txt").write_text("1\n2\n3\n")
    return tidal.Project(folder)


def test_the_ray_executor_gives_the_inline_answers_and_caches(ray_instance, tmp_path,
                                                              monkeypatch):
    with make_project(tmp_path / "inline") as project:
        monkeypatch.chdir(tmp_path / "inline")
        inline = run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project,
                              executor="inline", progress=False)
        expected = {label: inline.output(label) for label in inline.steps
                    if not label.startswith("where")}

    with make_project(tmp_path / "ray") as project:
        monkeypatch.chdir(tmp_path / "ray")
        first = run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project,
                             executor="ray", max_workers=2, progress=False)
        assert sorted(first.executed) == sorted(inline.steps) and first.cached == []
        assert {label: first.output(label) for label in expected} == expected
        assert first.output("combine") == sum(6.0 * i for i in range(6))
        pids = {first.output(label) for label in first.steps if label.startswith("where")}
        assert os.getpid() not in pids  # the steps ran in Ray's worker processes

        again = run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project,
                             executor="ray", progress=False)
        assert again.executed == [] and sorted(again.cached) == sorted(first.steps)
        assert again.output("combine") == first.output("combine")


def test_a_failing_ray_task_fails_the_run(ray_instance, tmp_path, monkeypatch):
    from pipeline_steps import explode

    def broken(path: str) -> None:
        values = load(tidal.File(path))
        total(values)
        explode(values)

    with make_project(tmp_path / "p") as project:
        monkeypatch.chdir(tmp_path / "p")
        with pytest.raises(StepFailedError, match="step 'explode' failed: ValueError"):
            run_pipeline(Pipeline.build(broken, "numbers.txt"), project=project,
                         executor="ray", progress=False)
        assert project.lineage.list_pipeline_runs(limit=1)[0].status == "FAILED"


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ValidationError, match=r"pip install 'tidal-ml\[ray\]'"):
        make_executor("ray")


def test_ray_is_imported_only_when_asked_for():
    code = (
        "import json, sys, tidal\n"
        "from tidal.pipeline.executors import make_executor\n"
        "make_executor('process', 1).shutdown()\n"
        "make_executor('inline').shutdown()\n"
        "print(json.dumps('ray' in sys.modules))"
    )
    assert json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)) is False
