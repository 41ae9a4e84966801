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
from tidal.core.errors import NotFoundError, ValidationError
from tidal.runtime.native import FLAVOR as NATIVE_FLAVOR
from tidal.runtime.native import dump_native, load_native
from tidal.store.database import Database
from tidal.store.lineage import LineageRepository
from tidal.store.records import EventRecord, ModelRecord, RunRecord, VersionRecord
from tidal.store.registry import RegistryRepository
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

    def store_exists(self) -> bool:
        """False only when the store is a SQLite file that has not been created yet."""
        from sqlalchemy.engine import make_url

        url = make_url(self.settings.store_url)
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


def _source() -> str | None:
    entry = sys.argv[0] if sys.argv else ""
    return entry[-1024:] or None
