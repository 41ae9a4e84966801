"""The dashboard's ASGI app: one Starlette route per page, the templates, the static files.

Read-only: every page reads the store through the project's repositories (a fresh read
per request, so what the CLI and the controller write shows at the next load). The
actions that change something (rollback, promote, labels) come with the admin token and
a CSRF check in a later step; until then there is no write route at all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tidal.ui import pages

if TYPE_CHECKING:
    from tidal.project import Project

STATIC = Path(__file__).parent / "static"


def create_ui(project: Project) -> Starlette:
    """The dashboard over ``project``'s store."""
    templates = Environment(loader=PackageLoader("tidal.ui", "templates"),
                            autoescape=select_autoescape(default=True),
                            trim_blocks=True, lstrip_blocks=True)
    templates.filters["when"] = _when
    templates.filters["ago"] = _ago

    def page(build: Any, template: str) -> Any:
        async def endpoint(request: Request) -> HTMLResponse:
            context = build(project, request)
            if context.get("status") == 404:
                template_name = "not_found.html"
            else:
                template_name = template
            html = templates.get_template(template_name).render(
                request=request, project_name=project.settings.project_dir.name,
                url_for=lambda route, **params: request.url_for(route, **params).path,
                **context)
            return HTMLResponse(html, status_code=context.get("status", 200))
        return endpoint

    return Starlette(routes=[
        Route("/", page(pages.overview, "overview.html"), name="overview"),
        Route("/events", page(pages.events, "events.html"), name="events"),
        Route("/deployments/{name}", page(pages.deployment, "deployment.html"),
              name="deployment"),
        Route("/deployments/{name}/monitoring", page(pages.monitoring, "monitoring.html"),
              name="monitoring"),
        Route("/runs", page(pages.runs, "runs.html"), name="runs"),
        Route("/runs/compare", page(pages.compare, "compare.html"), name="compare"),
        Route("/runs/{run_id}", page(pages.run, "run.html"), name="run"),
        Route("/models", page(pages.models, "models.html"), name="models"),
        Route("/models/{name}", page(pages.model, "model.html"), name="model"),
        Route("/models/{name}/{version:int}", page(pages.version, "version.html"),
              name="version"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


def _ago(epoch: float | None, now: float | None = None) -> str:
    if epoch is None:
        return "—"
    seconds = (now if now is not None else time.time()) - epoch
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"
