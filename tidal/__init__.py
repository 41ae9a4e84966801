"""Tidal: take a tabular ML model from a notebook into production and keep it healthy.

``import tidal`` is cheap: the store, artifact and model code load on first use.

    import tidal
    with tidal.start_run("elec2", params={"model": "hgb"}) as run:
        run.log_metrics({"accuracy": 0.85})
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tidal.core.errors import TidalError
    from tidal.project import Project
    from tidal.run import ActiveRun

_LAZY = {
    "Project": ("tidal.project", "Project"),
    "ActiveRun": ("tidal.run", "ActiveRun"),
    "active_run": ("tidal.run", "active_run"),
    "TidalError": ("tidal.core.errors", "TidalError"),
    "ManualClock": ("tidal.core.clock", "ManualClock"),
    "step": ("tidal.pipeline.step", "step"),
    "Pipeline": ("tidal.pipeline.graph", "Pipeline"),
    "File": ("tidal.pipeline.keys", "File"),
    "run_pipeline": ("tidal.pipeline.runner", "run_pipeline"),
}
_default_project: Project | None = None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'tidal' has no attribute {name!r}")


def get_project() -> Project:
    """The project of the current folder (tidal.toml and TIDAL_* variables), opened once."""
    global _default_project
    if _default_project is None:
        from tidal.project import Project

        _default_project = Project()
    return _default_project


def set_project(project: Project | None) -> None:
    """Make ``project`` the one the module-level functions use (None: back to default)."""
    global _default_project
    _default_project = project


def start_run(experiment: str = "default", **options: Any) -> ActiveRun:
    """Start a run in the current project and make it the active run.

    Use it in a ``with`` block, or call ``run.end()`` (open runs are ended at exit).
    See :meth:`tidal.Project.start_run`.
    """
    return get_project().start_run(experiment, **options).activate()


def _current() -> ActiveRun:
    from tidal.core.errors import TidalError
    from tidal.run import active_run

    run = active_run()
    if run is None:
        raise TidalError("no active run: use `with tidal.start_run(...):` first")
    return run


def log_params(params: dict[str, Any]) -> None:
    """Log params to the active run."""
    _current().log_params(params)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Log metric points to the active run."""
    _current().log_metrics(metrics, step=step)


def set_tags(tags: dict[str, Any]) -> None:
    """Set tags on the active run."""
    _current().set_tags(tags)


__all__ = [
    "ActiveRun", "ManualClock", "Project", "TidalError", "active_run", "get_project",
    "log_metrics", "log_params", "set_project", "set_tags", "start_run",
]
