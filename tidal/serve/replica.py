"""What one server process serves, kept in step with the store's deployments.

Every ``poll_interval`` the replica asks the store for the deployments' revision (one
cheap query). When it changed, the replica reads the deployments, loads every model
version it does not hold yet (hash-verified, in a worker thread so requests keep being
answered), and only then swaps in the new routing table in one assignment. Requests in
flight finish on the versions they started with; a request that arrives after the swap
sees the new table. So a new stable version, a canary weight or a shadow is picked up
within about one poll interval plus the load time, and no request fails during the swap.
A version that fails to load (a corrupt artifact, say) holds back only its own
deployment: that one keeps its previous routing (or stays absent if it is new), reports
the failure in ``/admin/status`` and its ``/v2/models/{name}/ready`` (503), and is retried
every ``RETRY_SECONDS``; every other deployment moves on. Failures are counted in
``tidal_model_loads_total{outcome="failed"}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidal.core.errors import NotFoundError
from tidal.runtime.loaded import LoadedModel, load_version
from tidal.serve.batcher import Batcher

if TYPE_CHECKING:
    from tidal.project import Project
    from tidal.serve.metrics import ServerMetrics

log = logging.getLogger("tidal.serve")

#: how often a deployment whose versions failed to load is tried again
RETRY_SECONDS = 30.0


@dataclass
class Served:
    """One model version as a deployment serves it: the model and its batcher, with what
    every request asks of them worked out once."""

    model: LoadedModel
    batcher: Batcher
    role: str  # stable | canary | shadow
    input_types: dict[str, str] = field(init=False)
    #: the inputs as the signature states them (two versions with equal specs take the
    #: same checked columns)
    input_spec: tuple[tuple[Any, ...], ...] = field(init=False)
    output_names: frozenset[str] = field(init=False)
    version_label: str = field(init=False)

    def __post_init__(self) -> None:
        signature = self.model.signature
        self.input_types = {i["name"]: i["datatype"] for i in signature["inputs"]}
        self.input_spec = tuple((i["name"], i["datatype"], i.get("nullable", True))
                                for i in signature["inputs"])
        self.output_names = frozenset(o["name"] for o in signature.get("outputs", []))
        self.version_label = str(self.model.version)


@dataclass
class Deployment:
    """A deployment's routing: the versions it serves and the canary's share."""

    name: str
    model: str
    revision: int
    stable: Served
    canary: Served | None = None
    canary_weight: float = 0.0
    shadow: Served | None = None
    by_version: dict[int, Served] = field(default_factory=dict)


class Replica:
    """The routing table of this process, refreshed from the store (see the module)."""

    def __init__(self, project: Project, metrics: ServerMetrics, *,
                 default_batch_size: int, default_wait_ms: float, onnx_threads: int = 1) -> None:
        self.project = project
        self.metrics = metrics
        self.default_batch_size = default_batch_size
        self.default_wait_ms = default_wait_ms
        self.onnx_threads = onnx_threads
        self.deployments: dict[str, Deployment] = {}
        self.revision = -1
        self.ready = False
        self.last_error: str | None = None
        #: deployments whose latest settings could not be loaded: name → the error
        self.failures: dict[str, str] = {}
        self._retry_at = 0.0
        self._refresh_lock = asyncio.Lock()

    def get(self, name: str) -> Deployment:
        try:
            return self.deployments[name]
        except KeyError:
            known = ", ".join(sorted(self.deployments)) or "none"
            raise NotFoundError(f"no deployment named {name!r} (serving: {known})") from None

    async def refresh(self, force: bool = False) -> bool:
        """Pick up deployment changes; True when the routing table changed."""
        async with self._refresh_lock:
            revision = await asyncio.to_thread(self.project.deployments.latest_revision)
            retry = bool(self.failures) and time.monotonic() >= self._retry_at
            if revision == self.revision and not force and not retry:
                return False
            records = await asyncio.to_thread(self.project.list_deployments)
            table, failures = await asyncio.to_thread(self._build, records)
            for name, error in failures.items():
                log.error("cannot load deployment %s at revision %s (it keeps its "
                          "previous routing): %s", name, revision, error)
            old = self.deployments
            self.deployments, self.revision, self.ready = table, revision, True
            self.failures = failures
            self._retry_at = time.monotonic() + RETRY_SECONDS
            self.last_error = "; ".join(f"{name}: {error}" for name, error
                                        in sorted(failures.items())) or None
            await self._close_unused(old, table)
            return True

    async def poll(self, interval: float) -> None:
        """Refresh forever (the server's background task)."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not stop serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("deployment poll failed: %s", exc)
            await asyncio.sleep(interval)

    # -- building a table (in a worker thread) ---------------------------------------------

    def _build(self, records: list[Any]) -> tuple[dict[str, Deployment], dict[str, str]]:
        """The new table, and the deployments that failed (they keep their old entry)."""
        table: dict[str, Deployment] = {}
        failures: dict[str, str] = {}
        for record in records:
            previous = self.deployments.get(record.name)
            try:
                table[record.name] = self._deployment(record, previous)
            except Exception as exc:  # noqa: BLE001 - one deployment never holds back others
                failures[record.name] = f"{type(exc).__name__}: {exc}"
                if previous is not None:
                    table[record.name] = previous
        return table, failures

    def _deployment(self, record: Any, previous: Deployment | None) -> Deployment:
        """One deployment's routing, reusing the versions (and batchers) it holds."""
        size = record.max_batch_size or self.default_batch_size
        wait = record.max_batch_wait_ms
        wait = self.default_wait_ms if wait is None else wait

        def served(version: int, role: str) -> Served:
            kept = previous.by_version.get(version) if previous else None
            if kept is not None and kept.batcher.max_batch_size == size \
                    and kept.batcher.max_wait_ms == wait:
                return Served(kept.model, kept.batcher, role)
            model = kept.model if kept is not None else \
                self._load(record.name, record.model, version)
            return Served(model, Batcher(model.predict, max_batch_size=size,
                                         max_wait_ms=wait,
                                         on_batch=self._on_batch(record.name, version)),
                          role)

        stable = served(record.stable_version, "stable")
        canary = served(record.canary_version, "canary") \
            if record.canary_version is not None else None
        shadow = served(record.shadow_version, "shadow") \
            if record.shadow_version is not None else None
        by_version = {s.model.version: s for s in (shadow, canary, stable) if s}
        return Deployment(record.name, record.model, record.revision, stable, canary,
                          record.canary_weight, shadow, by_version)

    def _load(self, deployment: str, model: str, version: int) -> LoadedModel:
        try:
            record = self.project.model_version(f"{model}:{version}")
            loaded = load_version(self.project.artifacts, record,
                                  onnx_threads=self.onnx_threads)
        except Exception:
            self.metrics.model_loads.labels(deployment, str(version), "failed").inc()
            raise
        self.metrics.model_loads.labels(deployment, str(version), "loaded").inc()
        log.info("loaded %s:%s for %s (%s runtime)", model, version, deployment,
                 loaded.runtime)
        return loaded

    def _on_batch(self, deployment: str, version: int) -> Any:
        return self.metrics.batch_size.labels(deployment, str(version)).observe

    async def _close_unused(self, old: dict[str, Deployment],
                            new: dict[str, Deployment]) -> None:
        kept = {id(s.batcher) for d in new.values() for s in d.by_version.values()}
        for deployment in old.values():
            for served in deployment.by_version.values():
                if id(served.batcher) not in kept:
                    await served.batcher.close()
