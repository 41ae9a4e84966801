"""Per-segment models: one model per segment, routed by segment at prediction time.

    model = fit_segments(frame, target="churned", features=["usage", "seats"],
                         segment_columns=["industry", "region", "customer"],
                         make_model=lambda: LogisticRegression(max_iter=500),
                         min_rows=200, project=project, executor="process")
    model.predict(new_rows)        # new_rows has the segment columns and the features
    model.route(new_rows)          # which model served each row, e.g. ("retail", "eu")

Training
    ``segment_columns`` is a hierarchy, most general first. Level *k* groups the rows by
    the first *k* columns, so a segment is identified by the tuple of those values: the
    customer ``42`` in ``("retail", "eu")`` is ``("retail", "eu", 42)``, a different
    segment from customer ``42`` in ``("retail", "us")``. Every segment of every level
    with at least ``min_rows`` rows gets its own model, fitted on its own rows only; a
    parent is trained on all its rows whether or not its children were. The global model
    (key ``()``) is always trained, on every row. A classifier segment whose rows hold a
    single class is not trained either (there is nothing to separate). A row whose
    segment value is missing (None/NaN) at some level belongs to no segment of that level
    or any deeper one (its parents still count it).

Routing (``predict``, ``predict_proba``, ``route``)
    Each row goes to the most specific trained model along its own path: its leaf
    segment, else its parent, and so on up to the first level, else the global model.
    So a segment below ``min_rows`` is served by its parent (or grandparent...), and a
    segment never seen in training (a new customer, a new industry) by the deepest
    ancestor that was trained, at worst the global model. ``predict_proba`` columns
    follow ``classes_`` (every class any model saw); a segment model that never saw a
    class gives it probability 0.

Parallel training
    Segments train as ``@tidal.step`` executions on the pipeline executor (``inline``,
    ``process`` or ``ray``). One step per segment would cost the engine's per-step work
    (cache key, lineage record, a job through the pool) for every segment, so segments are
    batched: each step fits a run of segments whose rows are contiguous in the sorted
    frame, about ``4 × workers`` steps at least and at most ``segments_per_batch``
    segments per step (auto: 256), balanced by rows. Each batch's rows are stored in the
    artifact store and the step receives their sha256, so a re-run on the same data and
    the same model settings is served from the cache. ``make_model`` is called once; the
    unfitted estimator it returns is pickled and a fresh copy is unpickled for every
    segment, so its hyperparameters (not the factory's name) belong to the cache key.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tidal.core.errors import ValidationError
from tidal.pipeline.step import step

if TYPE_CHECKING:
    from tidal.project import Project

Key = tuple[Any, ...]

DEFAULT_SEGMENTS_PER_BATCH = 256


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so keys from training and prediction compare."""
    return value.item() if isinstance(value, np.generic) else value


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


