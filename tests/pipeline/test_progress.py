"""Progress on the terminal: drawn on a rich console that is a terminal, silent otherwise."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from pipeline_steps import combine, explode, load, scale, total
from rich.console import Console

import tidal
from tidal.pipeline import Pipeline, StepFailedError, run_pipeline
from tidal.pipeline.progress import MAX_LINES, PipelineProgress


def fan_out(path: str) -> None:
    values = load(tidal.File(path))
    combine([total(scale(values, factor=float(i))) for i in range(3)])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "numbers.txt").write_text("1\n2\n3\n")
    with tidal.Project(tmp_path) as handle:
        yield handle


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=100)


def text(console: Console) -> str:
    """What the terminal shows in the end, without colours and cursor moves."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())  # type: ignore[attr-defined]


def test_the_run_names_every_step_and_the_counts(project):
    console = terminal()
    result = run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project,
                          executor="inline", progress=console)
    shown = text(console)
    for label in result.steps:  # load, scale, scale#2, scale#3, total..., combine
        assert re.search(rf"✓ {re.escape(label)} ran", shown), label
    assert "fan_out: 8 steps, 8 ran, 0 cached" in shown

    console = terminal()
    run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project, executor="inline",
                 progress=console)
    shown = text(console)
    assert all(f"• {label} cached" in shown for label in result.steps)
    assert "fan_out: 8 steps, 0 ran, 8 cached" in shown


def test_a_failure_is_shown_with_what_was_not_run(project):
    def broken(path: str) -> None:
        values = load(tidal.File(path))
        total(scale(explode(values)))

    console = terminal()
    with pytest.raises(StepFailedError):
        run_pipeline(Pipeline.build(broken, "numbers.txt"), project=project,
                     executor="inline", progress=console)
    shown = text(console)
    assert "✗ explode failed" in shown
    assert "broken: 4 steps, 1 ran, 0 cached, 1 failed, 2 not run" in shown


def test_no_terminal_no_progress(project, monkeypatch, capsys):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert not PipelineProgress("p", 3).enabled
    assert PipelineProgress("p", 3, enabled=True).enabled
    assert not PipelineProgress("p", 3, enabled=False).enabled
    run_pipeline(Pipeline.build(fan_out, "numbers.txt"), project=project, executor="inline")
    assert sys.stderr.getvalue() == ""


def test_a_large_fan_out_shows_the_bar_and_the_running_steps_not_a_line_each():
    console = terminal()
    progress = PipelineProgress("segments", MAX_LINES + 1, enabled=console)
    progress.start()
    for i in range(MAX_LINES + 1):
        progress.started(f"fit#{i}")
    running = progress._running_text().plain
    assert running.startswith("  running: fit#0") and f"and {MAX_LINES - 3} more" in running
    for i in range(MAX_LINES):
        progress.finished(f"fit#{i}", "FINISHED", 0.01)
    progress.finished(f"fit#{MAX_LINES}", "FAILED", 0.01)
    progress.stop()
    shown = text(console)
    assert "✓ fit#0 ran" not in shown and f"✗ fit#{MAX_LINES} failed" in shown
    assert f"segments: {MAX_LINES + 1} steps, {MAX_LINES} ran, 0 cached, 1 failed" in shown
