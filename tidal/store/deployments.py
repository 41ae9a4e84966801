"""Deployments: which versions of a registered model each named endpoint serves.

A deployment routes requests to a **stable** version, a share of them (``canary_weight``)
to an optional **canary** version, and mirrors every request to an optional **shadow**
version whose answers are logged but never returned. It also carries the batching
settings of the replicas that serve it.

Model servers poll :meth:`DeploymentRepository.latest_revision`: one primary-key read of
a one-row counter that every write (set or delete, of any deployment) increments inside
its own transaction. The counter only grows, so "has anything changed since revision N"
is one cheap comparison, and a deletion is noticed although it leaves no row behind.
Each written deployment row records the counter value of its last write.

Writes are serialised by the counter row itself: a write locks it first (``SELECT ...
FOR UPDATE`` on PostgreSQL; on SQLite the write transaction's ``BEGIN IMMEDIATE``
already excludes other writers), so two concurrent writers never read the same value
and never race on a new deployment's row. Every change writes an event in the same
transaction, with the settings before and after.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidal.core import validate
from tidal.core.errors import ConflictError, NotFoundError, ValidationError

from .database import Database, store_errors
from .events import record_event
from .models import (
    Deployment,
    DeploymentRevision,
    Event,
    ModelVersion,
    RegisteredModel,
    Rollout,
)
from .records import DeploymentRecord, EventRecord

#: deployment names are model-name-like but at most this long (they are event entity ids)
NAME_LIMIT = 64
_COUNTER_ID = 1
_LATEST = select(DeploymentRevision.revision).where(DeploymentRevision.id == _COUNTER_ID)
#: the fields a deployment's events compare before and after
SETTINGS = ("model", "stable_version", "canary_version", "canary_weight", "shadow_version",
            "max_batch_size", "max_batch_wait_ms")


class DeploymentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -------------------------------------------------------------------------
    def set(
        self,
        name: str,
        *,
        model: str,
        stable_version: int,
        canary_version: int | None = None,
        canary_weight: float = 0.0,
        shadow_version: int | None = None,
        max_batch_size: int | None = None,
        max_batch_wait_ms: float | None = None,
        now: float,
        actor: str | None,
        reason: str | None,
    ) -> DeploymentRecord:
        """Create or replace deployment ``name`` (every setting is replaced, none kept).

        Setting exactly what is already deployed changes nothing: no revision, no event.
        """
        wanted = check_settings(name, model=model, stable_version=stable_version,
                                canary_version=canary_version, canary_weight=canary_weight,
                                shadow_version=shadow_version, max_batch_size=max_batch_size,
                                max_batch_wait_ms=max_batch_wait_ms)
        def write(session: Session) -> DeploymentRecord:
            # the counter first: a rollout starting now either committed before this
            # lock (and is seen below) or waits for this change (and sees it)
            lock_revisions(session)
            _refuse_during_rollout(session, name, "changing")
            return write_settings(session, name, wanted, now=now, actor=actor, reason=reason)

        return self._transact(write)

    def delete(self, name: str, *, now: float, actor: str | None, reason: str | None) -> None:
        """Remove deployment ``name``; its events stay, and the revision moves on."""
        check_deployment_name(name)

        def write(session: Session) -> None:
            counter = lock_revisions(session)
            row = session.get(Deployment, name)
            if row is None:
                raise NotFoundError(f"no deployment named {name!r}")
            _refuse_during_rollout(session, name, "deleting")
            before = _settings(row, _model_name(session, row))
            revision = _bump(counter)
            session.delete(row)
            record_event(
                session, at=now, kind="deployment_deleted", entity_type="deployment",
                entity_id=name, actor=actor, reason=reason,
                payload={"deployment": name, "revision": revision, "before": before,
                         "after": None},
            )

        self._transact(write)

    # -- reading -------------------------------------------------------------------------
    def get(self, name: str) -> DeploymentRecord:
        check_deployment_name(name)
        with self.db.read() as session:
            found = session.execute(
                select(Deployment, RegisteredModel.name)
                .join(RegisteredModel, RegisteredModel.id == Deployment.model_id)
                .where(Deployment.name == name)
            ).first()
            if found is None:
                raise NotFoundError(f"no deployment named {name!r}")
            return _record(found[0], found[1])

    def list(self) -> list[DeploymentRecord]:
        """Every deployment, by name."""
        with self.db.read() as session:
            rows = session.execute(
                select(Deployment, RegisteredModel.name)
                .join(RegisteredModel, RegisteredModel.id == Deployment.model_id)
                .order_by(Deployment.name)
            )
            return [_record(row, model) for row, model in rows]

    def latest_revision(self) -> int:
        """The deployment revision counter: 0 before the first write, then one more per
        set or delete of any deployment. One primary-key read (servers poll it)."""
        self.db.ensure_schema()
        with store_errors(self.db.url), self.db.engine.connect() as connection:
            return _read_counter(connection)

    def history(self, name: str, limit: int = 20) -> list[EventRecord]:
        """The newest ``limit`` events of deployment ``name`` (including those of earlier
        deployments of that name), oldest first."""
        check_deployment_name(name)
        with self.db.read() as session:
            rows = list(session.scalars(
                select(Event).where(Event.entity_type == "deployment", Event.entity_id == name)
                .order_by(Event.id.desc()).limit(limit)))
        return [EventRecord(e.id, e.at, e.kind, e.entity_type, e.entity_id, e.actor, e.reason,
                            e.payload) for e in reversed(rows)]

    # -- helpers --------------------------------------------------------------------------
    def _transact(self, write: Any) -> Any:
        try:
            return self.db.transact(write)
        except IntegrityError:  # the counter row was missing and another writer added it
            return self.db.transact(write)


def check_settings(name: str, *, model: str, stable_version: int,
                   canary_version: int | None = None, canary_weight: float = 0.0,
                   shadow_version: int | None = None, max_batch_size: int | None = None,
                   max_batch_wait_ms: float | None = None) -> dict[str, Any]:
    """A deployment's settings, checked (ValidationError naming the setting)."""
    check_deployment_name(name)
    validate.check_model_name(model)
    stable = _version_number("stable", stable_version)
    canary = _version_number("canary", canary_version, optional=True)
    shadow = _version_number("shadow", shadow_version, optional=True)
    weight = _canary_weight(canary_weight)
    if weight > 0 and canary is None:
        raise ValidationError(
            f"a canary weight of {weight:g} needs a canary version; give one, or leave "
            "the weight at 0"
        )
    for role, number in (("canary", canary), ("shadow", shadow)):
        if number is not None and number == stable:
            raise ValidationError(
                f"the {role} version must differ from the stable one ({model}:{stable})")
    if canary is not None and canary == shadow:
        raise ValidationError(f"the shadow version must differ from the canary "
                              f"({model}:{canary}): a version has one role")
    return {"model": model, "stable_version": stable, "canary_version": canary,
            "canary_weight": weight, "shadow_version": shadow,
            "max_batch_size": _batch_size(max_batch_size),
            "max_batch_wait_ms": _batch_wait(max_batch_wait_ms)}


