"""Rollouts: the record of bringing a candidate version to a deployment's traffic.

The decisions (when to step, promote or roll back) belong to :mod:`tidal.control`; this
module only writes them, each as one transaction holding the rollout's new state, the
deployment's new traffic (:func:`tidal.store.deployments.write_settings`, which also
bumps the revision the model servers poll) and an event with the reason. A rollout is
never half-applied: the servers see the traffic of a state exactly when the state is
stored.

At most one rollout per deployment is unfinished (``uq_rollouts_active``); a second
:meth:`RolloutRepository.create` is a :class:`~tidal.core.errors.ConflictError`. A
transition names the status it expects the rollout to be in, so two writers (a person
and the controller, or two controllers) cannot both move it: the second finds it moved
and gets a ConflictError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidal.core.errors import ConflictError, NotFoundError

from .database import Database
from .deployments import check_unchanged, lock_revisions, write_settings
from .events import record_event
from .models import Rollout

FINISHED = ("promoted", "rolled_back", "aborted")


@dataclass(frozen=True)
class RolloutRecord:
    id: int
    deployment: str
    model: str
    candidate_version: int
    baseline_version: int
    strategy: str
    plan: dict[str, Any]
    phase: str
    step: int
    status: str
    step_started_at: float
    inconclusive_since: float | None
    last_analysis: dict[str, Any] | None
    created_at: float
    updated_at: float
    finished_at: float | None
    actor: str | None
    reason: str | None

    @property
    def active(self) -> bool:
        return self.finished_at is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RolloutRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, fields: Mapping[str, Any], settings: dict[str, Any], *, now: float,
               actor: str | None, reason: str | None, read_revision: int,
               also: Callable[[Session, RolloutRecord], None] | None = None) -> RolloutRecord:
        """Store a new rollout (status ``running`` unless ``fields`` say otherwise) and
        set the traffic of its first state, with a ``rollout.started`` event; ``also``
        writes what must commit with it (a blue-green switch's ``@champion``).
        ``read_revision``: the deployment's revision when ``settings`` were derived from
        it; if it moved since, they are stale (ConflictError), not written over it."""
        def write(session: Session) -> RolloutRecord:
            deployment = fields["deployment"]
            lock_revisions(session)  # before the checks: see DeploymentRepository.set
            if _active(session, deployment) is not None:
                raise ConflictError(f"deployment {deployment!r} has a rollout in progress; "
                                    "finish it first (tidal rollout promote|abort)")
            check_unchanged(session, deployment, read_revision)
            row = Rollout(**{"status": "running", **fields}, created_at=now,
                          updated_at=now, actor=actor, reason=reason)
            session.add(row)
            session.flush()
            write_settings(session, deployment, settings, now=now, actor=actor,
                           reason=reason, payload={"rollout": row.id})
            record_event(session, at=now, kind="rollout.started", entity_type="deployment",
                         entity_id=deployment, actor=actor, reason=reason,
                         payload={"rollout": row.id, **_summary(row)})
            if also is not None:
                also(session, _record(row))
            return _record(row)

        try:
            return self.db.transact(write)
        except IntegrityError:  # another writer started one between our check and insert
            raise ConflictError(f"deployment {fields['deployment']!r} has a rollout in "
                                "progress") from None

    def transition(self, rollout_id: int, *, expect: tuple[str, ...], changes: Mapping[str, Any],
                   settings: dict[str, Any] | None, kind: str, now: float,
                   actor: str | None, reason: str | None,
                   payload: Mapping[str, Any] | None = None,
                   read_at: float | None = None,
                   also: Callable[[Session, RolloutRecord], None] | None = None,
                   ) -> RolloutRecord:
        """Move a rollout in status ``expect`` (else ConflictError): apply ``changes``,
        set ``settings`` as the deployment's traffic (None: leave it), and record a
        ``kind`` event. ``read_at``: the ``updated_at`` of the state the decision was
        taken on; if the rollout moved since, the decision is stale (ConflictError).
        ``also`` writes what must commit with the move (a promotion's ``@champion``)."""
        def write(session: Session) -> RolloutRecord:
            row = session.get(Rollout, rollout_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            if row.status not in expect:
                raise ConflictError(f"rollout {rollout_id} of {row.deployment!r} is "
                                    f"{row.status}, not {' or '.join(expect)}")
            _check_unmoved(row, read_at)
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = now
            if row.status in FINISHED and row.finished_at is None:
                row.finished_at = now
            if settings is not None:
                write_settings(session, row.deployment, settings, now=now, actor=actor,
                               reason=reason, payload={"rollout": row.id})
            record_event(session, at=now, kind=kind, entity_type="deployment",
                         entity_id=row.deployment, actor=actor, reason=reason,
                         payload={"rollout": row.id, **_summary(row), **(payload or {})})
            session.flush()
            if also is not None:
                also(session, _record(row))
            return _record(row)

        return self.db.transact(write)

    def note(self, rollout_id: int, changes: Mapping[str, Any], *, now: float,
             read_at: float | None = None) -> None:
        """Update bookkeeping (the last analysis, when a wait began) without an event;
        nothing when the rollout moved since ``read_at``."""
        def write(session: Session) -> None:
            row = session.get(Rollout, rollout_id, with_for_update=True)
            if row is not None and row.finished_at is None and \
                    (read_at is None or row.updated_at == read_at):
                for name, value in changes.items():
                    setattr(row, name, value)
                row.updated_at = now

        self.db.transact(write)

    def active(self, deployment: str) -> RolloutRecord | None:
        with self.db.read() as session:
            row = _active(session, deployment)
            return None if row is None else _record(row)

    def all_active(self) -> list[RolloutRecord]:
        with self.db.read() as session:
            return [_record(r) for r in session.scalars(
                select(Rollout).where(Rollout.finished_at.is_(None)).order_by(Rollout.id))]

    def get(self, rollout_id: int) -> RolloutRecord:
        with self.db.read() as session:
            row = session.get(Rollout, rollout_id)
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            return _record(row)

    def history(self, deployment: str, limit: int = 20) -> list[RolloutRecord]:
        """The deployment's rollouts, newest first."""
        with self.db.read() as session:
            return [_record(r) for r in session.scalars(
                select(Rollout).where(Rollout.deployment == deployment)
                .order_by(Rollout.id.desc()).limit(limit))]


def _check_unmoved(row: Rollout, read_at: float | None) -> None:
    if read_at is not None and row.updated_at != read_at:
        raise ConflictError(f"rollout {row.id} of {row.deployment!r} moved while this "
                            "decision was taken; look again (tidal rollout status)")


def _active(session: Session, deployment: str) -> Rollout | None:
    return session.scalar(select(Rollout).where(Rollout.deployment == deployment,
                                                Rollout.finished_at.is_(None)))


def _summary(row: Rollout) -> dict[str, Any]:
    return {"model": row.model, "candidate": row.candidate_version,
            "baseline": row.baseline_version, "strategy": row.strategy, "phase": row.phase,
            "step": row.step, "status": row.status}


def _record(row: Rollout) -> RolloutRecord:
    return RolloutRecord(
        row.id, row.deployment, row.model, row.candidate_version, row.baseline_version,
        row.strategy, row.plan, row.phase, row.step, row.status, row.step_started_at,
        row.inconclusive_since, row.last_analysis, row.created_at, row.updated_at,
        row.finished_at, row.actor, row.reason)