class SegmentedModel:
    """One fitted model per segment key, per hierarchy level, plus a global model.

    ``models_[k]`` maps the keys of level *k + 1* (tuples of the first *k + 1* segment
    columns' values) to fitted models; ``global_model_`` serves rows no segment model
    covers. ``untrained_[k]`` says why a segment seen in training has no model (below
    ``min_rows``, a single class). ``training_`` records how the fit went (counts, the
    summed seconds measured around each ``model.fit`` in the workers, as recorded by the
    executions whose outputs were used, cached or not; the pipeline run).

    ``fit(X, y)`` trains in this process with the same rules as :func:`fit_segments`
    (which trains in parallel on the pipeline executor). Pickling keeps everything but
    ``make_model`` (often a lambda), which only ``fit`` needs.
    """

    def __init__(self, segment_columns: Sequence[str], features: Sequence[str], *,
                 min_rows: int = 200, make_model: Callable[[], Any] | None = None) -> None:
        if not segment_columns:
            raise ValidationError("segment_columns needs at least one column")
        if min_rows < 1:
            raise ValidationError(f"min_rows must be at least 1, got {min_rows}")
        self.segment_columns = list(segment_columns)
        self.features = list(features)
        self.min_rows = min_rows
        self.make_model = make_model
        self.models_: list[dict[Key, Any]] = []
        self.untrained_: list[dict[Key, str]] = []
        self.global_model_: Any = None
        self.training_: dict[str, Any] = {}

    # -- training ------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y: Any) -> SegmentedModel:  # noqa: N803 - sklearn's name
        """Train every segment in this process (no pipeline, no cache)."""
        if self.make_model is None:
            raise ValidationError("SegmentedModel.fit needs make_model")
        started = time.perf_counter()
        frame = X.assign(**{"__target__": np.asarray(y)})
        plan = plan_batches(frame, "__target__", self.features, self.segment_columns,
                     self.min_rows, DEFAULT_SEGMENTS_PER_BATCH, 1)
        template = pickle.dumps(self.make_model(), protocol=5)
        outputs = [fit_batch(template, batch.X, batch.y, batch.segments)
                   for batch in plan.batches]
        outputs.append(fit_batch(template, plan.global_X, plan.global_y, [((), 0, len(frame))]))
        self.assemble(plan, outputs)
        self.training_.update(steps=0, wall_seconds=time.perf_counter() - started)
        return self

    def assemble(self, plan: Plan, outputs: list[dict[str, Any]]) -> None:
        """Take the fitted models out of the batches' outputs (:func:`fit_batch`)."""
        levels = len(self.segment_columns)
        self.models_ = [{} for _ in range(levels)]
        self.untrained_ = [dict(level) for level in plan.untrained]
        fit_seconds = 0.0
        for output in outputs:
            fit_seconds += output["fit_seconds"]
            for key, model in output["models"].items():
                if key == ():
                    self.global_model_ = model
                else:
                    self.models_[len(key) - 1][key] = model
            for key, reason in output["skipped"].items():
                if key == ():
                    raise ValidationError(f"the global model cannot be trained: {reason}")
                self.untrained_[len(key) - 1][key] = reason
        if self.global_model_ is None:
            raise ValidationError("the global model was not trained")
        self.training_ = {
            "rows": plan.rows,
            "levels": [{"columns": self.segment_columns[:k + 1],
                        "trained": len(self.models_[k]),
                        "untrained": len(self.untrained_[k])} for k in range(levels)],
            "fit_seconds": fit_seconds,
            "batches": len(plan.batches),
        }

    # -- prediction ----------------------------------------------------------------

    @property
    def classes_(self) -> np.ndarray:
        """Every class any of the models saw (classifiers only), sorted."""
        models = [self.global_model_, *(m for level in self.models_ for m in level.values())]
        if not hasattr(self.global_model_, "classes_"):
            raise AttributeError("classes_: these models are not classifiers")
        return np.unique(np.concatenate([np.asarray(m.classes_) for m in models]))

    def _resolve(self, key: Key) -> Key:
        """The key of the most specific trained model for a row whose full key is ``key``."""
        for depth in range(len(key), 0, -1):
            prefix = key[:depth]
            if any(_missing(value) for value in prefix):
                continue
            if prefix in self.models_[depth - 1]:
                return prefix
        return ()

    def _groups(self, X: pd.DataFrame) -> dict[Key, np.ndarray]:
        """Rows of ``X`` by the key of the model that serves them."""
        if self.global_model_ is None:
            raise ValidationError("this SegmentedModel is not fitted")
        missing = [c for c in [*self.segment_columns, *self.features] if c not in X.columns]
        if missing:
            raise ValidationError(f"the rows lack column(s) {', '.join(missing)}")
        by_model: dict[Key, list[np.ndarray]] = {}
        grouped = X.groupby(self.segment_columns, dropna=False, sort=False,
                             observed=True).indices
        for raw, rows in grouped.items():
            key = tuple(_plain(v) for v in (raw if isinstance(raw, tuple) else (raw,)))
            by_model.setdefault(self._resolve(key), []).append(rows)
        return {key: np.concatenate(parts) for key, parts in by_model.items()}

    def _model(self, key: Key) -> Any:
        return self.global_model_ if key == () else self.models_[len(key) - 1][key]

    def route(self, X: pd.DataFrame) -> list[Key]:  # noqa: N803
        """For each row, the key of the model that serves it (``()`` for the global one)."""
        served: list[Key] = [()] * len(X)
        for key, rows in self._groups(X).items():
            for row in rows:
                served[row] = key
        return served

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        features = X[self.features]
        for key, rows in self._groups(X).items():
            pieces.append((rows, np.asarray(self._model(key).predict(features.iloc[rows]))))
        if not pieces:
            return np.empty(0)
        out = np.empty(len(X), dtype=np.result_type(*(p for _, p in pieces)))
        for rows, predicted in pieces:
            out[rows] = predicted
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        classes = self.classes_
        out = np.zeros((len(X), len(classes)))
        features = X[self.features]
        for key, rows in self._groups(X).items():
            model = self._model(key)
            columns = np.searchsorted(classes, np.asarray(model.classes_))
            out[np.ix_(rows, columns)] = model.predict_proba(features.iloc[rows])
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "make_model": None}

    def __repr__(self) -> str:
        trained = "/".join(str(len(level)) for level in self.models_) or "unfitted"
        return f"<SegmentedModel {'>'.join(self.segment_columns)}: {trained} segment models>"


