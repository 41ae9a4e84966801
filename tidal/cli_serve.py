"""``tidal serve``: the model server for the project's deployments (uvicorn + uvloop).

The server runs in uvicorn's worker processes, which build the app from the environment
(``TIDAL_PROJECT_DIR``); with several workers, Prometheus' multiprocess mode gets a fresh
folder so ``/metrics`` adds up every worker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from tidal import display
from tidal.cli_options import ProjectOption, command_group, open_project
from tidal.core.errors import NotFoundError, TidalError, ValidationError

DURABILITY = ("acknowledged", "async")


def serve(
    port: Annotated[int | None, typer.Option(
        "--port", min=1, max=65535, help="TCP port (default: [serve] port, 8080).")] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="Interface to bind (default 127.0.0.1: only this machine; "
        "0.0.0.0 to accept others).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Server processes "
                                                "(default: [serve] workers, 1).")] = None,
    durability: Annotated[str | None, typer.Option(
        "--durability", help="acknowledged (respond once logged to disk) or async.")] = None,
    project: ProjectOption = None,
) -> None:
    """Serve the project's deployments (Open Inference Protocol v2 and JSON records)."""
    try:
        import uvicorn
    except ImportError:
        raise TidalError("the server needs the serve extra: pip install "
                         "'tidal-ml[serve]'") from None
    if durability is not None and durability not in DURABILITY:
        raise ValidationError(f"--durability must be one of {', '.join(DURABILITY)}")
    handle = open_project(project)  # a typo'd folder is refused, not served empty
    config = handle.settings.serve
    port = config.port if port is None else port
    host = host or config.host
    workers = config.workers if workers is None else workers
    if workers < 1:
        raise ValidationError("--workers must be at least 1")
    os.environ["TIDAL_PROJECT_DIR"] = str(handle.settings.project_dir)
    if durability is not None:
        os.environ["TIDAL_SERVE_DURABILITY"] = durability
    folder = None
    if workers > 1:
        folder = _metrics_folder(handle.settings.state_dir / "metrics")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    handle.close()
    display.console.print(f"serving {handle.settings.project_dir} on http://{host}:{port} "
                          f"({workers} worker{'s' if workers > 1 else ''}); "
                          "Ctrl-C to stop", highlight=False)
    try:
        uvicorn.run("tidal.serve.app:app_from_environment", factory=True, host=host,
                    port=port, workers=workers, loop="uvloop", http="httptools",
                    access_log=False, log_level="warning", lifespan="on",
                    timeout_graceful_shutdown=10,
                    # no X-Forwarded-* rewriting, Date or Server header: work on every
                    # request that a model server behind no proxy does not need
                    proxy_headers=False, server_header=False, date_header=False)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _metrics_folder(parent: Path) -> Path:
    """A fresh folder for this server's workers' metrics (Prometheus multiprocess mode),
    one per server process, so two servers of one project never mix or wipe each other's
    counts; folders of servers that are gone are removed."""
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.iterdir():
        if old.is_dir() and old.name.isdigit() and not _running(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    folder = parent / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


predictions_app = command_group(no_args_is_help=True,
                              help="The prediction log: compact it into Parquet.")


@predictions_app.command("compact")
def compact_predictions(
    into: Annotated[Path | None, typer.Option(
        "--into", help="Parquet folder (default: [monitor] compacted_folder, else the "
        "log folder's sibling 'predictions-parquet').")] = None,
    delete: Annotated[bool, typer.Option(
        "--delete", help="Delete log segments once they are fully compacted.")] = False,
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Turn the prediction log into Parquet partitioned by deployment and hour (exactly
    once; safe to interrupt and rerun, and to run while the server writes)."""
    from tidal.core.config import load_settings
    from tidal.serve.compaction import compact

    settings = load_settings(project)
    folder = settings.serve.log_path(settings.project_dir)
    if not folder.is_dir():
        raise NotFoundError(f"no prediction log at {folder}: nothing has been served yet")
    target = into or settings.monitor.compacted_path(settings.project_dir, folder)
    summary = {"log": str(folder), "into": str(target),
               **compact(folder, target, delete_compacted=delete)}
    if as_json:
        display.print_json(summary)
        return
    display.console.print(f"compacted {summary['records']:,} records ({summary['rows']:,} "
                          f"rows) from {summary['segments']} segments into "
                          f"{summary['files']} Parquet files under {target}",
                          highlight=False)
