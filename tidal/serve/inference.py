"""The two prediction endpoints, as plain functions of (server, path, headers, body).

``POST /v2/models/{name}[/versions/{v}]/infer`` (Open Inference Protocol v2) and
``POST /v1/predict[/{name}]`` (JSON records) return ``(status, body, headers)``; the ASGI
dispatcher in :mod:`tidal.serve.app` calls them straight from uvicorn, without a web
framework's request objects, routing and middleware in between, because on this path
that machinery costs as much as the model. Every failure becomes ``{"error": ...}``
with a 4xx status when the request was at fault; bad input never causes a 5xx.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from tidal.core.errors import NotFoundError, TidalError
from tidal.core.ids import new_id
from tidal.core.validate import MAX_EPOCH_SECONDS
from tidal.runtime.inputs import InputError, columns_from_records
from tidal.serve import protocol
from tidal.serve.metrics import status_class
from tidal.serve.predlog import PredictionLogError, PredictionRecord
from tidal.serve.router import STABLE
from tidal.serve.server import AdminRefused, Server

log = logging.getLogger("tidal.serve")

Headers = list[tuple[bytes, bytes]]
JSON_HEADER = (b"content-type", b"application/json")
MAX_REQUEST_ID = 128
MAX_KEY = 256


class BodyTooLarge(TidalError):
    """The request body is over ``[serve] max_body_bytes``."""


async def v2_infer(server: Server, name: str, version: str | None, headers: dict[str, str],
                   body: bytes) -> tuple[int, bytes, Headers]:
    received, began = time.time(), time.perf_counter()
    labels = (name, "?", STABLE)
    try:
        deployment = server.replica.get(name)
        key = headers.get("x-tidal-route-key")
        served = server.choose(deployment, key, version)
        labels = (name, served.version_label, served.role)
        parsed = protocol.parse_request(body, headers.get(protocol.HEADER_LENGTH),
                                        served.input_types)
        unknown = [o for o in parsed.outputs or () if o not in served.output_names]
        if unknown and served.output_names:  # refused before the model runs or it is logged
            raise InputError(f"unknown output(s) {', '.join(unknown)}; this model gives "
                             f"{', '.join(sorted(served.output_names))}")
        request_id = checked_request_id(headers.get("x-request-id") or parsed.id,
                                        received)
        event_time = event_time_of(headers.get("x-event-time")
                                   or parsed.parameters.get("event_time"), received)
        outputs = await server.predict(deployment, served,
                                       server.check(served, parsed.columns),
                                       request_id=request_id, event_time=event_time,
                                       received=received, began=began,
                                       key=checked_key(key))
        content, extra = protocol.encode_response(  # the body's id is echoed as given
            model_name=name, model_version=served.version_label,
            request_id=parsed.id if parsed.id is not None else request_id,
            outputs=outputs, wanted=parsed.outputs, binary=parsed.binary_outputs)
        answer = (200, content, [
            (b"content-type", b"application/octet-stream" if extra else b"application/json"),
            (b"x-request-id", request_id.encode()),
            *((k.lower().encode(), v.encode()) for k, v in extra.items())])
    except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
        answer = failure(exc)
        log_failure(server, labels, answer, headers, received, began)
    count(server, labels, answer[0], began)
    return answer


async def v1_predict(server: Server, name: str | None, headers: dict[str, str],
                     body: bytes) -> tuple[int, bytes, Headers]:
    """JSON records in, one prediction per record out (for people who want no tensors)."""
    received, began = time.time(), time.perf_counter()
    labels = (name or "?", "?", STABLE)
    try:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"the body is not valid JSON: {exc}") from None
        if isinstance(document, list):
            document = {"records": document}
        if not isinstance(document, dict):
            raise InputError("send a list of records or {\"records\": [...], ...}")
        name = name or document.get("deployment") or _only_deployment(server)
        labels = (str(name), "?", STABLE)
        deployment = server.replica.get(str(name))
        key = headers.get("x-tidal-route-key") or document.get("key")
        served = server.choose(deployment, str(key) if key is not None else None)
        labels = (deployment.name, served.version_label, served.role)
        columns = columns_from_records(served.model.signature, document.get("records"),
                                       max_rows=server.config.max_rows)
        request_id = checked_request_id(headers.get("x-request-id") or document.get("id"),
                                        received)
        event_time = event_time_of(headers.get("x-event-time") or document.get("event_time"),
                                   received)
        outputs = await server.predict(deployment, served, columns, request_id=request_id,
                                       event_time=event_time, received=received, began=began,
                                       key=checked_key(key))
        content = orjson.dumps({
            "request_id": request_id, "deployment": deployment.name,
            "model": deployment.model, "version": served.model.version,
            "route": served.role, "predictions": per_row(outputs, served.model.classes)})
        answer = (200, content, [JSON_HEADER, (b"x-request-id", request_id.encode())])
    except Exception as exc:  # noqa: BLE001
        answer = failure(exc)
        log_failure(server, labels, answer, headers, received, began)
    count(server, labels, answer[0], began)
    return answer


def log_failure(server: Server, labels: tuple[str, str, str],
                answer: tuple[int, bytes, Headers], headers: dict[str, str],
                received: float, began: float) -> None:
    """Log a failed request of a known deployment (no rows; its status and error), so
    the monitors can count error rates from the log. Fire-and-forget: a failure is
    never made worse by the log, and a request for no deployment is only counted."""
    deployment = server.replica.deployments.get(labels[0])
    if deployment is None or answer[0] < 400:
        return
    given = headers.get("x-request-id") or ""
    request_id = given if 0 < len(given) <= MAX_REQUEST_ID and given.isprintable() \
        and given.isascii() else new_id(received)
    version = int(labels[1]) if labels[1].isdigit() else deployment.stable.model.version
    try:
        message = orjson.loads(answer[1]).get("error", "")
    except (orjson.JSONDecodeError, AttributeError):
        message = ""
    try:  # the request's own event time when its header gives one (as its rows would have)
        event_time = event_time_of(headers.get("x-event-time"), received)
    except TidalError:
        event_time = received
    try:
        server.log.write_nowait([PredictionRecord(
            request_id=request_id, event_time=event_time, deployment=deployment.name,
            model=deployment.model, version=version, route=labels[2], inputs={},
            outputs={}, latency_ms=(time.perf_counter() - began) * 1000,
            received_at=received, status=answer[0], error=str(message)[:200])])
    except PredictionLogError:
        return  # the log is closing or broken: the 503 path reports that on its own


def checked_request_id(value: Any, received: float) -> str:
    """The client's request id, or a new one. It is echoed in a response header and
    logged, so it must be short printable text: no line breaks, no control characters."""
    if value is None or value == "":
        return new_id(received)
    text = str(value)
    if len(text) > MAX_REQUEST_ID or not text.isprintable() or not text.isascii():
        raise InputError(f"a request id must be printable ASCII of at most {MAX_REQUEST_ID} "
                         "characters")
    return text


def checked_key(value: Any) -> str | None:
    """The request's entity key as logged (labels join on it): short printable text."""
    if value is None or value == "":
        return None
    text = str(value)
    if len(text) > MAX_KEY or not text.isprintable():
        raise InputError(f"a key must be printable text of at most {MAX_KEY} characters")
    return text


