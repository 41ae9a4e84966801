"""The model server's HTTP API (Starlette): Open Inference Protocol v2, JSON records, the
OpenAPI document, Prometheus metrics and the admin endpoints.

    uvicorn --factory tidal.serve.app:app_from_environment     # what `tidal serve` runs

Every answer to a request that went wrong is JSON ``{"error": "..."}`` with a 4xx status
when the request was at fault (bad JSON, a missing or mistyped feature, a wrong shape, an
oversized body, an unknown deployment): bad input never causes a 5xx. Each prediction is
recorded in the prediction log before the response is sent (in the default
"acknowledged" durability); the request id comes back in ``X-Request-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tidal.core.errors import NotFoundError, TidalError
from tidal.core.ids import new_id
from tidal.runtime.inputs import InputError, check_columns, columns_from_records
from tidal.serve import protocol
from tidal.serve.metrics import ServerMetrics, status_class
from tidal.serve.openapi import openapi_document
from tidal.serve.predlog import PredictionLog, PredictionRecord
from tidal.serve.replica import Deployment, Replica, Served
from tidal.serve.router import CANARY, SHADOW, STABLE, choose_route

log = logging.getLogger("tidal.serve")
JSON = "application/json"
SERVER_VERSION = "0.1.0"


class BodyTooLarge(TidalError):
    """The request body is over ``[serve] max_body_bytes``."""


class Server:
    """The state the endpoints share: the project, the replica, the log, the metrics."""

    def __init__(self, project: Any) -> None:
        self.project = project
        self.config = project.settings.serve
        self.metrics = ServerMetrics.create(self.config.latency_objective_ms / 1000.0)
        self.replica = Replica(project, self.metrics,
                               default_batch_size=self.config.max_batch_size,
                               default_wait_ms=self.config.max_batch_wait_ms,
                               onnx_threads=self.config.onnx_threads)
        folder = Path(self.config.log_folder)
        self.log = PredictionLog(folder if folder.is_absolute()
                                 else project.settings.project_dir / folder,
                                 durability=self.config.durability,
                                 flush_interval=self.config.flush_interval)
        self.admin_token = os.environ.get(self.config.admin_token_env) or None
        self._poller: asyncio.Task[None] | None = None
        self._shadows: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.log.start()
        await self.replica.refresh(force=True)
        self._poller = asyncio.create_task(self.replica.poll(self.config.poll_interval))

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._shadows:
            await asyncio.gather(*self._shadows, return_exceptions=True)
        await asyncio.to_thread(self.log.close)

    # -- the prediction path -----------------------------------------------------------

    async def predict(self, deployment: Deployment, served: Served, columns: dict[str, Any],
                      *, request_id: str, event_time: float, received: float,
                      began: float) -> dict[str, np.ndarray]:
        """Validate, batch, predict, log (durably, per the configured mode), mirror to the
        shadow; returns the outputs."""
        checked = check_columns(served.model.signature, columns,
                                max_rows=self.config.max_rows)
        rows = len(next(iter(checked.values())))
        self.metrics.queue_depth.labels(deployment.name).set(served.batcher.queue_depth)
        outputs = await served.batcher.submit(checked, rows)
        record = _record(deployment, served, checked, outputs, request_id=request_id,
                         event_time=event_time, received=received,
                         latency_ms=(time.perf_counter() - began) * 1000)
        if deployment.shadow is not None and served.role != SHADOW:
            task = asyncio.create_task(self._shadow(deployment, checked, rows, record))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)
        await self.log.write([record])
        return outputs

    async def _shadow(self, deployment: Deployment, columns: dict[str, np.ndarray], rows: int,
                      primary: PredictionRecord) -> None:
        """Mirror a request to the shadow version: logged, never returned, never fatal."""
        shadow = deployment.shadow
        assert shadow is not None
        began = time.perf_counter()
        try:
            checked = check_columns(shadow.model.signature, columns)
            outputs = await shadow.batcher.submit(checked, rows)
        except Exception as exc:  # noqa: BLE001 - the shadow's failure is only counted
            self.metrics.requests.labels(deployment.name, str(shadow.model.version), SHADOW,
                                         "5xx" if not isinstance(exc, TidalError) else "4xx"
                                         ).inc()
            return
        self.metrics.requests.labels(deployment.name, str(shadow.model.version), SHADOW,
                                     "2xx").inc()
        self.log.write_nowait([_record(
            deployment, shadow, checked, outputs, request_id=primary.request_id,
            event_time=primary.event_time, received=primary.received_at,
            latency_ms=(time.perf_counter() - began) * 1000)])

    def choose(self, deployment: Deployment, key: str | None,
               version: str | None = None) -> Served:
        """The version that answers: the one named in the path, else by the canary split."""
        if version is not None:
            try:
                return deployment.by_version[int(version)]
            except (ValueError, KeyError):
                served = ", ".join(str(v) for v in sorted(deployment.by_version))
                raise NotFoundError(f"deployment {deployment.name!r} does not serve version "
                                    f"{version!r} (it serves {served})") from None
        route = choose_route(deployment.canary_weight, deployment.canary is not None, key)
        return deployment.canary if route == CANARY and deployment.canary else \
            deployment.stable

    def check_admin(self, request: Request) -> None:
        if self.admin_token is None:
            raise HTTPException(403, f"admin endpoints are disabled: set "
                                f"{self.config.admin_token_env} for the server")
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            raise HTTPException(401, "admin endpoints need 'Authorization: Bearer <token>'")


def _record(deployment: Deployment, served: Served, columns: dict[str, np.ndarray],
            outputs: dict[str, np.ndarray], *, request_id: str, event_time: float,
            received: float, latency_ms: float) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id, event_time=event_time, deployment=deployment.name,
        model=deployment.model, version=served.model.version, route=served.role,
        inputs={name: protocol.json_values(values) for name, values in columns.items()},
        outputs={name: values.tolist() if values.ndim > 1 else protocol.json_values(values)
                 for name, values in outputs.items()},
        latency_ms=latency_ms, received_at=received)


# -- request helpers ------------------------------------------------------------------------

async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _event_time(value: Any, received: float) -> float:
    """Epoch seconds from a number or an ISO 8601 text; the receive time when absent."""
    if value is None or value == "":
        return received
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise InputError(f"event time {value!r} is neither epoch seconds nor an ISO 8601 time")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status,
                    headers=headers, media_type=JSON)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(protocol.error_body(message), status, headers=headers, media_type=JSON)


def _status_of(exc: Exception) -> int:
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InputError | TidalError):
        return 400
    return 500


# -- endpoints --------------------------------------------------------------------------

def _server(request: Request) -> Server:
    return request.app.state.server  # type: ignore[no-any-return]


async def v2_infer(request: Request) -> Response:
    server = _server(request)
    received, began = time.time(), time.perf_counter()
    name = request.path_params["name"]
    labels = (name, "?", STABLE)
    try:
        deployment = server.replica.get(name)
        served = server.choose(deployment, request.headers.get("x-tidal-route-key"),
                               request.path_params.get("version"))
        labels = (name, str(served.model.version), served.role)
        body = await _body(request, server.config.max_body_bytes)
        parsed = protocol.parse_request(body, request.headers.get(protocol.HEADER_LENGTH),
                                        served.input_types)
        request_id = request.headers.get("x-request-id") or parsed.id or new_id(received)
        event_time = _event_time(request.headers.get("x-event-time")
                                 or parsed.parameters.get("event_time"), received)
        outputs = await server.predict(deployment, served, parsed.columns,
                                       request_id=request_id, event_time=event_time,
                                       received=received, began=began)
        content, headers = protocol.encode_response(
            model_name=name, model_version=str(served.model.version), request_id=request_id,
            outputs=outputs, wanted=parsed.outputs, binary=parsed.binary_outputs)
        response = Response(content, 200, headers={"x-request-id": request_id, **headers},
                            media_type=JSON if not headers else "application/octet-stream")
    except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
        response = _failure(exc)
    _count(server, labels, response.status_code, began)
    return response


async def v1_predict(request: Request) -> Response:
    """JSON records in, one prediction per record out (for people who want no tensors)."""
    server = _server(request)
    received, began = time.time(), time.perf_counter()
    labels = (request.path_params.get("name", "?"), "?", STABLE)
    try:
        body = await _body(request, server.config.max_body_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"the body is not valid JSON: {exc}") from None
        if isinstance(document, list):
            document = {"records": document}
        if not isinstance(document, dict):
            raise InputError("send a list of records or {\"records\": [...], ...}")
        name = request.path_params.get("name") or document.get("deployment") or \
            _only_deployment(server)
        labels = (name, "?", STABLE)
        deployment = server.replica.get(name)
        key = request.headers.get("x-tidal-route-key") or document.get("key")
        served = server.choose(deployment, str(key) if key is not None else None)
        labels = (name, str(served.model.version), served.role)
        columns = columns_from_records(served.model.signature, document.get("records"),
                                       max_rows=server.config.max_rows)
        request_id = request.headers.get("x-request-id") or document.get("id") or \
            new_id(received)
        event_time = _event_time(request.headers.get("x-event-time")
                                 or document.get("event_time"), received)
        outputs = await server.predict(deployment, served, columns, request_id=str(request_id),
                                       event_time=event_time, received=received, began=began)
        response = _json({"request_id": request_id, "deployment": name,
                          "model": deployment.model, "version": served.model.version,
                          "route": served.role,
                          "predictions": _per_row(outputs, served.model.classes)},
                         headers={"x-request-id": str(request_id)})
    except Exception as exc:  # noqa: BLE001
        response = _failure(exc)
    _count(server, labels, response.status_code, began)
    return response


def _only_deployment(server: Server) -> str:
    names = list(server.replica.deployments)
    if len(names) == 1:
        return names[0]
    raise InputError(f"name the deployment (POST /v1/predict/NAME or \"deployment\" in the "
                     f"body); this server has {', '.join(sorted(names)) or 'none'}")


def _per_row(outputs: dict[str, np.ndarray], classes: list[Any] | None) -> list[dict[str, Any]]:
    if "probabilities" in outputs and classes is not None:
        labels = protocol.json_values(outputs["label"])
        return [{"label": label, "probabilities": dict(zip(map(str, classes), row,
                                                           strict=True))}
                for label, row in zip(labels, outputs["probabilities"].tolist(), strict=True)]
    columns = {name: protocol.json_values(values) if values.ndim == 1 else values.tolist()
               for name, values in outputs.items()}
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _failure(exc: Exception) -> Response:
    status = _status_of(exc)
    if status == 500:
        log.exception("unexpected error while answering a request")
        return _error(500, f"internal error: {type(exc).__name__}")
    return _error(status, str(exc))


def _count(server: Server, labels: tuple[str, str, str], status: int, began: float) -> None:
    deployment, version, route = labels
    known = deployment in server.replica.deployments
    deployment = deployment if known else "(unknown)"  # never a label per typo
    server.metrics.requests.labels(deployment, version if known else "?", route,
                                   status_class(status)).inc()
    server.metrics.latency.labels(deployment).observe(time.perf_counter() - began)


async def v1_feedback(request: Request) -> Response:
    return _error(501, "feedback is not accepted yet: it arrives with the monitoring issue")


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
        served = server.choose(deployment, None, request.path_params.get("version")) \
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
        return _error(404, str(exc))
    return _json({"name": deployment.name, "ready": True})


async def metrics(request: Request) -> Response:
    server = _server(request)
    stats = server.log.stats
    server.metrics.log_lag.set(stats.get("lag_seconds", 0.0))
    server.metrics.log_pending.set(stats.get("pending", 0))
    content, content_type = server.metrics.render()
    return Response(content, 200, media_type=content_type)


async def openapi(request: Request) -> Response:
    return _json(openapi_document(SERVER_VERSION))


async def admin_status(request: Request) -> Response:
    server = _server(request)
    server.check_admin(request)
    return _json(_status(server))


async def admin_reload(request: Request) -> Response:
    server = _server(request)
    server.check_admin(request)
    await server.replica.refresh(force=True)
    return _json(_status(server))


def _status(server: Server) -> dict[str, Any]:
    replica = server.replica
    return {
        "revision": replica.revision, "ready": replica.ready, "error": replica.last_error,
        "deployments": [{
            "name": d.name, "model": d.model, "stable": d.stable.model.version,
            "canary": d.canary.model.version if d.canary else None,
            "canary_weight": d.canary_weight,
            "shadow": d.shadow.model.version if d.shadow else None,
            "runtimes": {str(v): s.model.runtime for v, s in d.by_version.items()},
        } for d in replica.deployments.values()],
        "prediction_log": server.log.stats,
    }


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code not in (404, 405) else (
        f"no such endpoint: {request.method} {request.url.path}" if exc.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}")
    return _error(exc.status_code, str(message), headers=exc.headers)


def create_app(project: Any) -> Starlette:
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
    app = Starlette(routes=[
        Route("/v2/health/live", live), Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route(model, model_metadata), Route(version, model_metadata),
        Route(model + "/ready", model_ready), Route(version + "/ready", model_ready),
        Route(model + "/infer", v2_infer, methods=["POST"]),
        Route(version + "/infer", v2_infer, methods=["POST"]),
        Route("/v1/predict", v1_predict, methods=["POST"]),
        Route("/v1/predict/{name}", v1_predict, methods=["POST"]),
        Route("/v1/feedback", v1_feedback, methods=["POST"]),
        Route("/metrics", metrics), Route("/openapi.json", openapi),
        Route("/admin/status", admin_status), Route("/admin/reload", admin_reload,
                                                    methods=["POST"]),
    ], lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.server = server
    return app


def app_from_environment() -> Starlette:
    """The app for ``uvicorn --factory``: the project named by ``TIDAL_PROJECT_DIR``."""
    from tidal.project import Project

    return create_app(Project(os.environ.get("TIDAL_PROJECT_DIR")))
