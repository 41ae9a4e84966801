"""The standard tabular pipeline's steps: snapshot, validate, split, train, evaluate.

Each step is a ``@tidal.step``, so a re-run with the same data, code and settings is
served from the cache, and every model version can be traced back through them to the
data snapshot. Steps exchange small values (the snapshot record, the split indices, a
fitted scikit-learn pipeline, a metrics dict); the data itself travels as the snapshot's
sha256 and is re-read, verified, from the artifact store by each step that needs it.
That is why the steps take ``artifact_root``: a worker process or a Ray task has no
project of its own.

Gating and registration are not steps: they read the registry (the champion) and write
to it, which must happen once, in the process that owns the project
(:mod:`tidal.train.standard`).
"""

from __future__ import annotations

from typing import Any

from tidal.core.errors import ValidationError
from tidal.pipeline.step import step


class BadBatchError(ValidationError):
    """The data has anomalies the pipeline is not allowed to train on."""


def _frame(snapshot: dict[str, Any], artifact_root: str) -> Any:
    from tidal.artifacts.store import ArtifactStore
    from tidal.data.snapshots import load_snapshot

    return load_snapshot(snapshot["sha256"], ArtifactStore(artifact_root)).to_pandas()


def labelled_rows(snapshot: dict[str, Any], split: Any, part: str, target: str,
                  artifact_root: str) -> Any:
    """The ``"train"`` or ``"test"`` rows of the split that have a label, re-indexed."""
    frame = _frame(snapshot, artifact_root)
    rows = frame.iloc[split.train_index if part == "train" else split.test_index]
    return rows[rows[target].notna()].reset_index(drop=True)


@step
def snapshot_data(source: Any, artifact_root: str) -> dict[str, Any]:
    """Store the source's rows as a content-hashed Parquet snapshot (the dataset version).

    ``source`` is a file path or ``{"url": ..., "query": ...}`` for SQL.
    """
    from tidal.artifacts.store import ArtifactStore
    from tidal.data.snapshots import snapshot, snapshot_sql

    store = ArtifactStore(artifact_root)
    if isinstance(source, dict):
        return snapshot_sql(source["url"], source["query"], store).to_dict()
    return snapshot(source, store).to_dict()


@step
def validate_data(snapshot: dict[str, Any], schema_file: str | None, allow: list[str],
                  exclude_roles: list[str], artifact_root: str) -> dict[str, Any]:
    """Check the snapshot against the reviewed schema; stop on anomalies not allowed.

    ``schema_file`` is passed as a ``tidal.File`` (so editing the schema re-runs this
    step, and its hash is in the lineage); without one the schema is inferred from this
    very snapshot, which can only catch an empty batch, and the result says so.
    """
    from pathlib import Path

    from tidal.data.infer import infer_schema
    from tidal.data.schema import Schema
    from tidal.data.validation import validate

    frame = _frame(snapshot, artifact_root)
    schema = (Schema.from_yaml(Path(schema_file).read_text(), name=Path(schema_file).name)
              if schema_file else infer_schema(frame))
    result = validate(frame, schema, exclude_roles=tuple(exclude_roles))
    blocking = [a for a in result.anomalies if a.kind not in allow]
    if blocking:
        blocked = type(result)(result.source, result.num_rows, blocking)
        raise BadBatchError(f"the data has anomalies (allow a kind with "
                            f"[pipeline] allow_anomalies):\n{blocked.summary()}")
    return result.to_dict() | {"schema": "file" if schema_file else "inferred",
                               "allowed": [a.kind for a in result.anomalies]}


@step
def split_data(snapshot: dict[str, Any], checked: dict[str, Any], target: str,
               time_column: str | None, test_size: float, seed: int, task: str,
               artifact_root: str) -> Any:
    """Train and test rows: by time when there is a time column, else stratified/random.

    ``checked`` is the validation result: taking it means nothing is split, and so
    nothing trained, before the data passed validation.
    """
    from tidal.data.splits import split

    frame = _frame(snapshot, artifact_root)
    return split(frame, target=target, time_column=time_column, test_size=test_size,
                 seed=seed, task=task)