# -- planning: which segments train, in which batch --------------------------------------


@dataclass
class Batch:
    X: pd.DataFrame  # noqa: N815
    y: np.ndarray
    segments: list[tuple[Key, int, int]]  # key, first row, end row (within X)


@dataclass
class Plan:
    batches: list[Batch]
    untrained: list[dict[Key, str]]
    global_X: pd.DataFrame  # noqa: N815
    global_y: np.ndarray
    rows: int


def plan_batches(frame: pd.DataFrame, target: str, features: list[str],
                 segment_columns: list[str], min_rows: int, segments_per_batch: int | None,
                 workers: int) -> Plan:
    """Sort the rows by the hierarchy (so every segment of every level is a contiguous run)
    and cut each level's trainable segments into batches balanced by rows."""
    missing = [c for c in [target, *features, *segment_columns] if c not in frame.columns]
    if missing:
        raise ValidationError(f"the frame lacks column(s) {', '.join(missing)}")
    if len(frame) == 0:
        raise ValidationError("the frame has no rows")
    ordered = frame.sort_values(segment_columns, kind="stable", na_position="last")
    X, y = ordered[features], ordered[target].to_numpy()  # noqa: N806
    n = len(ordered)
    trainable: list[tuple[Key, int, int]] = []
    untrained: list[dict[Key, str]] = []
    for depth in range(1, len(segment_columns) + 1):
        columns = segment_columns[:depth]
        codes = ordered.groupby(columns, sort=False, dropna=True,
                                observed=True).ngroup().to_numpy()
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        stops = np.r_[starts[1:], n]
        values = [ordered[c].to_numpy()[starts] for c in columns]
        level: dict[Key, str] = {}
        for i, (start, stop) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
            if codes[start] < 0:  # a missing value in this level's columns
                continue
            key = tuple(_plain(v[i]) for v in values)
            if stop - start >= min_rows:
                trainable.append((key, start, stop))
            else:
                level[key] = f"{stop - start} rows < min_rows {min_rows}"
        untrained.append(level)
    per_batch = segments_per_batch or DEFAULT_SEGMENTS_PER_BATCH
    if per_batch < 1:
        raise ValidationError(f"segments_per_batch must be at least 1, got {per_batch}")
    wanted = max(4 * workers, math.ceil(len(trainable) / per_batch))
    if segments_per_batch is None and trainable:
        wanted = min(wanted, len(trainable))
        target_rows = sum(stop - start for _, start, stop in trainable) / wanted
    else:
        target_rows = math.inf
    batches: list[Batch] = []
    current: list[tuple[Key, int, int]] = []
    rows = 0

    def close() -> None:
        first, last = current[0][1], max(stop for _, _, stop in current)
        batches.append(Batch(X.iloc[first:last], y[first:last],
                              [(key, s - first, e - first) for key, s, e in current]))

    # levels one after another, each in sorted order: a batch is one slice of the sorted
    # rows (holding, between its segments, the rows of untrained ones, which it skips)
    for segment in trainable:
        key, start, stop = segment
        same_level = not current or len(current[-1][0]) == len(key)
        if current and (not same_level or len(current) >= per_batch or rows >= target_rows):
            close()
            current, rows = [], 0
        current.append(segment)
        rows += stop - start
    if current:
        close()
    return Plan(batches, untrained, frame[features], frame[target].to_numpy(), n)


