"""The reference a model version is monitored against, built once and stored.

A window's drift is measured against the data the model learnt from. The reference is a
profile (:mod:`tidal.data.profiles`) of that data with the same column names as a window's
profile: ``in.<feature>`` for each input of the version's signature, the monitored outputs
of :mod:`tidal.monitor.outputs` (the model itself is run over the reference rows, so
prediction drift compares like with like) and ``target`` when the data holds the target
(the training prior that prediction bias is measured against). With the target, a
classifier's reference also gets a calibration table (its accuracy per confidence bin),
from which a window's accuracy is estimated before its labels come.

Where it comes from: :func:`set_reference` (``tidal monitor reference MODEL:V DATA``) with
any table, or, for a version without one that records the snapshot it was trained on (the
standard pipeline's versions), that snapshot, the first time a monitor needs it. Either
way it is stored as an artifact and recorded in ``reference_profiles``, so it is built
once per version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tidal.core.errors import ValidationError
from tidal.data.profiles import DatasetProfile, profile
from tidal.monitor.outputs import CONFIDENCE, LABEL, outputs_of_model
from tidal.runtime.inputs import check_columns
from tidal.runtime.loaded import load_version
from tidal.store.records import VersionRecord

if TYPE_CHECKING:
    from tidal.project import Project

TARGET = "target"
CALIBRATION_BINS = 10
#: reference rows are run through the model in batches of this many
_BATCH = 50_000


@dataclass(frozen=True)
class Reference:
    """A version's reference profile, with what a monitor needs to read it."""

    version: VersionRecord
    profile: DatasetProfile
    features: list[str]
    task: str | None
    classes: list[Any] | None
    #: accuracy per confidence bin on the reference (classifiers with a target), see
    #: :func:`calibration_table`
    calibration: dict[str, Any] | None = None

    def inputs(self) -> DatasetProfile:
        return self.subset([f"in.{name}" for name in self.features])

    def subset(self, names: list[str]) -> DatasetProfile:
        return DatasetProfile(self.profile.rows, {
            name: self.profile.columns[name] for name in names
            if name in self.profile.columns})


def set_reference(project: Project, ref: str, data: Any, *, target: str | None = None,
                  source: str | None = None) -> Reference:
    """Profile ``data`` (a path, DataFrame or Arrow table holding the version's inputs) as
    the reference of model version ``ref``, replacing any it had."""
    version = project.model_version(ref)
    return _store(project, version, data, target=target, source=source or _describe(data))


def reference_for(project: Project, version: VersionRecord) -> Reference | None:
    """The stored reference of ``version``; built from its training snapshot the first
    time when it has none; None when there is nothing to build it from."""
    stored = project.monitoring.get_reference(version.id)
    if stored is not None:
        data = project.artifacts.get_bytes(stored.artifact_sha256)
        return _reference(version, DatasetProfile.from_bytes(data), stored.calibration)
    if not version.dataset_hash or not project.artifacts.exists(version.dataset_hash):
        return None
    from tidal.data.snapshots import load_snapshot

    table = load_snapshot(version.dataset_hash, project.artifacts)
    target = project.settings.data.target
    return _store(project, version, table, target=target if target in table.column_names
                  else None, source=f"snapshot {version.dataset_hash[:12]}")


def _store(project: Project, version: VersionRecord, data: Any, *, target: str | None,
           source: str) -> Reference:
    built, calibration = build_profile(project, version, data, target=target)
    stored = project.artifacts.put_bytes(built.to_bytes())
    project.monitoring.set_reference(version.id, artifact_sha256=stored.sha256,
                                     rows=built.rows, source=source, now=project.clock.now(),
                                     calibration=calibration)
    return _reference(version, built, calibration)


def build_profile(project: Project, version: VersionRecord, data: Any, *,
                  target: str | None = None) -> tuple[DatasetProfile, dict[str, Any] | None]:
    """The reference profile of ``data`` for ``version`` (inputs, model outputs, target),
    and, for a classifier with the target given, its calibration table."""
    import pyarrow as pa

    from tidal.data.sources import open_source

    model = load_version(project.artifacts, version)
    features = model.input_names
    table = open_source(data).to_table()
    missing = [name for name in features if name not in table.column_names]
    if missing:
        raise ValidationError(f"the reference data lacks the input(s) {', '.join(missing)} "
                              f"of {version.ref}")
    if target is not None and target not in table.column_names:
        raise ValidationError(f"the reference data has no target column {target!r}")
    if table.num_rows == 0:
        raise ValidationError("the reference data has no rows")
    outputs: dict[str, list[Any]] = {}
    for start in range(0, table.num_rows, _BATCH):
        chunk = table.slice(start, _BATCH)
        columns = check_columns(model.signature, {
            name: chunk.column(name).to_numpy(zero_copy_only=False) for name in features},
            max_rows=_BATCH)
        for name, values in outputs_of_model(model.predict(columns)).items():
            outputs.setdefault(name, []).append(np.asarray(values))
    columns = {f"in.{name}": table.column(name) for name in features}
    columns.update({name: np.concatenate(parts) for name, parts in outputs.items()})
    if target is not None:
        columns[TARGET] = table.column(target)
    frame = pa.table({name: pa.array(values) if isinstance(values, np.ndarray) else values
                      for name, values in columns.items()})
    calibration = None
    if target is not None and CONFIDENCE in columns and LABEL in columns:
        calibration = calibration_table(columns[CONFIDENCE], columns[LABEL],
                                        table.column(target).to_pylist())
    return profile(frame, columns=list(frame.column_names)), calibration


def calibration_table(confidence: np.ndarray, predicted: Any, truth: list[Any]
                      ) -> dict[str, Any]:
    """How often the model is right at each confidence (its top class probability), in
    ten equal bins over [0, 1], measured on the reference: what confidence-based
    performance estimation (NannyML's CBPE idea) reads a window's confidences with."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    right = np.array([_text(p) == _text(t) for p, t in zip(
        np.asarray(predicted).tolist(), truth, strict=True)], dtype=bool)
    keep = np.isfinite(confidence) & np.array([t is not None for t in truth], dtype=bool)
    bins = np.clip(np.searchsorted(edges, confidence[keep], side="right") - 1, 0,
                   CALIBRATION_BINS - 1)
    count = np.bincount(bins, minlength=CALIBRATION_BINS)
    correct = np.bincount(bins, weights=right[keep].astype(float), minlength=CALIBRATION_BINS)
    return {"edges": edges.tolist(), "count": count.astype(int).tolist(),
            "correct": correct.astype(int).tolist(),
            "accuracy": float(right[keep].mean()) if keep.any() else None}


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _reference(version: VersionRecord, built: DatasetProfile,
               calibration: dict[str, Any] | None = None) -> Reference:
    signature = version.signature or {}
    features = [spec["name"] for spec in signature.get("inputs", [])] or [
        name[len("in."):] for name in built.columns if name.startswith("in.")]
    return Reference(version, built, features, signature.get("task"),
                     signature.get("classes"), calibration)


def _describe(data: Any) -> str:
    return str(data) if isinstance(data, str) or hasattr(data, "__fspath__") else \
        type(data).__name__
