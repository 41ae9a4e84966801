"""How runs end: normally, by exception, by sys.exit, by a crash, by SIGTERM.

The process cases run real Python processes against a real store: what they logged must
be there afterwards, and each run's status must say how it ended.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tidal
from tidal.core.errors import ValidationError
from tidal.project import Project

PRELUDE = textwrap.dedent(
    """
    import sys, time, tidal  # noqa
    project = tidal.Project(sys.argv[1])
    tidal.set_project(project)
    """
)


def run_script(folder: Path, body: str, wait: bool = True) -> subprocess.Popen[str]:
    script = folder / "job.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    process = subprocess.Popen([sys.executable, str(script), str(folder)], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        process.communicate(timeout=120)
    return process


def only_run(folder: Path):
    project = Project(folder)
    (run,) = project.search_runs()
    return project, run


def test_sys_exit_zero_inside_a_run_is_a_normal_end(tmp_path: Path):
    run_script(tmp_path, """
        with project.start_run() as run:
            run.log_metric("m", 1.0)
            sys.exit(0)
    """)
    _, run = only_run(tmp_path)
    assert (run.status, run.metric("m")) == ("FINISHED", 1.0)


def test_a_crash_outside_a_with_block_ends_the_open_run_as_failed(tmp_path: Path):
    process = run_script(tmp_path, """
        run = tidal.start_run()
        tidal.log_metrics({"loss": 0.5})   # start_run made it the active run
        raise RuntimeError("boom")
    """)
    assert process.returncode == 1
    _, run = only_run(tmp_path)
    assert (run.status, run.metric("loss")) == ("FAILED", 0.5)


def test_an_open_run_at_a_clean_exit_is_finished_with_its_data(tmp_path: Path):
    run_script(tmp_path, """
        run = project.start_run()
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1))
    """)
    project, run = only_run(tmp_path)
    assert run.status == "FINISHED"
    assert len(project.tracking.metric_history(run.id, "loss")) == 50


def test_sigterm_writes_what_was_buffered_and_marks_the_run_killed(tmp_path: Path):
    process = run_script(tmp_path, """
        with project.start_run() as run:
            for step in range(100):
                run.log_metric("loss", float(step), step=step)
            print("ready", flush=True)
            time.sleep(60)
    """, wait=False)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    project, run = only_run(tmp_path)
    assert run.status == "KILLED"
    assert len(project.tracking.metric_history(run.id, "loss")) == 100


def test_when_the_final_write_fails_the_run_still_ends(sqlite_project):
    run = sqlite_project.start_run()
    run.log_metric("m", 1.0)
    run._params["bad"] = "x" * 10  # bypass the handle's checks: the store must refuse
    sqlite_project.tracking.log_batch(run.id, params={"bad": "y"})
    with pytest.raises(Exception, match="write-once"):
        run.end()
    assert sqlite_project.get_run(run.id).status == "FAILED"


@pytest.mark.parametrize("step", [2**63, -(2**63) - 1, 1.5, float("nan")])
def test_steps_must_fit_in_64_bits(sqlite_project, step):
    with sqlite_project.start_run() as run:
        with pytest.raises(ValidationError, match="step"):
            run.log_metric("m", 1.0, step=step)


def test_timestamps_and_values_are_checked_at_the_call(sqlite_project):
    with sqlite_project.start_run() as run:
        with pytest.raises(ValidationError, match="timestamp"):
            run.log_metric("m", 1.0, timestamp=float("nan"))
        with pytest.raises(ValidationError, match="NUL"):
            run.set_tag("t", "a\x00b")
        with pytest.raises(ValidationError, match="NUL"):
            run.log_param("p", "a\x00b")
    with pytest.raises(ValidationError, match="run name"):
        sqlite_project.start_run(name="n" * 257)


def test_module_level_start_run_is_active_without_with(sqlite_project):
    tidal.set_project(sqlite_project)
    try:
        run = tidal.start_run()
        tidal.log_metrics({"m": 2.0})
        run.end()
        assert tidal.active_run() is None
        assert sqlite_project.get_run(run.id).metric("m") == 2.0
    finally:
        tidal.set_project(None)


def test_time_based_flush_makes_points_visible_while_the_run_goes_on(sqlite_project):
    from tidal import run as run_module

    with sqlite_project.start_run() as run:
        run.log_metric("m", 1.0)
        run._last_flush -= run_module.FLUSH_SECONDS + 1  # as if 6 s had passed
        run.log_metric("m", 2.0)
        assert len(sqlite_project.tracking.metric_history(run.id, "m")) == 2
