"""Progress of a pipeline run on the terminal: one bar for the steps, and what is running.

The runner reports each step as it starts and as it ends (ran, cached or failed). On a
terminal this draws one overall bar "steps done/total" with the steps running now under
it, prints a line per finished step above it (for pipelines of up to ``MAX_LINES``
steps; a fan-out over thousands of segments only shows the bar and its failures), and
ends with a summary of the counts. When stderr is not a terminal (CI logs, pipes,
notebooks' captured output) nothing is drawn; ``run_pipeline(progress=...)`` forces it
on (``True``), off (``False``), or onto a given rich ``Console``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

MAX_LINES = 100  # pipelines with more steps print no line per step, only the bar
SHOWN_RUNNING = 4  # running steps named under the bar; the rest are counted

_DONE = {"FINISHED": ("[green]✓[/]", "ran"), "CACHED": ("[dim]•[/]", "cached"),
         "FAILED": ("[red]✗[/]", "failed")}


class PipelineProgress:
    """Draws a run's progress; every method is a no-op when it is disabled."""

    def __init__(self, name: str, total: int, *,
                 enabled: bool | Console | None = None) -> None:
        self.name, self.total = name, total
        self.counts: Counter[str] = Counter()
        self.running: dict[str, float] = {}  # label -> when it started
        self._console: Any = None
        self._bar: Any = None
        self._task: Any = None
        self._started = time.perf_counter()
        if enabled is False:
            return
        if enabled is None or enabled is True:
            from rich.console import Console

            console = Console(stderr=True)
            if enabled is None and not (console.is_terminal and not console.is_dumb_terminal):
                return
            self._console = console
        else:
            self._console = enabled

    @property
    def enabled(self) -> bool:
        return self._console is not None

    def start(self) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        class _Bar(Progress):
            def get_renderables(bar) -> Any:  # noqa: N805 - `self` is the outer object
                yield from super().get_renderables()
                if self.running:
                    yield self._running_text()

        self._started = time.perf_counter()
        self._bar = _Bar("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                         "steps", TimeElapsedColumn(), console=self._console,
                         transient=True)
        self._task = self._bar.add_task(self.name, total=self.total)
        self._bar.start()

    def started(self, label: str) -> None:
        """A step was handed to the executor."""
        self.running[label] = time.perf_counter()
        if self._bar is not None:
            self._bar.refresh()

    def finished(self, label: str, status: str, seconds: float | None = None) -> None:
        """A step ended: ``FINISHED`` (ran), ``CACHED`` or ``FAILED``."""
        began = self.running.pop(label, None)
        self.counts[status] += 1
        if self._bar is None:
            return
        self._bar.advance(self._task)
        if seconds is None and began is not None:
            seconds = time.perf_counter() - began
        if self.total <= MAX_LINES or status == "FAILED":
            mark, word = _DONE.get(status, ("?", status.lower()))
            took = f" [dim]{seconds:.2f}s[/]" if seconds and status != "CACHED" else ""
            self._bar.console.print(f"{mark} {label} [dim]{word}[/]{took}", highlight=False)

    def stop(self) -> None:
        """The run is over (finished, failed or interrupted): print the summary."""
        if self._bar is None:
            return
        self._bar.stop()
        self._bar = None
        self._console.print(self.summary(), highlight=False)

    def summary(self) -> str:
        ran, cached = self.counts["FINISHED"], self.counts["CACHED"]
        failed = self.counts["FAILED"]
        parts = [f"{ran} ran", f"{cached} cached"]
        if failed:
            parts.append(f"[red]{failed} failed[/]")
        left = self.total - ran - cached - failed
        if left:
            parts.append(f"{left} not run")
        mark = "[red]✗[/]" if failed or left else "[green]✓[/]"
        took = time.perf_counter() - self._started
        return (f"{mark} [bold]{self.name}[/]: {self.total} steps, {', '.join(parts)} "
                f"[dim]in {took:.1f}s[/]")

    def _running_text(self) -> Any:
        from rich.text import Text

        now = time.perf_counter()
        oldest = sorted(self.running.items(), key=lambda item: item[1])
        named = [label if now - began < 1 else f"{label} ({now - began:.0f}s)"
                 for label, began in oldest[:SHOWN_RUNNING]]
        more = len(oldest) - len(named)
        return Text("  running: " + ", ".join(named) + (f" and {more} more" if more else ""),
                    style="dim")
