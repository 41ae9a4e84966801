"""Plain views of stored records, returned by the repositories.

They are detached snapshots: changing one changes nothing in the store. They are slotted
but not frozen, because a search builds hundreds of them and a frozen dataclass pays an
``object.__setattr__`` per field. They turn into JSON with ``to_dict()`` for the CLI's
``--json`` output and, later, the HTTP API.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple


def _json_number(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return value


@dataclass(frozen=True)
class ExperimentRecord:
    id: str
    name: str
    created_at: float
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MetricPoint(NamedTuple):
    """One metric point (a tuple: searches build thousands of them)."""

    key: str
    value: float
    step: int
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": _json_number(self.value), "step": self.step,
                "timestamp": self.timestamp}


@dataclass(frozen=True)
class ArtifactRecord:
    name: str
    sha256: str
    size: int
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RunRecord:
    id: str
    experiment_id: str
    experiment: str
    name: str | None
    status: str
    start_time: float
    end_time: float | None
    actor: str | None
    source: str | None
    git_commit: str | None
    git_dirty_hash: str | None
    python_version: str | None
    packages: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    #: the latest point of each metric key
    metrics: dict[str, MetricPoint] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[ArtifactRecord] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def metric(self, key: str) -> float | None:
        point = self.metrics.get(key)
        return None if point is None else point.value

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # MetricPoint tuples become lists here; replaced just below
        data["metrics"] = {k: p.to_dict() for k, p in self.metrics.items()}
        data["artifacts"] = [a.to_dict() for a in self.artifacts]
        data["duration"] = self.duration
        return data


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    description: str | None
    created_at: float
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VersionRecord:
    id: str
    model: str
    version: int
    artifact_sha256: str
    artifact_size: int
    flavor: str
    status: str
    signature: dict[str, Any] | None
    metrics: dict[str, Any] | None
    run_id: str | None
    dataset_hash: str | None
    code_commit: str | None
    description: str | None
    actor: str | None
    created_at: float
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EventRecord:
    id: int
    at: float
    kind: str
    entity_type: str
    entity_id: str
    actor: str | None
    reason: str | None
    payload: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class StepRunRecord:
    """One execution of a pipeline step (or a cache hit standing in for one)."""

    id: str
    pipeline_run_id: str
    step: str
    cache_key: str
    code_hash: str
    params: dict[str, Any]
    #: ``[{"name": ..., "sha256": ...}, ...]`` in the step's argument order
    inputs: list[dict[str, str]]
    output_sha256: str | None
    output_size: int | None
    status: str
    cached: bool
    started_at: float
    ended_at: float
    duration: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class PipelineRunRecord:
    id: str
    name: str
    status: str
    params: dict[str, Any]
    code_commit: str | None
    code_dirty_hash: str | None
    actor: str | None
    run_id: str | None
    started_at: float
    ended_at: float | None
    error: str | None = None
    #: its step runs, in the order they started
    steps: list[StepRunRecord] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = self.duration
        return data


@dataclass(frozen=True)
class DeploymentRecord:
    """What a deployment serves: versions of one model and how traffic is split."""

    name: str
    model: str
    stable_version: int
    canary_version: int | None
    #: share of requests (0.0 to 1.0) answered by the canary version
    canary_weight: float
    #: version that sees a copy of every request; its answers are logged, never returned
    shadow_version: int | None
    #: None: the model server's default
    max_batch_size: int | None
    max_batch_wait_ms: float | None
    #: the deployment revision counter when this deployment was last written; the counter
    #: (``DeploymentRepository.latest_revision``) only ever grows, across all deployments
    revision: int
    created_at: float
    updated_at: float
    updated_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
