"""The model registry: models, numbered versions, aliases, statuses and their history.

A version is immutable once registered, except for its status. Aliases (``champion``,
``challenger``, any name) point at one version each. Every registration, alias move and
status change writes an event in the same transaction, so the history can always say
which version was champion when, who moved it, and why.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidal.core import validate
from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.core.hashing import is_sha256
from tidal.core.ids import new_id

from .database import Database
from .events import list_events, record_event
from .models import ModelAlias, ModelVersion, RegisteredModel, Run
from .records import EventRecord, ModelRecord, VersionRecord

STATUSES = ("registered", "blessed", "vetoed", "archived")
#: statuses an alias may not point at unless forced
UNSERVABLE = ("vetoed", "archived")
_REF = re.compile(r"^(?P<name>[^:@]+)(?::(?P<version>\d+|latest)|@(?P<alias>[^:@]+))?\Z")


class RegistryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -------------------------------------------------------------------------
    def register_version(
        self,
        name: str,
        *,
        artifact_sha256: str,
        artifact_size: int,
        flavor: str,
        now: float,
        actor: str | None = None,
        signature: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        run_id: str | None = None,
        dataset_hash: str | None = None,
        code_commit: str | None = None,
        description: str | None = None,
        reason: str | None = None,
    ) -> VersionRecord:
        """Register the next version of ``name`` (creating the model on first use)."""
        validate.check_model_name(name)
        if not is_sha256(artifact_sha256):
            raise ValidationError(f"artifact_sha256 must be a sha256 hex digest, got "
                                  f"{artifact_sha256!r}")
        if dataset_hash is not None and not is_sha256(dataset_hash):
            raise ValidationError(f"dataset_hash must be a sha256 hex digest, got {dataset_hash!r}")
        metrics = json_safe(metrics, "metrics")
        signature = json_safe(signature, "signature")

        def write(session: Session) -> str:
            # the model row is created in the same transaction as its first version, so a
            # failed registration leaves no empty model behind
            model_id = session.scalar(
                select(RegisteredModel.id).where(RegisteredModel.name == name).with_for_update()
            )
            if model_id is None:
                model_id = new_id(now)
                session.add(RegisteredModel(id=model_id, name=name, created_at=now))
                session.flush()
            if run_id is not None and session.get(Run, run_id) is None:
                raise NotFoundError(f"no run with id {run_id!r} to link the model version to")
            number = (session.scalar(
                select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model_id)
            ) or 0) + 1
            version_id = new_id(now)
            session.add(ModelVersion(
                id=version_id, model_id=model_id, version=number,
                artifact_sha256=artifact_sha256, artifact_size=artifact_size, flavor=flavor,
                signature=signature, metrics=metrics, run_id=run_id, dataset_hash=dataset_hash,
                code_commit=code_commit, status="registered", description=description,
                actor=actor, created_at=now,
            ))
            record_event(
                session, at=now, kind="version_registered", entity_type="model",
                entity_id=model_id, actor=actor, reason=reason,
                payload={"model": name, "version": number, "artifact_sha256": artifact_sha256,
                         "run_id": run_id},
            )
            return version_id

        try:
            version_id = self.db.transact(write)
        except IntegrityError:  # another process created the model first: now it exists
            version_id = self.db.transact(write)
        with self.db.read() as session:
            return self._version_record(session, session.get(ModelVersion, version_id))

    def set_alias(
        self, name: str, alias: str, version: int, *, now: float, actor: str | None,
        reason: str | None = None, force: bool = False,
    ) -> VersionRecord:
        """Point ``alias`` at ``version`` (moving it if it pointed elsewhere)."""
        validate.check_alias(alias)
        if alias == "latest":
            raise ValidationError("'latest' is reserved: it always means the newest version")

        def write(session: Session) -> str:
            return self.write_alias(session, name, alias, version, now=now, actor=actor,
                                    reason=reason, force=force)

        version_id = self.db.transact(write)
        with self.db.read() as session:
            return self._version_record(session, session.get(ModelVersion, version_id))

    def write_alias(self, session: Session, name: str, alias: str, version: int, *,
                    now: float, actor: str | None, reason: str | None = None,
                    force: bool = False) -> str:
        """:meth:`set_alias` inside the caller's transaction (a rollout's promotion and
        the ``@champion`` it earns commit together); returns the version's row id."""
        model = self._model(session, name, lock=True)
        target = self._version_row(session, model, version)
        if target.status in UNSERVABLE and not force:
            raise ConflictError(
                f"{name}:{version} is {target.status}; pointing {alias!r} at it needs "
                "force (--force on the command line)"
            )
        current = session.get(ModelAlias, (model.id, alias))
        previous = None
        if current is not None:
            previous = session.get(ModelVersion, current.version_id)
            if current.version_id == target.id:
                return target.id  # already there: no event for a non-change
            current.version_id = target.id
            current.updated_at = now
        else:
            session.add(ModelAlias(model_id=model.id, alias=alias, version_id=target.id,
                                   updated_at=now))
        record_event(
            session, at=now, kind="alias_set", entity_type="model", entity_id=model.id,
            actor=actor, reason=reason,
            payload={"model": name, "alias": alias, "version": version,
                     "previous_version": previous.version if previous else None},
        )
        return target.id

    def alias_target(self, session: Session, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, read in the caller's transaction."""
        model = self._model(session, name)
        current = session.get(ModelAlias, (model.id, alias))
        row = None if current is None else session.get(ModelVersion, current.version_id)
        return None if row is None else row.version

    def is_servable(self, session: Session, name: str, version: int) -> bool:
        """Whether ``name:version`` may carry an alias without force."""
        return self._version_row(session, self._model(session, name),
                                 version).status not in UNSERVABLE

    def remove_alias(
        self, name: str, alias: str, *, now: float, actor: str | None, reason: str | None = None
    ) -> None:
        validate.check_alias(alias)

        def write(session: Session) -> None:
            model = self._model(session, name, lock=True)
            current = session.get(ModelAlias, (model.id, alias))
            if current is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            previous = session.get(ModelVersion, current.version_id)
            session.execute(delete(ModelAlias).where(
                ModelAlias.model_id == model.id, ModelAlias.alias == alias))
            record_event(
                session, at=now, kind="alias_removed", entity_type="model", entity_id=model.id,
                actor=actor, reason=reason,
                payload={"model": name, "alias": alias,
                         "previous_version": previous.version if previous else None},
            )

        self.db.transact(write)

    def set_status(
        self, name: str, version: int, status: str, *, now: float, actor: str | None,
        reason: str | None = None, force: bool = False,
    ) -> VersionRecord:
        """Change a version's status. Vetoing or archiving a version that an alias still
        points at is refused unless forced: the alias would keep serving it."""
        if status not in STATUSES:
            raise ValidationError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")

        def write(session: Session) -> str:
            model = self._model(session, name, lock=True)
            row = self._version_row(session, model, version)
            if row.status == status:
                return row.id
            if status in UNSERVABLE and not force:
                aliases = list(session.scalars(
                    select(ModelAlias.alias).where(ModelAlias.version_id == row.id)))
                if aliases:
                    pointing = ", ".join(f"@{a}" for a in sorted(aliases))
                    raise ConflictError(
                        f"{name}:{version} is still {pointing}; move or remove the alias "
                        f"first, or force it (--force) to mark it {status} anyway"
                    )
            previous, row.status = row.status, status
            record_event(
                session, at=now, kind="status_changed", entity_type="model",
                entity_id=model.id, actor=actor, reason=reason,
                payload={"model": name, "version": version, "from": previous, "to": status},
            )
            return row.id

        version_id = self.db.transact(write)
        with self.db.read() as session:
            return self._version_record(session, session.get(ModelVersion, version_id))

    # -- reading -------------------------------------------------------------------------
    def get_version(self, ref: str) -> VersionRecord:
        """Resolve ``name``, ``name:3``, ``name:latest`` or ``name@champion``."""
        name, version, alias = parse_ref(ref)
        with self.db.read() as session:
            model = self._model(session, name)
            if alias is not None:
                row = session.get(ModelAlias, (model.id, alias))
                if row is None:
                    raise NotFoundError(f"model {name!r} has no alias {alias!r}")
                return self._version_record(session, session.get(ModelVersion, row.version_id))
            if version is None:
                version = session.scalar(
                    select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
                )
                if version is None:
                    raise NotFoundError(f"model {name!r} has no versions yet")
            return self._version_record(session, self._version_row(session, model, version))

    def list_models(self) -> list[ModelRecord]:
        with self.db.read() as session:
            latest = dict(session.execute(
                select(ModelVersion.model_id, func.max(ModelVersion.version))
                .group_by(ModelVersion.model_id)
            ).all())
            aliases: dict[str, dict[str, int]] = {}
            for model_id, alias, number in session.execute(
                select(ModelAlias.model_id, ModelAlias.alias, ModelVersion.version)
                .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
                .order_by(ModelAlias.alias)
            ):
                aliases.setdefault(model_id, {})[alias] = number
            return [
                ModelRecord(m.id, m.name, m.description, m.created_at, latest.get(m.id),
                            aliases.get(m.id, {}))
                for m in session.scalars(select(RegisteredModel).order_by(RegisteredModel.name))
            ]

    def list_versions(self, name: str) -> list[VersionRecord]:
        with self.db.read() as session:
            model = self._model(session, name)
            rows = session.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model.id)
                .order_by(ModelVersion.version)
            )
            return [self._version_record(session, row) for row in rows]

    def history(self, name: str) -> list[EventRecord]:
        """Every registration, alias move and status change of a model, oldest first."""
        with self.db.read() as session:
            model_id = self._model(session, name).id
        return list_events(self.db, entity_type="model", entity_id=model_id, limit=100_000)

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _model(session: Session, name: str, lock: bool = False) -> RegisteredModel:
        query = select(RegisteredModel).where(RegisteredModel.name == name)
        if lock:
            query = query.with_for_update()
        model = session.scalar(query)
        if model is None:
            raise NotFoundError(f"no registered model named {name!r}")
        return model

    @staticmethod
    def _version_row(session: Session, model: RegisteredModel, version: int) -> ModelVersion:
        row = session.scalar(select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version))
        if row is None:
            raise NotFoundError(f"model {model.name!r} has no version {version}")
        return row

    @staticmethod
    def _version_record(session: Session, row: ModelVersion | None) -> VersionRecord:
        assert row is not None
        model_name = session.scalar(
            select(RegisteredModel.name).where(RegisteredModel.id == row.model_id))
        aliases = list(session.scalars(
            select(ModelAlias.alias).where(ModelAlias.version_id == row.id)
            .order_by(ModelAlias.alias)))
        return VersionRecord(
            id=row.id, model=model_name or "", version=row.version,
            artifact_sha256=row.artifact_sha256, artifact_size=row.artifact_size,
            flavor=row.flavor, status=row.status, signature=row.signature, metrics=row.metrics,
            run_id=row.run_id, dataset_hash=row.dataset_hash, code_commit=row.code_commit,
            description=row.description, actor=row.actor, created_at=row.created_at,
            aliases=aliases,
        )