def write_settings(session: Session, name: str, wanted: dict[str, Any], *, now: float,
                   actor: str | None, reason: str | None,
                   payload: dict[str, Any] | None = None) -> DeploymentRecord:
    """Write checked settings (:func:`check_settings`) in the caller's transaction, with
    a ``deployment_set`` event (``payload`` adds to its payload): so a rollout's state and
    the traffic it sets commit together. Writing what is there already changes nothing."""
    counter = lock_revisions(session)
    model, stable = wanted["model"], wanted["stable_version"]
    canary, shadow = wanted["canary_version"], wanted["shadow_version"]
    model_row = session.scalar(select(RegisteredModel).where(RegisteredModel.name == model))
    if model_row is None:
        raise NotFoundError(f"no registered model named {model!r}")
    numbers = {n for n in (stable, canary, shadow) if n is not None}
    found = set(session.scalars(select(ModelVersion.version).where(
        ModelVersion.model_id == model_row.id, ModelVersion.version.in_(numbers))))
    for role, number in (("stable", stable), ("canary", canary), ("shadow", shadow)):
        if number is not None and number not in found:
            raise NotFoundError(f"model {model!r} has no version {number} (the "
                                f"{role} version of deployment {name!r})")
    row = session.get(Deployment, name)
    before = None if row is None else _settings(row, _model_name(session, row))
    if before == wanted:
        assert row is not None
        return _record(row, model)  # a non-change: no revision, no event
    revision = _bump(counter)
    if row is None:
        row = Deployment(name=name, created_at=now)
        session.add(row)
    row.model_id = model_row.id
    row.stable_version, row.canary_version = stable, canary
    row.canary_weight, row.shadow_version = wanted["canary_weight"], shadow
    row.max_batch_size = wanted["max_batch_size"]
    row.max_batch_wait_ms = wanted["max_batch_wait_ms"]
    row.revision, row.updated_at, row.updated_by = revision, now, actor
    record_event(
        session, at=now, kind="deployment_set", entity_type="deployment",
        entity_id=name, actor=actor, reason=reason,
        payload={"deployment": name, "revision": revision, "before": before,
                 "after": wanted, **(payload or {})},
    )
    session.flush()
    return _record(row, model)


