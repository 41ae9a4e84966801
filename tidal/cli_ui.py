"""``tidal ui``: the dashboard over the project's store, on 127.0.0.1 unless told."""

from __future__ import annotations

from typing import Annotated

import typer

from tidal import display
from tidal.cli_options import ProjectOption, open_project
from tidal.core.errors import TidalError

DEFAULT_PORT = 8090


def ui(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(
        "--host", help="Interface to bind (default 127.0.0.1: only this machine).")
    ] = "127.0.0.1",
    project: ProjectOption = None,
) -> None:
    """Serve the dashboard: deployments, events (more pages to come)."""
    try:
        import jinja2  # noqa: F401
        import uvicorn
    except ImportError:
        raise TidalError("the dashboard needs the ui extra: pip install "
                         "'tidal-ml[ui]'") from None
    from tidal.ui.app import create_ui

    with open_project(project) as handle:
        display.console.print(f"the dashboard of {handle.settings.project_dir} on "
                              f"http://{host}:{port}; Ctrl-C to stop", highlight=False)
        uvicorn.run(create_ui(handle), host=host, port=port, access_log=False,
                    log_level="warning")
