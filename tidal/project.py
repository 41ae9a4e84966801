"""A Tidal project: its settings, metadata store, artifact store and clock, in one handle.

``Project`` is what scripts and the CLI hold. It opens the store lazily (the schema is
created or upgraded on first use), so constructing one is cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from tidal.artifacts import ArtifactStore
from tidal.core import validate
from tidal.core.clock import Clock, SystemClock
from tidal.core.codeinfo import code_info
from tidal.core.config import Settings, load_settings
from tidal.core.errors import NotFoundError, StoreError, ValidationError
from tidal.runtime.native import FLAVOR as NATIVE_FLAVOR
from tidal.runtime.native import dump_native, load_native
from tidal.store.database import Database
from tidal.store.deployments import DeploymentRepository
from tidal.store.feedback import FeedbackRepository
from tidal.store.lineage import LineageRepository
from tidal.store.monitoring import MonitoringRepository
from tidal.store.records import (
    DeploymentRecord,
    EventRecord,
    ModelRecord,
    RunRecord,
    VersionRecord,
)
from tidal.store.registry import RegistryRepository, parse_ref, refuse_unservable
from tidal.store.review import ReviewRepository
from tidal.store.rollouts import RolloutRepository
from tidal.store.schedules import ScheduleRunRepository
from tidal.store.tracking import TrackingRepository


class Project:
    """Open the project in ``path`` (default: the nearest folder with tidal.toml, or cwd).

    Keyword arguments override the configuration: ``store_url``, ``artifact_root`` and
    ``actor``; ``clock`` replaces the wall clock (for replays and tests).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, clock: Clock | None = None,
        **overrides: Any,
    ) -> None:
        self.settings: Settings = load_settings(path, **overrides)
        self.clock: Clock = clock or SystemClock()

    # -- stores (opened on first use) ---------------------------------------------------
    @cached_property
    def db(self) -> Database:
        return Database(self.settings.store_url, busy_timeout=self.settings.busy_timeout)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifact_root)

    @cached_property
    def tracking(self) -> TrackingRepository:
        return TrackingRepository(self.db)

    @cached_property
    def registry(self) -> RegistryRepository:
        return RegistryRepository(self.db)

    @cached_property
    def lineage(self) -> LineageRepository:
        return LineageRepository(self.db)

    @cached_property
    def deployments(self) -> DeploymentRepository:
        return DeploymentRepository(self.db)

    @cached_property
    def monitoring(self) -> MonitoringRepository:
        return MonitoringRepository(self.db)

    @cached_property
    def feedback(self) -> FeedbackRepository:
        return FeedbackRepository(self.db)

    @cached_property
    def review(self) -> ReviewRepository:
        return ReviewRepository(self.db)

    @cached_property
    def rollouts(self) -> RolloutRepository:
        return RolloutRepository(self.db)

    @cached_property
    def schedule_runs(self) -> ScheduleRunRepository:
        return ScheduleRunRepository(self.db)

    def store_exists(self) -> bool:
        """False only when the store is a SQLite file that has not been created yet."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.settings.store_url)
        except ArgumentError:
            raise StoreError(f"not a database URL: {self.settings.store_url!r} (the "
                             "store's url in tidal.toml or TIDAL_STORE_URL)") from None
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return True
        return Path(url.database).exists()

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- tracking -----------------------------------------------------------------------
    def start_run(
        self, experiment: str = "default", *, name: str | None = None,
        params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
    ):  # -> ActiveRun (imported lazily to keep this module light)
        """Start a run; use it as ``with project.start_run("exp") as run: ...``."""
        from tidal.run import ActiveRun

        validate.check_text("run name", name, 256)
        now = self.clock.now()
        record = self.tracking.get_or_create_experiment(experiment, now)
        run_id = self.tracking.create_run(
            record, now=now, name=name, actor=self.settings.actor, source=_source(),
            code=code_info(str(self.settings.project_dir)), tags=tags, params=params,
        )
        logged = {k: validate.param_value(k, v) for k, v in (params or {}).items()}
        return ActiveRun(self, run_id, experiment, logged_params=logged)

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id, or by a unique prefix of its id."""
        if len(run_id) == 32:
            return self.tracking.get_run(run_id)
        matches = self.tracking.find_runs(run_id)
        if not matches:
            raise NotFoundError(f"no run id starts with {run_id!r}")
        if len(matches) > 1:
            raise ValidationError(f"{run_id!r} matches several runs; give more characters")
        return self.tracking.get_run(matches[0])

    def search_runs(
        self, filter: str | None = None, *, experiments: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None, max_results: int = 1000, offset: int = 0,
    ) -> list[RunRecord]:
        return self.tracking.search_runs(
            experiments=experiments, filter=filter, order_by=order_by,
            max_results=max_results, offset=offset,
        )

    # -- registry -----------------------------------------------------------------------
    def register_model(
        self, name: str, model: Any = None, *, path: str | os.PathLike[str] | None = None,
        flavor: str | None = None, signature: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None, run_id: str | None = None,
        dataset_hash: str | None = None, description: str | None = None,
        alias: str | None = None, reason: str | None = None,
    ) -> VersionRecord:
        """Store a model's bytes by hash and register them as the next version of ``name``.

        Give either a Python object (``model``, pickled) or a file (``path``, with its
        ``flavor``). The version records the run, the dataset hash and the run's commit.
        """
        if (model is None) == (path is None):
            raise ValidationError("give exactly one of model= (an object) or path= (a file)")
        validate.check_model_name(name)
        validate.check_text("flavor", flavor, 64)
        if alias is not None:  # checked before anything is stored or registered
            validate.check_alias(alias)
        if model is not None:
            stored = self.artifacts.put_bytes(dump_native(model))
            flavor = flavor or NATIVE_FLAVOR
        else:
            if not flavor:
                raise ValidationError("a model given by path= needs flavor= (e.g. 'onnx')")
            stored = self.artifacts.put_file(Path(path))  # type: ignore[arg-type]
        commit = self.tracking.get_run(run_id).git_commit if run_id else None
        now = self.clock.now()
        version = self.registry.register_version(
            name, artifact_sha256=stored.sha256, artifact_size=stored.size, flavor=flavor,
            now=now, actor=self.settings.actor, signature=signature, metrics=metrics,
            run_id=run_id, dataset_hash=dataset_hash, code_commit=commit,
            description=description, reason=reason,
        )
        if alias:
            version = self.set_alias(name, alias, version.version, reason=reason)
        return version

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str | None = None,
        force: bool = False,
    ) -> VersionRecord:
        return self.registry.set_alias(
            name, alias, version, now=self.clock.now(), actor=self.settings.actor,
            reason=reason, force=force,
        )

    def remove_alias(self, name: str, alias: str, *, reason: str | None = None) -> None:
        self.registry.remove_alias(
            name, alias, now=self.clock.now(), actor=self.settings.actor, reason=reason)

    def set_status(
        self, name: str, version: int, status: str, *, reason: str | None = None,
        force: bool = False,
    ) -> VersionRecord:
        return self.registry.set_status(
            name, version, status, now=self.clock.now(), actor=self.settings.actor,
            reason=reason, force=force,
        )

    def model_version(self, ref: str) -> VersionRecord:
        """Resolve ``name``, ``name:3``, ``name:latest`` or ``name@champion``."""
        return self.registry.get_version(ref)

    def load_model(self, ref: str) -> Any:
        """Load a registered Python model after verifying its bytes against the registry."""
        version = self.model_version(ref)
        if version.flavor != NATIVE_FLAVOR:
            raise ValidationError(
                f"{version.ref} is a {version.flavor!r} model; load_model reads "
                f"{NATIVE_FLAVOR!r} models (fetch the file with artifacts.get_file)"
            )
        return load_native(self.artifacts.get_bytes(version.artifact_sha256))

    def list_models(self) -> list[ModelRecord]:
        return self.registry.list_models()

    def model_history(self, name: str) -> list[EventRecord]:
        return self.registry.history(name)

    # -- deployments --------------------------------------------------------------------
    def set_deployment(
        self, name: str, model: str | VersionRecord, *, stable: int | str | None = None,
        canary: int | str | None = None, canary_weight: float = 0.0,
        shadow: int | str | None = None, max_batch_size: int | None = None,
        max_batch_wait_ms: float | None = None, reason: str | None = None,
        force: bool = False,
    ) -> DeploymentRecord:
        """Point deployment ``name`` at versions of one model (creating or replacing it).

        ``model`` is a reference to the stable version (``"elec2@champion"``,
        ``"elec2:3"``, a :class:`VersionRecord`) or a model name with ``stable=`` a
        version number or alias (a bare name alone means its latest version, as in the
        registry). ``canary=`` and ``shadow=`` take a version number, an alias, or a
        reference to a version of the same model. References are resolved now, so the
        deployment records version numbers: moving an alias later does not move it.
        A vetoed or archived version that the deployment does not serve yet is
        refused unless ``force``.
        """
        if isinstance(model, VersionRecord):
            if stable is not None:
                raise ValidationError("give the stable version either as a version record "
                                      "or as stable=, not both")
            model_name, stable_number = model.model, model.version
        else:
            model_name, version, alias = parse_ref(model)
            if stable is not None and (version is not None or alias is not None):
                raise ValidationError(
                    f"{model!r} already names a version; give the stable version either "
                    "there or as stable=, not both")
            if stable is None:
                stable_number = self.registry.get_version(model).version
            else:
                stable_number = self._deployed_version(model_name, stable, "stable")
        canary_number = self._deployed_version(model_name, canary, "canary")
        shadow_number = self._deployed_version(model_name, shadow, "shadow")
        self._refuse_unservable(name, model_name, (stable_number, canary_number,
                                                   shadow_number), force)
        return self.deployments.set(
            name, model=model_name, stable_version=stable_number,
            canary_version=canary_number, canary_weight=canary_weight,
            shadow_version=shadow_number,
            max_batch_size=max_batch_size, max_batch_wait_ms=max_batch_wait_ms,
            now=self.clock.now(), actor=self.settings.actor, reason=reason,
        )

    def get_deployment(self, name: str) -> DeploymentRecord:
        return self.deployments.get(name)

    def list_deployments(self) -> list[DeploymentRecord]:
        return self.deployments.list()

    def delete_deployment(self, name: str, *, reason: str | None = None) -> None:
        self.deployments.delete(name, now=self.clock.now(), actor=self.settings.actor,
                                reason=reason)

    def deployment_history(self, name: str, limit: int = 20) -> list[EventRecord]:
        """The newest ``limit`` changes of a deployment, oldest first."""
        return self.deployments.history(name, limit)

    def _refuse_unservable(self, name: str, model: str, numbers: tuple[int | None, ...],
                           force: bool) -> None:
        """Refuse a vetoed or archived version new to deployment ``name`` (one it serves
        already, e.g. vetoed since, may keep its place while other settings change)."""
        try:
            current = self.deployments.get(name)
            serving = {current.stable_version, current.canary_version,
                       current.shadow_version} if current.model == model else set()
        except NotFoundError:
            serving = set()
        for number in numbers:
            if number is not None and number not in serving:
                try:
                    version = self.registry.get_version(f"{model}:{number}")
                except NotFoundError:
                    continue  # the store names the missing version, with its role
                refuse_unservable(version, force, "deploying it")

    def _deployed_version(self, model: str, given: int | str | None, role: str) -> int | None:
        """A version of ``model`` given as a number, "3", an alias, "latest", or a
        reference ``model:3`` / ``model@alias`` (which must name the same model)."""
        if given is None:
            return None
        if isinstance(given, VersionRecord):
            ref = given.ref
        elif isinstance(given, bool) or not isinstance(given, int | str):
            raise ValidationError(f"the {role} version must be a version number, an alias "
                                  f"or a reference such as {model}:3, got {given!r}")
        elif isinstance(given, int):
            return given  # checked (and looked up) by the store
        elif given.strip().isdigit():
            return int(given)
        elif ":" in given or "@" in given:
            ref = given
        else:
            ref = f"{model}@{given.strip()}"
        name, _, _ = parse_ref(ref)
        if name != model:
            raise ValidationError(f"the {role} version must be a version of {model!r}, not of "
                                  f"{name!r} ({ref})")
        return self.registry.get_version(ref).version


def _source() -> str | None:
    entry = sys.argv[0] if sys.argv else ""
    return entry[-1024:] or None