def check_deployment_name(name: Any) -> str:
    """Like a model name (letters, digits, ``_ . -``, starting with a letter or digit),
    at most 64 characters."""
    if (not isinstance(name, str) or not validate.MODEL_NAME_PATTERN.match(name)
            or len(name) > NAME_LIMIT):
        raise ValidationError(
            f"invalid deployment name {name!r}: start with a letter or digit, then up to "
            f"{NAME_LIMIT - 1} letters, digits or _ . -"
        )
    return name


def hold_unchanged(session: Session, name: str, revision: int | None,
                   doing: str = "changing") -> None:
    """Lock the revision counter for this transaction, then make sure no rollout owns
    deployment ``name`` and that it is still at ``revision`` (None: must not exist): a
    decision taken on a deployment read earlier must not overwrite a change made since
    (ConflictError)."""
    lock_revisions(session)
    _refuse_during_rollout(session, name, doing)
    check_unchanged(session, name, revision)


def check_unchanged(session: Session, name: str, revision: int | None) -> None:
    """ConflictError unless deployment ``name`` is still at ``revision`` (the caller holds
    the revision counter's lock, so it cannot move before the transaction ends)."""
    row = session.get(Deployment, name)
    if (None if row is None else row.revision) != revision:
        raise ConflictError(f"deployment {name!r} changed while this was decided; look at "
                            "it again (tidal deployments show) and retry")


def _refuse_during_rollout(session: Session, name: str, doing: str) -> None:
    """A rollout owns its deployment's traffic until it ends: a change by hand would be
    overwritten at its next step (or strand it)."""
    rollout = session.scalar(select(Rollout.id).where(Rollout.deployment == name,
                                                      Rollout.finished_at.is_(None)))
    if rollout is not None:
        raise ConflictError(f"deployment {name!r} has rollout {rollout} in progress; "
                            f"finish it before {doing} the deployment (tidal rollout "
                            "promote|abort)")


def lock_revisions(session: Session) -> DeploymentRevision:
    """Lock the revision counter's row for the rest of this transaction and return it."""
    counter = session.scalar(
        select(DeploymentRevision).where(DeploymentRevision.id == _COUNTER_ID).with_for_update())
    if counter is None:  # a store whose counter row went missing: start it again
        counter = DeploymentRevision(id=_COUNTER_ID, revision=0)
        session.add(counter)
        session.flush()
    return counter


def _bump(counter: DeploymentRevision) -> int:
    counter.revision += 1
    return counter.revision


def _read_counter(connection: Connection) -> int:
    return connection.execute(_LATEST).scalar() or 0


def _model_name(session: Session, row: Deployment) -> str:
    return session.scalar(
        select(RegisteredModel.name).where(RegisteredModel.id == row.model_id)) or ""


def _settings(row: Deployment, model: str) -> dict[str, Any]:
    return {"model": model, "stable_version": row.stable_version,
            "canary_version": row.canary_version, "canary_weight": row.canary_weight,
            "shadow_version": row.shadow_version, "max_batch_size": row.max_batch_size,
            "max_batch_wait_ms": row.max_batch_wait_ms}


def _record(row: Deployment, model: str) -> DeploymentRecord:
    return DeploymentRecord(
        name=row.name, model=model, stable_version=row.stable_version,
        canary_version=row.canary_version, canary_weight=row.canary_weight,
        shadow_version=row.shadow_version, max_batch_size=row.max_batch_size,
        max_batch_wait_ms=row.max_batch_wait_ms, revision=row.revision,
        created_at=row.created_at, updated_at=row.updated_at, updated_by=row.updated_by,
    )


def _version_number(role: str, value: Any, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ValidationError(f"the {role} version must be a version number (1, 2, ...), "
                              f"got {value!r}")
    return int(value)


def _canary_weight(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value)
            or not 0 <= value <= 1):
        raise ValidationError(f"the canary weight is the share of requests sent to the "
                              f"canary: a number from 0 to 1, got {value!r}")
    return float(value)


def _batch_size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or not 1 <= value <= 2**31 - 1:
        raise ValidationError(f"max_batch_size must be a whole number of at least 1, got "
                              f"{value!r}")
    return int(value)


def _batch_wait(value: Any) -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value)
            or value < 0):
        raise ValidationError(f"max_batch_wait_ms must be a number of milliseconds of at "
                              f"least 0, got {value!r}")
    return float(value)
