"""The options and arguments every ``tidal`` sub-command module shares, spelled once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project folder (default: nearest with tidal.toml).",
                 envvar="TIDAL_PROJECT_DIR", show_envvar=False),
]
ReasonOption = Annotated[str | None, typer.Option("--reason", "-r", help="Why (recorded).")]
DeploymentArgument = Annotated[str, typer.Argument(help="Deployment name, e.g. elec2.")]


def command_group(**settings: Any) -> typer.Typer:
    """A Typer app whose help is plain text: help strings name tidal.toml's sections in
    brackets ("default: [serve] port"), which Rich markup would silently swallow."""
    return typer.Typer(rich_markup_mode=None, **settings)


def open_project(path: Path | None):  # -> Project (imported late: tidal.cli imports this)
    """The project at ``path`` (or found from here), as every command opens it."""
    from tidal.cli import _project

    return _project(path)