@step
def train_candidate(snapshot: dict[str, Any], split: Any, family: str, task: str,
                    target: str, numeric: list[str], categorical: list[str], seed: int,
                    search_budget: int, artifact_root: str) -> Any:
    """Fit one candidate family (preprocessing inside the model's pipeline)."""
    from tidal.train.candidates import make_candidate, search

    train = labelled_rows(snapshot, split, "train", target, artifact_root)
    features, labels = train[numeric + categorical], train[target]
    model = make_candidate(family, task, numeric, categorical, seed=seed)
    if search_budget and family != "baseline":
        scoring = "accuracy" if task == "classification" else "neg_root_mean_squared_error"
        return search(family, model, features, labels, budget=search_budget, seed=seed,
                      scoring=scoring).pipeline
    return model.fit(features, labels)


@step
def evaluate_candidate(model: Any, baseline: Any, snapshot: dict[str, Any], split: Any,
                       task: str, target: str, features: list[str],
                       slices: list[dict[str, Any]], metric: str,
                       artifact_root: str) -> dict[str, Any]:
    """Metrics on the test rows, overall and per slice, with the baseline beside them."""
    from tidal.train.evaluate import metrics, slice_table

    test = labelled_rows(snapshot, split, "test", target, artifact_root)
    X, y = test[features], test[target].to_numpy()
    predicted, base = model.predict(X), baseline.predict(X)
    proba = base_proba = labels = None
    if task == "classification" and hasattr(model, "predict_proba"):
        proba, base_proba = model.predict_proba(X), baseline.predict_proba(X)
        labels = list(model.classes_)
    overall = metrics(task, y, predicted, proba, labels=labels)
    table = slice_table(task, test, y, predicted, {s["column"]: s for s in slices}, base,
                        metric, y_proba=proba, baseline_proba=base_proba, labels=labels)
    return {"metrics": overall, "slices": table, "test_rows": int(len(test))}


@step
def score_on_unseen_rows(champion: Any, candidate: Any, snapshot: dict[str, Any], split: Any,
                         task: str, target: str, features: list[str], time_column: str,
                         trained_until: str, artifact_root: str) -> dict[str, Any]:
    """The champion and the candidate on the same rows: the candidate's test rows that
    come after the last row the champion trained on (``trained_until``), which neither
    has seen. Under drift this is the comparison that means something: each model's own
    test score comes from its own, differently old, data."""
    import pandas as pd

    from tidal.train.evaluate import metrics

    test = labelled_rows(snapshot, split, "test", target, artifact_root)
    times = test[time_column]
    if pd.api.types.is_numeric_dtype(times):
        unseen = test[times.astype(float) > float(trained_until)]
    else:
        unseen = test[pd.to_datetime(times) > pd.Timestamp(trained_until)]
    if unseen.empty:
        return {"rows": 0}
    X, y = unseen[features], unseen[target].to_numpy()
    scores: dict[str, Any] = {"rows": int(len(unseen))}
    for name, model in (("champion", champion), ("candidate", candidate)):
        proba = labels = None
        if task == "classification" and hasattr(model, "predict_proba"):
            proba, labels = model.predict_proba(X), list(model.classes_)
        scores[name] = metrics(task, y, model.predict(X), proba, labels=labels)
    return scores


@step
def export_model(model: Any, snapshot: dict[str, Any], split: Any, task: str, target: str,
                 features: list[str], artifact_root: str) -> dict[str, Any]:
    """Export the chosen model to ONNX when its outputs equal the native ones on the test
    rows (within 1e-5); otherwise say why, and the model is served natively."""
    from tidal.artifacts.store import ArtifactStore
    from tidal.train.onnx_export import export_onnx

    test = labelled_rows(snapshot, split, "test", target, artifact_root)
    exported = export_onnx(model, test[features], task=task)
    result: dict[str, Any] = {"exported": exported.onnx_bytes is not None,
                              "reason": exported.reason,
                              "max_difference": exported.max_difference}
    if exported.onnx_bytes is not None:
        stored = ArtifactStore(artifact_root).put_bytes(exported.onnx_bytes)
        result.update(sha256=stored.sha256, size=stored.size)
    return result
