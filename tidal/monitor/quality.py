"""Labelled quality per window: predictions joined with the labels that came back.

Labels arrive late (a day, a month), so quality cannot be judged when a window closes.
When the window job computes a window it also stores the window's predictions in brief
(:func:`prediction_index`: request id, row, key, event time and the outputs) as a small
Parquet artifact; the labels are joined to that later, never to the prediction log:

- a window's quality is first judged once the clock passes its end plus ``[monitor]
  label_delay``; its points then go through the alert rules like any check;
- until ``label_horizon`` after its end, a window is joined again whenever new labels
  arrived for the deployment (late labels, corrections: the later label wins), and its
  values are rewritten; the alert states are not moved again (a window counts once).

A label matches a prediction by (request id, row), else by (entity key, event time),
exactly. Checks (subject: the metric):

- ``quality`` — accuracy, balanced accuracy, F1 (of the second class; macro with more
  classes), log loss and, for two classes, ROC AUC; MAE, RMSE and R² for regression;
  over the window's labelled rows, with the names training uses;
- ``quality_drop`` — for the version's own metric (the one its gate used), how much worse
  than on its test set, relatively: 0.1 is 10 % worse (accuracy 0.85 → 0.765);
- ``labelled`` — the share of the window's rows that have a label;
- ``quality_slice`` — the same metrics per value of each ``[[pipeline.slices]]`` slice
  (subject ``"accuracy SEX=2"``), cut as training cuts them;
- ``quality_slice_drop`` — a slice value against the same slice of the version's test
  set, as ``quality_drop`` (subject ``"SEX=2"``), where the test set had 30+ rows of it.

Each label joined is marked (``matched_at``); :func:`label_report` counts those that
never match a prediction.

AUC is computed from ranks (the Mann-Whitney statistic, with SciPy's ``rankdata``)
rather than by importing scikit-learn into the monitor for one function.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import rankdata

from tidal.monitor.checks import Measured
from tidal.monitor.outputs import probability_matrix
from tidal.store.feedback import Labels

if TYPE_CHECKING:
    from tidal.project import Project

#: the columns of a window's prediction index (those the window has)
INDEX_COLUMNS = ("request_id", "row", "key", "event_time", "model", "version", "out.label",
                 "out.probabilities", "out.prediction")
#: metrics where larger is better (the others are errors)
HIGHER_IS_BETTER = {"accuracy", "balanced_accuracy", "f1", "roc_auc", "r2"}
_EPSILON = 1e-15
#: a slice value is scored from this many labelled rows
MIN_SLICE_ROWS = 30


def prediction_index(table: pa.Table, slice_columns: list[str] = ()) -> bytes:
    """The window's predictions in brief, as Parquet bytes (with the inputs that slices
    cut by, ``in.<column>``)."""
    columns = [name for name in INDEX_COLUMNS if name in table.column_names]
    columns += [f"in.{name}" for name in slice_columns if f"in.{name}" in table.column_names]
    sink = io.BytesIO()
    pq.write_table(table.select(columns), sink, compression="zstd")
    return sink.getvalue()


def read_index(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def join(index: pa.Table, labels: Labels) -> list[Any]:
    """The label of each indexed prediction (None where there is none): the later of its
    label by request id and its label by key and event time, when it has both."""
    ids = index.column("request_id").to_pylist()
    rows = index.column("row").to_pylist() if "row" in index.column_names else [0] * len(ids)
    keys = index.column("key").to_pylist() if "key" in index.column_names else [None] * len(ids)
    times: list[float | None] = [None] * len(ids)
    if "event_time" in index.column_names:
        micros = index.column("event_time").cast(pa.int64()).to_pylist()
        times = [None if m is None else m / 1e6 for m in micros]
    found = []
    for request_id, row, key, when in zip(ids, rows, keys, times, strict=True):
        by_id = labels.by_request.get((request_id, row or 0))
        by_key = labels.by_key.get((key, when, row or 0)) if key is not None else None
        chosen = max((m for m in (by_id, by_key) if m is not None), key=lambda m: m[0],
                     default=None)
        found.append(None if chosen is None else chosen[1])
    return found


def matched_ids(index: pa.Table, labels: Labels) -> list[int]:
    """The ids of the labels not marked matched yet (the replaced ones too) that name a
    prediction of ``index``."""
    ids = index.column("request_id").to_pylist()
    rows = index.column("row").to_pylist() if "row" in index.column_names else [0] * len(ids)
    keys = index.column("key").to_pylist() if "key" in index.column_names else [None] * len(ids)
    micros = index.column("event_time").cast(pa.int64()).to_pylist() \
        if "event_time" in index.column_names else [None] * len(ids)
    found: list[int] = []
    for request_id, row, key, when in zip(ids, rows, keys, micros, strict=True):
        found += labels.ids.get(("request", request_id, row or 0), ())
        if key is not None and when is not None:
            found += labels.ids.get(("key", key, when / 1e6, row or 0), ())
    return found


def measure(index: pa.Table, labels: list[Any], *, task: str | None,
            classes: list[Any] | None, reference: dict[str, Any] | None,
            min_rows: int) -> list[Measured]:
    """The quality checks of one window (see the module docstring)."""
    total = index.num_rows
    have = np.array([label is not None for label in labels], dtype=bool)
    labelled = int(have.sum())
    measured = [Measured("labelled", "", labelled / total if total else 0.0,
                         {"labelled": labelled, "rows": total})]
    if labelled < min_rows:
        return measured
    if task == "regression" or ("out.prediction" in index.column_names
                                and "out.label" not in index.column_names):
        scores = _regression(index, labels, have)
    else:
        scores = _classification(index, labels, have, classes)
    for name, value in scores.items():
        measured.append(Measured("quality", name, value, {"labelled": labelled}))
    metric = (reference or {}).get("metric")
    base = ((reference or {}).get("overall") or {}).get(metric) if metric else None
    if metric in scores and isinstance(base, int | float) and base:
        worse = (base - scores[metric]) if metric in HIGHER_IS_BETTER else \
            (scores[metric] - base)
        measured.append(Measured("quality_drop", metric, worse / abs(base), {
            "window": scores[metric], "test": base}))
    return measured


def measure_slices(index: pa.Table, labels: list[Any], slices: list[Any], *,
                   task: str | None, classes: list[Any] | None,
                   reference: dict[str, Any] | None = None) -> list[Measured]:
    """``quality_slice`` per slice value: subject ``"<metric> <column>=<value>"``, for the
    values with at least :data:`MIN_SLICE_ROWS` labelled rows; and, where the version's
    test metrics (``reference``) scored the same slice value on as many rows,
    ``quality_slice_drop`` (subject ``"<column>=<value>"``): how much worse the slice
    is than in the test set, relatively, as ``quality_drop`` is overall. Slices are cut
    as training cuts them (:class:`tidal.train.evaluate.Slice`, imported only when
    slices are configured: it brings scikit-learn)."""
    if not slices:
        return []
    from tidal.train.evaluate import Slice

    have = np.array([label is not None for label in labels], dtype=bool)
    measured = []
    for spec in slices:
        cut = Slice.of({"column": spec.column, "bins": spec.bins})
        name = f"in.{cut.column}"
        if name not in index.column_names:
            continue
        frame = index.select([name]).to_pandas().rename(columns={name: cut.column})
        values = cut.labels(frame).to_numpy()
        for value in sorted(set(values[have].tolist())):
            rows = (values == value) & have
            if rows.sum() < MIN_SLICE_ROWS:
                continue
            subset = index.filter(pa.array(rows))
            picked = [labels[i] for i in np.flatnonzero(rows)]
            keep = np.ones(len(picked), dtype=bool)
            scores = _regression(subset, picked, keep) if task == "regression" else \
                _classification(subset, picked, keep, classes)
            for metric, score in scores.items():
                measured.append(Measured("quality_slice", f"{metric} {cut.column}={value}",
                                         score, {"labelled": int(rows.sum()),
                                                 "column": cut.column, "value": value,
                                                 "metric": metric}))
            drop = _slice_drop(scores, reference, cut.column, str(value))
            if drop is not None:
                measured.append(Measured("quality_slice_drop", f"{cut.column}={value}",
                                         drop[0], {**drop[1], "labelled": int(rows.sum()),
                                                   "column": cut.column, "value": value}))
    return measured


def _slice_drop(scores: dict[str, float], reference: dict[str, Any] | None, column: str,
                value: str) -> tuple[float, dict[str, Any]] | None:
    """(relative drop, details) of a slice against the same slice of the version's test
    set, when the test set scored it on at least :data:`MIN_SLICE_ROWS` rows."""
    metric = (reference or {}).get("metric")
    if metric not in scores:
        return None
    for row in (reference or {}).get("slices") or []:
        if row.get("slice") == column and str(row.get("value")) == value:
            base = row.get("score")
            if not isinstance(base, int | float) or not math.isfinite(base) or not base \
                    or (row.get("rows") or 0) < MIN_SLICE_ROWS:
                return None
            worse = (base - scores[metric]) if metric in HIGHER_IS_BETTER else \
                (scores[metric] - base)
            return worse / abs(base), {"metric": metric, "window": scores[metric],
                                       "test": base}
    return None


def _classification(index: pa.Table, labels: list[Any], have: np.ndarray,
                    classes: list[Any] | None) -> dict[str, float]:
    truth = np.array([_text(labels[i]) for i in np.flatnonzero(have)], dtype=object)
    names = [_text(c) for c in classes] if classes else sorted(set(truth.tolist()))
    scores: dict[str, float] = {}
    if "out.label" in index.column_names:
        predicted = index.column("out.label").to_pylist()
        chosen = np.array([_text(predicted[i]) for i in np.flatnonzero(have)], dtype=object)
        hit = chosen == truth
        scores["accuracy"] = float(np.mean(hit))
        recalls = [float(np.mean(hit[truth == name])) for name in names
                   if np.any(truth == name)]
        scores["balanced_accuracy"] = float(np.mean(recalls)) if recalls else math.nan
        f1s = [_f1(chosen == name, truth == name) for name in
               (names[-1:] if len(names) == 2 else names)]
        scores["f1"] = float(np.mean(f1s))
    if classes and "out.probabilities" in index.column_names:
        matrix = probability_matrix(index.column("out.probabilities"))
        if matrix is not None and matrix.shape[1] == len(names):
            matrix = matrix[have]
            position = {name: i for i, name in enumerate(names)}
            known = np.array([t in position for t in truth], dtype=bool)
            if known.any():
                columns = np.array([position.get(t, 0) for t in truth])[known]
                chosen_p = matrix[known][np.arange(int(known.sum())), columns]
                scores["log_loss"] = float(-np.mean(np.log(np.clip(chosen_p, _EPSILON, 1))))
            if len(names) == 2:
                auc = _auc(matrix[:, 1], truth == names[1])
                if auc is not None:
                    scores["roc_auc"] = auc
    return {name: value for name, value in scores.items() if not math.isnan(value)}


def _f1(predicted: np.ndarray, actual: np.ndarray) -> float:
    hits = float(np.sum(predicted & actual))
    guessed, present = float(np.sum(predicted)), float(np.sum(actual))
    return 0.0 if hits == 0 else 2 * hits / (guessed + present)


def _regression(index: pa.Table, labels: list[Any], have: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² over the labelled rows whose label is a number (a label that is
    not, e.g. text sent to a regression deployment, is left out rather than fatal)."""
    predicted = index.column("out.prediction").cast(pa.float64()).to_numpy(
        zero_copy_only=False)[have]
    truth = np.array([_number(labels[i]) for i in np.flatnonzero(have)], dtype=np.float64)
    usable = np.isfinite(predicted) & np.isfinite(truth)
    if not usable.any():
        return {}
    errors = predicted[usable] - truth[usable]
    spread = float(np.sum((truth[usable] - truth[usable].mean()) ** 2))
    scores = {"mae": float(np.mean(np.abs(errors))),
              "rmse": float(math.sqrt(np.mean(errors ** 2)))}
    if spread > 0:
        scores["r2"] = 1.0 - float(np.sum(errors ** 2)) / spread
    return scores


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve from ranks (ties share their average rank)."""
    finite = np.isfinite(score)
    score, positive = score[finite], positive[finite]
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(score)  # ties share their average rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _text(value: Any) -> str:
    """Labels compared as text, 1.0 and 1 alike (a CSV's labels come back as floats)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def label_report(project: Project, deployment: str, *, now: float,
                 examples: int = 20) -> dict[str, Any]:
    """What became of the deployment's labels: ``stored``, ``matched`` (joined to a
    prediction), ``waiting`` (not matched yet, but their prediction's window may still be
    judged) and ``unmatched``: not matched although received more than the label delay,
    a window and its lateness ago, so every window they could belong to has been judged
    since (if the monitor ran). These name predictions the log does not hold (a wrong
    id, a key or time that no request had, a prediction older than the label horizon);
    they stay stored, and ``examples`` of them are listed."""
    config = project.settings.monitor
    cutoff = now - (config.label_delay + config.window + config.lateness)
    feedback = project.feedback
    stored, matched = feedback.count(deployment), feedback.matched_count(deployment)
    unmatched, oldest = feedback.unmatched(deployment, received_before=cutoff,
                                           limit=examples)
    return {"stored": stored, "matched": matched,
            "waiting": stored - matched - unmatched, "unmatched": unmatched,
            "unmatched_examples": [
                {k: v for k, v in record.to_dict().items()
                 if k in ("id", "request_id", "row", "entity_key", "event_time", "label",
                          "source", "received_at")} for record in oldest]}