def refuse_unservable(version: VersionRecord, force: bool, doing: str = "serving it") -> None:
    """A vetoed version (its validation gate failed) or an archived one gets traffic only
    when asked with ``force``, as an alias needs force to point at it (ConflictError)."""
    if version.status in UNSERVABLE and not force:
        raise ConflictError(f"{version.ref} is {version.status}; {doing} needs force "
                            "(--force on the command line)")


def json_safe(value: Any, what: str) -> Any:
    """Make metrics and signatures storable as JSON on every backend.

    PostgreSQL's JSONB refuses NaN and infinities (SQLite takes them), and numpy scalars
    are not JSON at all, so non-finite numbers become the strings "nan", "inf", "-inf"
    and numpy scalars become Python numbers. Anything else that is not JSON is refused.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item, what) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item, what) for item in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item(), what)
    raise ValidationError(f"{what} must hold JSON values (numbers, strings, lists, dicts); "
                          f"got {type(value).__name__}: {value!r}")


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``name`` / ``name:3`` / ``name:latest`` / ``name@alias`` → (name, version, alias)."""
    match = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise ValidationError(
            f"invalid model reference {ref!r}: use NAME, NAME:VERSION, NAME:latest or NAME@ALIAS"
        )
    name = validate.check_model_name(match["name"])
    version = match["version"]
    alias = match["alias"]
    if alias is not None:
        validate.check_alias(alias)
        if alias == "latest":
            return name, None, None
    number = None if version in (None, "latest") else int(version)
    return name, number, alias