def event_time_of(value: Any, received: float) -> float:
    """Epoch seconds from a number or an ISO 8601 text (UTC unless it says otherwise);
    the receive time when absent. Years 1970-9999 only: the log is partitioned by hour."""
    if value is None or value == "":
        return received
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                seconds = moment.timestamp()
    if seconds is None:
        raise InputError(f"event time {value!r} is neither epoch seconds nor an ISO 8601 "
                         "time")
    if not 0 <= seconds <= MAX_EPOCH_SECONDS:
        raise InputError(f"event time {value!r} is outside the years 1970-9999")
    return seconds


def per_row(outputs: dict[str, np.ndarray], classes: list[Any] | None) -> list[dict[str, Any]]:
    """One prediction per record: the label and each class's probability, or the value."""
    if "probabilities" in outputs and classes is not None:
        labels = protocol.json_values(outputs["label"])
        names = [str(c) for c in classes]
        return [{"label": label, "probabilities": dict(zip(names, row, strict=True))}
                for label, row in zip(labels, outputs["probabilities"].tolist(), strict=True)]
    columns = {name: protocol.json_values(values) if values.ndim == 1 else values.tolist()
               for name, values in outputs.items()}
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _only_deployment(server: Server) -> str:
    names = list(server.replica.deployments)
    if len(names) == 1:
        return names[0]
    raise InputError(f"name the deployment (POST /v1/predict/NAME or \"deployment\" in the "
                     f"body); this server has {', '.join(sorted(names)) or 'none'}")


def status_of(exc: Exception) -> int:
    if isinstance(exc, AdminRefused):
        return exc.status
    if isinstance(exc, PredictionLogError):
        return 503  # the server's disk or log, not the request: worth a retry
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, TidalError):
        return 400
    return 500


def failure(exc: Exception) -> tuple[int, bytes, Headers]:
    """The JSON error answer for ``exc`` (a 500 only for Tidal's own bugs, logged)."""
    status = status_of(exc)
    if status == 500:
        log.exception("unexpected error while answering a request")
        return 500, protocol.error_body(f"internal error: {type(exc).__name__}"), [JSON_HEADER]
    return status, protocol.error_body(str(exc)), [JSON_HEADER]


def count(server: Server, labels: tuple[str, str, str], status: int, began: float) -> None:
    deployment, version, route = labels
    if deployment not in server.replica.deployments:  # never a label per typo
        deployment, version = "(unknown)", "?"
    server.metrics.count(deployment, version, route, status_class(status),
                         time.perf_counter() - began)