def _is_classifier(estimator: Any) -> bool:
    try:
        from sklearn.base import is_classifier
    except ImportError:
        return hasattr(estimator, "predict_proba")
    return bool(is_classifier(estimator))


def fit_batch(template: bytes, X: pd.DataFrame, y: np.ndarray,  # noqa: N803
               segments: list[tuple[Key, int, int]]) -> dict[str, Any]:
    """Fit a fresh copy of the template on each segment's rows; time the fits alone."""
    classifier = _is_classifier(pickle.loads(template))  # noqa: S301 - our own bytes
    models: dict[Key, Any] = {}
    skipped: dict[Key, str] = {}
    fit_seconds = 0.0
    for key, start, stop in segments:
        target = y[start:stop]
        if classifier and len(np.unique(target)) < 2:
            skipped[key] = "a single class"
            continue
        model = pickle.loads(template)  # noqa: S301
        rows = X.iloc[start:stop]
        began = time.perf_counter()
        model.fit(rows, target)
        fit_seconds += time.perf_counter() - began
        models[key] = model
    return {"models": models, "skipped": skipped, "fit_seconds": fit_seconds,
            "segments": len(segments)}


@step
def fit_segment_batch(batch_sha256: str, template_sha256: str,
                      artifact_root: str) -> dict[str, Any]:
    """Fit one model per segment of a stored batch (``()``: the global model)."""
    from tidal.artifacts.store import ArtifactStore
    from tidal.runtime.native import load_native

    store = ArtifactStore(artifact_root)
    batch = load_native(store.get_bytes(batch_sha256))
    return fit_batch(store.get_bytes(template_sha256), batch["X"], batch["y"],
                      batch["segments"])


def fit_segments(frame: pd.DataFrame, *, target: str, features: Sequence[str],
                 segment_columns: Sequence[str], make_model: Callable[[], Any],
                 min_rows: int = 200, project: Project | None = None,
                 executor: str = "process", max_workers: int | None = None,
                 ray_address: str | None = None, segments_per_batch: int | None = None,
                 progress: Any = None) -> SegmentedModel:
    """Train a model per segment (≥ ``min_rows`` rows) at each hierarchy level, plus a
    global model, as pipeline steps on ``executor``; see the module for the rules.

    ``segments_per_batch`` caps the segments fitted by one step (default: about
    ``4 × workers`` balanced steps, at most 256 segments each; 1 = a step per segment).
    """
    import tidal
    from tidal.pipeline.graph import Pipeline
    from tidal.pipeline.keys import Location
    from tidal.pipeline.runner import run_pipeline
    from tidal.runtime.native import dump_native

    started = time.perf_counter()
    model = SegmentedModel(segment_columns, features, min_rows=min_rows)
    project = project or tidal.get_project()
    workers = max_workers or os.cpu_count() or 1
    plan = plan_batches(frame, target, model.features, model.segment_columns, min_rows,
                 segments_per_batch, workers)
    artifacts = project.artifacts
    root = Location(project.settings.artifact_root)
    template = artifacts.put_bytes(dump_native(make_model())).sha256
    stored = [artifacts.put_bytes(dump_native(
        {"X": plan.global_X, "y": plan.global_y, "segments": [((), 0, plan.rows)]})).sha256]
    stored += [artifacts.put_bytes(dump_native(
        {"X": batch.X, "y": batch.y, "segments": batch.segments})).sha256
        for batch in plan.batches]
    planned = time.perf_counter()
    with Pipeline("fit_segments", params={
            "target": target, "features": model.features,
            "segment_columns": model.segment_columns, "min_rows": min_rows,
            "batches": len(plan.batches)}) as pipeline:
        nodes = [fit_segment_batch(sha, template, root) for sha in stored]
    result = run_pipeline(pipeline, project=project, executor=executor,
                          max_workers=max_workers, ray_address=ray_address,
                          progress=progress)
    ran = time.perf_counter()
    model.assemble(plan, [result.output(node) for node in nodes])
    model.training_.update(
        steps=len(nodes), cached_steps=len(result.cached), pipeline_run=result.run_id,
        plan_seconds=planned - started, run_seconds=ran - planned,
        wall_seconds=time.perf_counter() - started)
    return model


__all__ = ["SegmentedModel", "fit_segment_batch", "fit_segments"]
