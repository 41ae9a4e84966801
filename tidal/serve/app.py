"""The model server's HTTP application.

    uvicorn --factory tidal.serve.app:app_from_environment     # what `tidal serve` runs

Two layers. :class:`ServingApp` is a small ASGI dispatcher that answers the prediction
endpoints (``POST …/infer`` and ``POST /v1/predict``) itself, reading the body straight
from uvicorn and calling :mod:`tidal.serve.inference`; everything else (health,
metadata, metrics, OpenAPI, admin, and every error for unknown paths or methods) goes to
a Starlette app, where convenience matters more than microseconds. Every error body is
JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.serve import inference, protocol
from tidal.serve.openapi import openapi_document
from tidal.serve.server import AdminRefused, Server
from tidal.store.feedback import FeedbackItem, check_item
from tidal.store.review import answer_with_feedback

SERVER_VERSION = "0.1.0"
JSON = "application/json"
REVIEW_BODY_LIMIT = 64 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ServingApp:
    """ASGI: prediction requests answered directly, the rest by Starlette."""

    def __init__(self, server: Server, fallback: Starlette) -> None:
        self.server = server
        self.fallback = fallback
        self.limit = server.config.max_body_bytes
        self.state = fallback.state  # tests and tools reach the server as app.state.server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                parts = path[len("/v2/models/"):-len("/infer")].split("/")
                if len(parts) == 1 or (len(parts) == 3 and parts[1] == "versions"):
                    version = parts[2] if len(parts) == 3 else None
                    await self._answer(scope, receive, send, lambda headers, body:
                                       inference.v2_infer(self.server, parts[0], version,
                                                          headers, body))
                    return
            elif path == "/v1/predict" or path.startswith("/v1/predict/"):
                name = path[len("/v1/predict/"):] or None  # "" for "/v1/predict" too
                if name is None or "/" not in name:
                    await self._answer(scope, receive, send, lambda headers, body:
                                       inference.v1_predict(self.server, name, headers, body))
                    return
        await self.fallback(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send,
                      handle: Callable[[dict[str, str], bytes], Awaitable[Any]]) -> None:
        headers = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope["headers"]}
        try:
            body = await self._body(headers, receive)
        except inference.BodyTooLarge as exc:
            status, content, extra = inference.failure(exc)
        else:
            status, content, extra = await handle(headers, body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*extra, (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and _whole_number(declared) and int(declared) > self.limit:
            raise inference.BodyTooLarge(f"the body is {int(declared):,} bytes; the limit "
                                         f"is {self.limit:,}")
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.limit:
                raise inference.BodyTooLarge(f"the body is over the limit of "
                                             f"{self.limit:,} bytes")
            return body  # type: ignore[no-any-return]
        chunks, size = [body], len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise inference.BodyTooLarge(f"the body is over the limit of "
                                             f"{self.limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


# -- the rest, on Starlette -------------------------------------------------------------

def _server(request: Request) -> Server:
    return request.app.state.server  # type: ignore[no-any-return]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status,
                    media_type=JSON)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(protocol.error_body(message), status, headers=headers, media_type=JSON)


async def live(request: Request) -> Response:
    return _json({"live": True})


async def ready(request: Request) -> Response:
    server = _server(request)
    if not server.replica.ready:
        return _json({"ready": False, "error": server.replica.last_error}, 503)
    return _json({"ready": True})


async def server_metadata(request: Request) -> Response:
    return _json({"name": "tidal", "version": SERVER_VERSION,
                  "extensions": ["binary_tensor_data"]})


async def model_metadata(request: Request) -> Response:
    server = _server(request)
    try:
        deployment = server.replica.get(request.path_params["name"])
        served = server.choose(deployment, None, request.path_params["version"]) \
            if "version" in request.path_params else deployment.stable
    except NotFoundError as exc:
        return _error(404, str(exc))
    signature = served.model.signature
    return _json({
        "name": deployment.name,
        "versions": [str(v) for v in sorted(deployment.by_version)],
        "platform": f"tidal-{served.model.runtime}",
        "inputs": [{"name": i["name"], "datatype": i["datatype"], "shape": [-1]}
                   for i in signature["inputs"]],
        "outputs": [{"name": o["name"], "datatype": o["datatype"],
                     "shape": [-1, -1] if o["name"] == "probabilities" else [-1]}
                    for o in signature.get("outputs", [])],
        "parameters": {"model": deployment.model, "version": served.model.version,
                       "route": served.role, "task": served.model.task},
    })


async def model_ready(request: Request) -> Response:
    server = _server(request)
    try:
        deployment = server.replica.get(request.path_params["name"])
        if "version" in request.path_params:
            server.choose(deployment, None, request.path_params["version"])
    except NotFoundError as exc:
        failure = server.replica.failures.get(request.path_params["name"])
        return _error(503 if failure else 404, failure or str(exc))
    failure = server.replica.failures.get(deployment.name)
    if failure is not None:  # it answers, but with settings older than the store's
        return _json({"name": deployment.name, "ready": False,
                      "error": f"its latest settings could not be loaded: {failure}"}, 503)
    return _json({"name": deployment.name, "ready": True})


async def v1_feedback(request: Request) -> Response:
    """Labels for earlier predictions: one object, a list, or {"deployment", "labels"}."""
    server = _server(request)
    server.check_feedback(request.headers.get("authorization"))
    body = await _bounded_body(request, server.config.max_body_bytes)
    if isinstance(body, Response):
        return body
    try:
        items = feedback_items(orjson.loads(body), list(server.replica.deployments))
    except orjson.JSONDecodeError as exc:
        return _error(400, f"the body is not valid JSON: {exc}")
    except ValidationError as exc:
        return _error(400, str(exc))
    unknown = sorted({item.deployment for item in items} - set(server.replica.deployments))
    if unknown:
        return _error(404, f"this server has no deployment {', '.join(map(repr, unknown))}")
    result = await asyncio.to_thread(server.project.feedback.add, items, source="api",
                                     actor="api", now=time.time())
    return _json(result)


def feedback_items(document: Any, deployments: list[str]) -> list[FeedbackItem]:
    """The checked labels of a feedback body (the deployment may be left out when the
    server has only one)."""
    default = deployments[0] if len(deployments) == 1 else None
    if isinstance(document, dict) and "labels" in document:
        default = document.get("deployment") or default
        document = document["labels"]
    elif isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not document:
        raise ValidationError("send a label object, a list of them, or "
                              "{\"deployment\": ..., \"labels\": [...]}")
    return [check_item(raw, deployment=default, where=f"label {index}")
            for index, raw in enumerate(document)]


# -- the review queue (feedback or admin token) ------------------------------------------------

async def review_items(request: Request) -> Response:
    """GET /v1/review?deployment=&status=&limit=: the queue, oldest first."""
    server = _server(request)
    server.check_feedback(request.headers.get("authorization"))
    params = request.query_params
    try:
        limit = int(params.get("limit", "100"))
        if not 1 <= limit <= 10_000:
            raise ValueError
    except ValueError:
        return _error(400, "'limit' must be a whole number from 1 to 10,000")
    deployment = params.get("deployment")
    if deployment is not None and deployment not in server.replica.deployments:
        return _error(404, f"this server has no deployment {deployment!r}")
    try:
        items = await asyncio.to_thread(server.project.review.items, deployment,
                                        status=params.get("status"), limit=limit,
                                        among=list(server.replica.deployments))
    except ValidationError as exc:
        return _error(400, str(exc))
    return _json([item.to_dict() for item in items])


async def review_next(request: Request) -> Response:
    """POST /v1/review/next {"deployment", "reviewer"}: claim the next item (null: none)."""
    server = _server(request)
    server.check_feedback(request.headers.get("authorization"))
    body = await _small_json(request)
    if isinstance(body, Response):
        return body
    deployment, reviewer = body.get("deployment"), body.get("reviewer")
    if not isinstance(deployment, str) or deployment not in server.replica.deployments:
        return _error(404, f"this server has no deployment {deployment!r}")
    try:
        item = await asyncio.to_thread(
            server.project.review.claim_next, deployment, reviewer, now=time.time(),
            claim_seconds=server.project.settings.monitor.review.claim_timeout)
    except ValidationError as exc:
        return _error(400, str(exc))
    return _json(None if item is None else item.to_dict())


async def review_answer(request: Request) -> Response:
    """POST /v1/review/{item}/answer {"reviewer", "label" | "unsure": true, "familiar",
    "note"}: answer an item; a label also becomes feedback."""
    server = _server(request)
    server.check_feedback(request.headers.get("authorization"))
    body = await _small_json(request)
    if isinstance(body, Response):
        return body
    text = request.path_params["item"]
    if not _whole_number(text):
        return _error(404, f"no review item {text!r}")
    item_id = int(text)
    try:
        familiar = body.get("familiar")
        if familiar is not None and not isinstance(familiar, bool):
            raise ValidationError("'familiar' is true or false")
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise ValidationError("'note' is a text")
        answered = await asyncio.to_thread(
            answer_with_feedback, server.project.review, item_id,
            body.get("reviewer"), label=body.get("label"), unsure=body.get("unsure") is True,
            familiar=familiar, note=note, now=time.time(),
            required=server.project.settings.monitor.review.reviewers_per_item,
            among=list(server.replica.deployments))
    except NotFoundError as exc:
        return _error(404, str(exc))
    except ConflictError as exc:
        return _error(409, str(exc))
    except ValidationError as exc:
        return _error(400, str(exc))
    return _json(answered.to_dict())


async def review_agreement(request: Request) -> Response:
    """GET /v1/review/agreement?deployment=: label consistency between reviewers."""
    server = _server(request)
    server.check_feedback(request.headers.get("authorization"))
    deployment = request.query_params.get("deployment")
    if not deployment:
        return _error(400, "name the deployment: ?deployment=…")
    if deployment not in server.replica.deployments:
        return _error(404, f"this server has no deployment {deployment!r}")
    return _json(await asyncio.to_thread(server.project.review.agreement, deployment))


async def _small_json(request: Request) -> dict[str, Any] | Response:
    body = await _bounded_body(request, REVIEW_BODY_LIMIT)
    if isinstance(body, Response):
        return body
    try:
        document = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        return _error(400, f"the body is not valid JSON: {exc}")
    if not isinstance(document, dict):
        return _error(400, "send a JSON object")
    return document


async def _bounded_body(request: Request, limit: int) -> bytes | Response:
    """The body, read up to ``limit`` bytes (a 413 past it): a chunked body says no
    length up front, so it is counted as it arrives rather than read whole first."""
    declared = request.headers.get("content-length", "")
    if _whole_number(declared) and int(declared) > limit:
        return _error(413, f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _error(413, f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _whole_number(text: str) -> bool:
    """ASCII digits that fit a 64-bit integer ("²" is a digit to str.isdigit)."""
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


async def answered_by_the_dispatcher(request: Request) -> Response:
    """Never called: :class:`ServingApp` answers these POSTs itself; the routes exist so
    that other methods get a 405."""
    return _error(405, f"{request.method} is not allowed on {request.url.path}")


async def metrics(request: Request) -> Response:
    server = _server(request)
    stats = server.log.stats
    server.metrics.log_lag.set(stats.get("lag_seconds", 0.0))
    server.metrics.log_pending.set(stats.get("pending", 0))
    for deployment in server.replica.deployments.values():
        server.metrics.queue_depth.labels(deployment.name).set(
            sum(s.batcher.queue_depth for s in deployment.by_version.values()))
    content, content_type = server.metrics.render()
    return Response(content, 200, media_type=content_type)


async def openapi(request: Request) -> Response:
    return _json(openapi_document(SERVER_VERSION))


async def admin_status(request: Request) -> Response:
    server = _server(request)
    server.check_admin(request.headers.get("authorization"))
    return _json(_status(server))


async def admin_reload(request: Request) -> Response:
    server = _server(request)
    server.check_admin(request.headers.get("authorization"))
    await server.replica.refresh(force=True)
    return _json(_status(server))


def _status(server: Server) -> dict[str, Any]:
    replica = server.replica
    return {
        "revision": replica.revision, "ready": replica.ready, "error": replica.last_error,
        "deployments": [{
            "name": d.name, "model": d.model, "revision": d.revision,
            "stable": d.stable.model.version,
            "canary": d.canary.model.version if d.canary else None,
            "canary_weight": d.canary_weight,
            "shadow": d.shadow.model.version if d.shadow else None,
            "runtimes": {str(v): s.model.runtime for v, s in d.by_version.items()},
            "error": replica.failures.get(d.name),
        } for d in replica.deployments.values()],
        "failed_deployments": dict(replica.failures),
        "prediction_log": server.log.stats,
    }


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code not in (404, 405) else (
        f"no such endpoint: {request.method} {request.url.path}" if exc.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}")
    return _error(exc.status_code, str(message), headers=exc.headers)


async def _admin_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminRefused)
    return _error(exc.status, str(exc))


def create_app(project: Any) -> ServingApp:
    """The server app for an open :class:`tidal.Project`."""
    server = Server(project)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    model = "/v2/models/{name}"
    version = model + "/versions/{version}"
    rest = Starlette(routes=[
        Route("/v2/health/live", live), Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route(model, model_metadata), Route(version, model_metadata),
        Route(model + "/ready", model_ready), Route(version + "/ready", model_ready),
        # POSTs are answered by ServingApp; these routes give other methods a 405
        Route(model + "/infer", answered_by_the_dispatcher, methods=["POST"]),
        Route(version + "/infer", answered_by_the_dispatcher, methods=["POST"]),
        Route("/v1/predict", answered_by_the_dispatcher, methods=["POST"]),
        Route("/v1/feedback", v1_feedback, methods=["POST"]),
        Route("/v1/review", review_items),
        Route("/v1/review/next", review_next, methods=["POST"]),
        Route("/v1/review/agreement", review_agreement),
        Route("/v1/review/{item}/answer", review_answer, methods=["POST"]),
        Route("/metrics", metrics), Route("/openapi.json", openapi),
        Route("/admin/status", admin_status),
        Route("/admin/reload", admin_reload, methods=["POST"]),
    ], lifespan=lifespan, exception_handlers={HTTPException: _http_error,
                                              AdminRefused: _admin_refused})
    rest.state.server = server
    return ServingApp(server, rest)


def app_from_environment() -> ServingApp:
    """The app for ``uvicorn --factory``: the project named by ``TIDAL_PROJECT_DIR``."""
    from tidal.project import Project

    return create_app(Project(os.environ.get("TIDAL_PROJECT_DIR")))
