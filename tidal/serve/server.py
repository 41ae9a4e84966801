"""The state one server process shares between requests, and the prediction path.

:class:`Server` holds the project, the replica (what is served), the prediction log and
the metrics. :meth:`Server.predict` is the path every prediction takes: check the inputs
against the version's signature, wait for the batcher, write the prediction record (in
"acknowledged" durability the record is on disk before this returns), and mirror the
request to the shadow version, if any, off the response path.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import os
import time
from typing import Any

import numpy as np

from tidal.core.errors import NotFoundError, TidalError
from tidal.runtime.inputs import check_columns
from tidal.serve.metrics import ServerMetrics
from tidal.serve.predlog import PredictionLog, PredictionLogError, PredictionRecord
from tidal.serve.replica import Deployment, Replica, Served
from tidal.serve.router import CANARY, SHADOW, choose_route


class AdminRefused(TidalError):
    """A missing or wrong admin token (``status`` is 401 or 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Server:
    """What the endpoints share: the project, the replica, the log, the metrics."""

    def __init__(self, project: Any) -> None:
        self.project = project
        self.config = project.settings.serve
        self.metrics = ServerMetrics.create(self.config.latency_objective_ms / 1000.0)
        self.replica = Replica(project, self.metrics,
                               default_batch_size=self.config.max_batch_size,
                               default_wait_ms=self.config.max_batch_wait_ms,
                               onnx_threads=self.config.onnx_threads)
        self.log = PredictionLog(self.config.log_path(project.settings.project_dir),
                                 durability=self.config.durability,
                                 flush_interval=self.config.flush_interval)
        self.admin_token = os.environ.get(self.config.admin_token_env) or None
        self.feedback_token = os.environ.get(self.config.feedback_token_env) or None
        self._poller: asyncio.Task[None] | None = None
        self._shadows: set[asyncio.Task[None]] = set()
        self._in_flight = 0  # requests between the batcher and their logged record

    async def start(self) -> None:
        self.log.start()
        await self.replica.refresh(force=True)
        # Move everything loaded so far (libraries, models) out of the garbage collector's
        # view: a full collection would otherwise walk it all, a pause of tens of
        # milliseconds every few thousand requests (visible as the p99).
        gc.collect()
        gc.freeze()
        self._poller = asyncio.create_task(self.replica.poll(self.config.poll_interval))

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._shadows:
            await asyncio.gather(*self._shadows, return_exceptions=True)
        for batcher in {id(s.batcher): s.batcher for d in self.replica.deployments.values()
                        for s in d.by_version.values()}.values():
            await batcher.close()
        await asyncio.to_thread(self.log.close)

    def check(self, served: Served, columns: dict[str, Any]) -> dict[str, np.ndarray]:
        """The request's columns checked against the version's signature (InputError)."""
        return check_columns(served.model.signature, columns, max_rows=self.config.max_rows)

    async def predict(self, deployment: Deployment, served: Served,
                      checked: dict[str, np.ndarray], *, request_id: str, event_time: float,
                      received: float, began: float, key: str | None = None
                      ) -> dict[str, np.ndarray]:
        """Batch, predict, log, mirror to the shadow; returns the outputs. ``checked`` comes
        from :meth:`check` (or :func:`~tidal.runtime.inputs.columns_from_records`)."""
        self._in_flight += 1
        try:
            return await self._predict(deployment, served, checked, request_id=request_id,
                                       event_time=event_time, received=received,
                                       began=began, key=key)
        finally:
            self._in_flight -= 1

    async def _predict(self, deployment: Deployment, served: Served,
                       checked: dict[str, np.ndarray], *, request_id: str,
                       event_time: float, received: float, began: float,
                       key: str | None) -> dict[str, np.ndarray]:
        rows = len(next(iter(checked.values())))
        outputs = await served.batcher.submit(checked, rows)
        record = make_record(deployment, served, checked, outputs, request_id=request_id,
                             event_time=event_time, received=received,
                             latency_ms=(time.perf_counter() - began) * 1000, key=key)
        if deployment.shadow is not None and served.role != SHADOW:
            task = asyncio.create_task(self._shadow(deployment, served, checked, rows, record))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)
        # alone: no other request is being predicted or logged, so there is nobody to
        # share an fsync with; the log then syncs on this thread (see PredictionLog.write)
        await self.log.write([record], alone=self._in_flight == 1)
        return outputs

    async def _shadow(self, deployment: Deployment, primary_served: Served,
                      columns: dict[str, np.ndarray], rows: int,
                      primary: PredictionRecord) -> None:
        """Mirror a request to the shadow version: logged, never returned, never fatal.
        Its columns are checked again only when its signature's inputs differ."""
        shadow = deployment.shadow
        assert shadow is not None
        version = str(shadow.model.version)
        began = time.perf_counter()
        try:
            checked = columns if shadow.input_spec == primary_served.input_spec else \
                check_columns(shadow.model.signature, columns)
            outputs = await shadow.batcher.submit(checked, rows)
        except Exception as exc:  # noqa: BLE001 - the shadow's failure is counted and logged
            status = "4xx" if isinstance(exc, TidalError) else "5xx"
            self.metrics.count(deployment.name, version, SHADOW, status)
            self._log_shadow_failure(deployment, shadow, primary, status, exc, began)
            return
        self.metrics.count(deployment.name, version, SHADOW, "2xx",
                           time.perf_counter() - began)
        self.log.write_nowait([make_record(
            deployment, shadow, checked, outputs, request_id=primary.request_id,
            event_time=primary.event_time, received=primary.received_at,
            latency_ms=(time.perf_counter() - began) * 1000, key=primary.key)])

    def _log_shadow_failure(self, deployment: Deployment, shadow: Served,
                            primary: PredictionRecord, status: str, exc: Exception,
                            began: float) -> None:
        """A shadow's failure in the log (no rows; its status and error), so a rollout's
        shadow analysis sees a candidate that crashes where the stable one answers."""
        try:
            self.log.write_nowait([PredictionRecord(
                request_id=primary.request_id, event_time=primary.event_time,
                deployment=deployment.name, model=deployment.model,
                version=shadow.model.version, route=SHADOW, inputs={}, outputs={},
                latency_ms=(time.perf_counter() - began) * 1000,
                received_at=primary.received_at, key=primary.key,
                status=400 if status == "4xx" else 500, error=str(exc)[:200])])
        except PredictionLogError:
            return  # the log is closing or broken: the primary's write reports that

    def choose(self, deployment: Deployment, key: str | None,
               version: str | None = None) -> Served:
        """The version that answers: the one named in the path, else by the canary split."""
        if version is not None:
            try:  # the protocol's versions are strings: "1" names version 1, "01" none
                if not (version.isascii() and version.isdigit() and version[0] != "0"):
                    raise ValueError(version)
                return deployment.by_version[int(version)]
            except (ValueError, KeyError):
                served = ", ".join(str(v) for v in sorted(deployment.by_version))
                raise NotFoundError(f"deployment {deployment.name!r} does not serve version "
                                    f"{version!r} (it serves {served})") from None
        route = choose_route(deployment.canary_weight, deployment.canary is not None, key)
        return deployment.canary if route == CANARY and deployment.canary else \
            deployment.stable

    def check_admin(self, authorization: str | None) -> None:
        """Refuse an admin call without the right bearer token (constant-time compare)."""
        if self.admin_token is None:
            raise AdminRefused(f"admin endpoints are disabled: set "
                               f"{self.config.admin_token_env} for the server", 403)
        _check_bearer(authorization, [self.admin_token], "admin endpoints")

    def check_feedback(self, authorization: str | None) -> None:
        """Refuse a label without the feedback token or the admin token: labels become
        training data, so writing them is not open to anyone who can reach the port."""
        tokens = [t for t in (self.feedback_token, self.admin_token) if t]
        if not tokens:
            raise AdminRefused(f"feedback is disabled: set {self.config.feedback_token_env} "
                               f"(or {self.config.admin_token_env}) for the server", 403)
        _check_bearer(authorization, tokens, "/v1/feedback")


def _check_bearer(authorization: str | None, tokens: list[str], what: str) -> None:
    given = authorization or ""
    token = given[7:] if given[:7].lower() == "bearer " else ""
    matched = False
    for expected in tokens:  # every token compared, in constant time each
        matched |= hmac.compare_digest(token.encode(), expected.encode())
    if not matched:
        raise AdminRefused(f"{what} need 'Authorization: Bearer <token>'", 401)


def make_record(deployment: Deployment, served: Served, columns: dict[str, np.ndarray],
                outputs: dict[str, np.ndarray], *, request_id: str, event_time: float,
                received: float, latency_ms: float, key: str | None = None
                ) -> PredictionRecord:
    """The prediction record of one request. The columns stay numpy arrays: orjson writes
    them without making a Python object per value (NaN becomes null, i.e. missing)."""
    return PredictionRecord(
        request_id=request_id, event_time=event_time, deployment=deployment.name,
        model=deployment.model, version=served.model.version, route=served.role,
        inputs=columns, outputs=outputs,  # type: ignore[arg-type]
        latency_ms=latency_ms, received_at=received, key=key)
