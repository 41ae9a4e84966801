"""The dashboard's ASGI app: one Starlette route per page, the templates, the static files,
and the few actions an admin may take.

Pages read the store through the project's repositories (a fresh read per request, so
what the CLI and the controller write shows at the next load). Actions (rollback,
promote, abort) are POSTs that need a logged-in admin session and the form's CSRF token
(:mod:`tidal.ui.auth`), a ticked confirmation and, optionally, a reason; they go through
:class:`~tidal.control.rollout.Rollouts` like the CLI's, so each is recorded as an event
with the actor ``dashboard``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tidal.core.errors import TidalError, ValidationError
from tidal.ui import pages
from tidal.ui.auth import COOKIE, SESSION_SECONDS, Sessions
from tidal.ui.formats import when

if TYPE_CHECKING:
    from tidal.project import Project

STATIC = Path(__file__).parent / "static"
ACTOR = "dashboard"
#: what the deployment page's buttons do
ACTIONS = ("rollback", "promote", "abort")


def create_ui(project: Project) -> Starlette:
    """The dashboard over ``project``'s store."""
    templates = Environment(loader=PackageLoader("tidal.ui", "templates"),
                            autoescape=select_autoescape(default=True),
                            trim_blocks=True, lstrip_blocks=True)
    templates.filters["when"] = when
    sessions = Sessions(project.settings.serve.admin_token_env)

    def render(request: Request, template: str, context: dict[str, Any]) -> HTMLResponse:
        admin = sessions.get(request.cookies.get(COOKIE))
        name = "not_found.html" if context.get("status") == 404 else template
        html = templates.get_template(name).render(
            request=request, project_name=project.settings.project_dir.name, admin=admin,
            login_enabled=sessions.enabled,
            url_for=lambda route, **params: request.url_for(route, **params).path,
            **context)
        return HTMLResponse(html, status_code=context.get("status", 200))

    def page(build: Callable[..., dict[str, Any]], template: str
             ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            # the store's reads block: off the event loop, so one slow page (a year of
            # monitoring) does not hold up the others
            try:
                context = await run_in_threadpool(build, project, request)
            except ValidationError as error:  # a malformed id or name in the address
                context = {"title": "Not found", "status": 404, "message": str(error)}
            return render(request, template, context)
        return endpoint

    def admin_form(handler: Callable[[Request, Any], Awaitable[Response]]
                   ) -> Callable[[Request], Awaitable[Response]]:
        """A POST handler for a logged-in admin's own form (else refused, 403)."""
        async def endpoint(request: Request) -> Response:
            if sessions.get(request.cookies.get(COOKIE)) is None:  # before reading a body
                return _refused("log in with the admin token first")
            form = await request.form()
            refused = _check(sessions, request, form)
            return refused if refused is not None else await handler(request, form)
        return endpoint

    async def login(request: Request) -> Response:
        target = _local(request.query_params.get("next", "/"))
        if request.method == "GET":
            return render(request, "login.html", {"title": "Log in", "next": target})
        form = await request.form()
        session = sessions.login(str(form.get("token", "")))
        if session is None:
            return render(request, "login.html", {
                "title": "Log in", "next": target, "status": 403,
                "error": "That is not the admin token." if sessions.enabled else
                f"No admin token is set: export {sessions.token_env} before tidal ui."})
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(COOKIE, session.id, max_age=SESSION_SECONDS, httponly=True,
                          samesite="strict", path="/")
        return answer

    async def logout(request: Request, form: Any) -> Response:
        sessions.logout(request.cookies.get(COOKIE))
        answer = RedirectResponse("/", status_code=303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    async def act(request: Request, form: Any) -> Response:
        from tidal.control.rollout import Rollouts

        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ACTIONS:
            return _refused(f"unknown action {action!r}", 404)
        back = request.url_for("deployment", name=name).path
        if form.get("confirm") != "yes":
            return RedirectResponse(f"{back}?error={quote('tick the confirmation first')}",
                                    status_code=303)
        reason = _text(form.get("reason")) or f"{action} from the dashboard"
        try:
            getattr(Rollouts(project, actor=ACTOR), action)(name, reason=reason)
        except TidalError as error:
            return RedirectResponse(f"{back}?error={quote(str(error))}", status_code=303)
        return RedirectResponse(f"{back}?done={quote(action)}", status_code=303)

    async def claim(request: Request, form: Any) -> Response:
        """Claim the next item the reviewer has not answered, and show it."""
        name = request.path_params["name"]
        reviewer = _text(form.get("reviewer")) or ACTOR
        item = project.review.claim_next(
            name, reviewer, now=project.clock.now(),
            claim_seconds=project.settings.monitor.review.claim_timeout)
        back = request.url_for("review", name=name).path
        if item is None:
            return RedirectResponse(f"{back}?done={quote('nothing left for ' + reviewer)}",
                                    status_code=303)
        target = request.url_for("review_item", name=name, item=item.id).path
        return RedirectResponse(f"{target}?reviewer={quote(reviewer)}", status_code=303)

    async def answer(request: Request, form: Any) -> Response:
        """A reviewer's answer: a label (it also becomes feedback), or unsure."""
        from tidal.monitor.review import answer as record_answer

        name, number = request.path_params["name"], request.path_params["item"]
        reviewer = _text(form.get("reviewer")) or ACTOR
        unsure = form.get("answer") == "unsure"
        label = None if unsure else _label(_text(form.get("label")) or
                                           _text(form.get("answer")))
        here = request.url_for("review_item", name=name, item=number).path
        if project.review.get(number, name) is None:
            return _refused(f"no review item {number} in {name!r}", 404)
        try:
            record_answer(project, number, reviewer, label=label, unsure=unsure,
                          familiar=form.get("unfamiliar") != "yes",
                          note=_text(form.get("note")) or None)
        except TidalError as error:
            return RedirectResponse(f"{here}?reviewer={quote(reviewer)}&error="
                                    f"{quote(str(error))}", status_code=303)
        said = "unsure" if unsure else f"label {label!r}"
        back = request.url_for("review", name=name).path
        return RedirectResponse(f"{back}?reviewer={quote(reviewer)}&done="
                                f"{quote(f'item {number}: {said}')}", status_code=303)

    return Starlette(routes=[
        Route("/", page(pages.overview, "overview.html"), name="overview"),
        Route("/events", page(pages.events, "events.html"), name="events"),
        Route("/schedules", page(pages.schedules, "schedules.html"), name="schedules"),
        Route("/deployments/{name}", page(pages.deployment, "deployment.html"),
              name="deployment"),
        Route("/deployments/{name}/monitoring", page(pages.monitoring, "monitoring.html"),
              name="monitoring"),
        Route("/deployments/{name}/{action}", admin_form(act), methods=["POST"],
              name="act"),
        Route("/runs", page(pages.runs, "runs.html"), name="runs"),
        Route("/runs/compare", page(pages.compare, "compare.html"), name="compare"),
        Route("/runs/{run_id}", page(pages.run, "run.html"), name="run"),
        Route("/models", page(pages.models, "models.html"), name="models"),
        Route("/models/{name}", page(pages.model, "model.html"), name="model"),
        Route("/models/{name}/{version:int}", page(pages.version, "version.html"),
              name="version"),
        Route("/review/{name}", page(pages.review, "review.html"), name="review"),
        Route("/review/{name}/next", admin_form(claim), methods=["POST"],
              name="review_next"),
        Route("/review/{name}/items/{item:int}", page(pages.review_item, "review_item.html"),
              name="review_item"),
        Route("/review/{name}/items/{item:int}/answer", admin_form(answer),
              methods=["POST"], name="review_answer"),
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", admin_form(logout), methods=["POST"], name="logout"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])


def _check(sessions: Sessions, request: Request, form: Any) -> Response | None:
    """None when the request comes from a logged-in admin's own form, else the refusal."""
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return _refused("log in with the admin token first")
    if not Sessions.csrf_ok(session, _text(form.get("csrf"))):
        return _refused("the form's CSRF token does not match your session")
    return None


def _label(text: str | None) -> Any:
    """A label as typed or as its button sends it: JSON when it parses (1, 2.5,
    true), else the text itself."""
    import json

    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _refused(why: str, status: int = 403) -> Response:
    return HTMLResponse(f"<!doctype html><title>Refused</title><p>Refused: {escape(why)}. "
                        f'<a href="/login">Log in</a></p>', status_code=status)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _local(target: str) -> str:
    """A redirect target on this site only (never ``//evil`` or ``https://evil``)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
