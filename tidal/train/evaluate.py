"""Metrics, and the error-analysis table per slice.

Why a slice table: an overall metric hides where a model fails. The MLOps course's error
analysis puts, for every value of every slice (a column, or a numeric column cut into
bins), the metric, the trivial baseline's metric on the same rows, the gap between them,
the share of the data and the share of the errors. A slice whose share of errors is much
larger than its share of data is where to look first, and the gate checks "important"
slices against thresholds from this table (:mod:`tidal.train.gate`).

Metrics are scikit-learn's; only the table is written here, because no library produces
this table for arbitrary slices with a baseline comparison.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from tidal.train.gate import HIGHER_IS_BETTER, higher_is_better  # noqa: F401 - re-exported

Task = Literal["classification", "regression"]

ALL = "(all)"
MISSING = "(missing)"
OUT_OF_RANGE = "(out of range)"

def _positive_proba(y_proba: np.ndarray) -> np.ndarray:
    return y_proba[:, -1] if y_proba.ndim == 2 else y_proba


def metrics(
    task: Task, y_true: Any, y_pred: Any, y_proba: Any = None, *,
    labels: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Standard metrics of one set of predictions.

    Classification: ``accuracy``, ``balanced_accuracy``, ``f1`` (binary with the larger
    label as positive when there are two labels, else macro), ``roc_auc`` (with
    probabilities and two labels), ``log_loss`` (with probabilities). Regression: ``mae``,
    ``rmse``, ``r2``. ``y_proba`` columns follow ``labels`` (the model's ``classes_``;
    by default the sorted labels of ``y_true`` and ``y_pred``). A metric that is undefined on
    these rows (e.g. ROC AUC with one class present) is NaN.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        names = (
            ["accuracy", "balanced_accuracy", "f1"] if task == "classification"
            else ["mae", "rmse", "r2"]
        )
        return {name: math.nan for name in names}
    if task == "regression":
        y_true = y_true.astype(float)
        y_pred = y_pred.astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r2 = skm.r2_score(y_true, y_pred) if len(y_true) > 1 else math.nan
        return {
            "mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "r2": float(r2),
        }
    if task != "classification":
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
    label_list = (
        list(labels) if labels is not None
        else sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    )
    with warnings.catch_warnings():
        # Slices can hold a single class; scikit-learn warns, the value is still defined.
        warnings.simplefilter("ignore")
        out: dict[str, float] = {
            "accuracy": float(skm.accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        }
        if len(label_list) == 2:
            out["f1"] = float(skm.f1_score(
                y_true, y_pred, labels=label_list, pos_label=label_list[-1],
                average="binary", zero_division=0,
            ))
        else:
            out["f1"] = float(skm.f1_score(
                y_true, y_pred, labels=label_list, average="macro", zero_division=0,
            ))
        if y_proba is not None:
            proba = np.asarray(y_proba, dtype=float)
            if len(label_list) == 2:
                present = len(set(y_true.tolist())) == 2
                out["roc_auc"] = (
                    float(skm.roc_auc_score(y_true == label_list[-1], _positive_proba(proba)))
                    if present else math.nan
                )
                if proba.ndim == 1:
                    proba = np.column_stack([1.0 - proba, proba])
            out["log_loss"] = float(skm.log_loss(y_true, proba, labels=label_list))
    return out


@dataclass(frozen=True)
class Slice:
    """How to cut the rows: by the values of ``column``, or by bins of a numeric column.

    ``bins``: explicit edges (intervals are closed on the left, ``[a, b)``, the last one
    closed on both sides); values outside them go to ``"(out of range)"``.
    ``quantiles``: that many equal-frequency bins, edges computed on the evaluated rows.
    Missing values are their own slice value, ``"(missing)"``.
    """

    column: str
    bins: tuple[float, ...] | None = None
    quantiles: int | None = None

    def __post_init__(self) -> None:
        if self.bins is not None and self.quantiles is not None:
            raise ValueError(f"slice on {self.column!r}: give bins or quantiles, not both")
        if self.bins is not None:
            object.__setattr__(self, "bins", tuple(float(b) for b in self.bins))
            if len(self.bins) < 2 or list(self.bins) != sorted(set(self.bins)):
                raise ValueError(
                    f"slice on {self.column!r}: bins must be at least two increasing edges"
                )
        if self.quantiles is not None and self.quantiles < 1:
            raise ValueError(f"slice on {self.column!r}: quantiles must be at least 1")

    @classmethod
    def of(cls, spec: Slice | str | Mapping[str, Any]) -> Slice:
        """A Slice from itself, a column name, or a mapping such as a ``tidal.toml`` table."""
        if isinstance(spec, Slice):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        return cls(
            spec["column"],
            bins=tuple(spec["bins"]) if spec.get("bins") is not None else None,
            quantiles=spec.get("quantiles"),
        )

    def labels(self, frame: pd.DataFrame) -> pd.Series:
        """The slice value of every row, as strings (ordered categorical when binned)."""
        if self.column not in frame.columns:
            raise ValueError(f"slice column {self.column!r} is not in the evaluated data")
        values = frame[self.column]
        if self.bins is None and self.quantiles is None:
            labelled = values.astype(object).where(values.notna(), MISSING)
            return labelled.map(str)
        numbers = pd.to_numeric(values, errors="raise").astype(float)
        if self.bins is not None:
            edges = list(self.bins)
        else:
            qs = np.linspace(0.0, 1.0, int(self.quantiles or 1) + 1)
            edges = sorted(set(np.nanquantile(numbers.to_numpy(), qs).tolist()))
            if len(edges) < 2:
                edges = [edges[0], edges[0]] if edges else [0.0, 0.0]
        names = _interval_names(edges)
        codes = np.searchsorted(np.asarray(edges), numbers.to_numpy(), side="right") - 1
        codes = np.where(numbers.to_numpy() == edges[-1], len(edges) - 2, codes)
        out = np.empty(len(numbers), dtype=object)
        in_range = (codes >= 0) & (codes < len(edges) - 1)
        out[in_range] = np.asarray(names, dtype=object)[codes[in_range]]
        out[~in_range] = OUT_OF_RANGE
        out[numbers.isna().to_numpy()] = MISSING
        return pd.Series(out, index=frame.index)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _interval_names(edges: list[float]) -> list[str]:
    if len(edges) == 2 and edges[0] == edges[1]:
        return [f"[{_fmt(edges[0])}, {_fmt(edges[1])}]"]
    names = [f"[{_fmt(a)}, {_fmt(b)})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    names[-1] = names[-1][:-1] + "]"
    return names


def _errors(task: Task, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    if task == "classification":
        return (y_true != y_pred).astype(float)
    return np.abs(y_true.astype(float) - y_pred.astype(float))


def _order(values: pd.Series, spec: Slice) -> list[str]:
    present = pd.unique(values).tolist()
    special = [v for v in (OUT_OF_RANGE, MISSING) if v in present]
    regular = [v for v in present if v not in special]
    if spec.bins is not None or spec.quantiles is not None:
        regular.sort(key=lambda name: float(name[1:].split(",")[0]))
    else:
        def key(name: str) -> tuple[int, float, str]:
            try:
                return (0, float(name), name)
            except ValueError:
                return (1, 0.0, name)

        regular.sort(key=key)
    return regular + special


def slice_table(
    task: Task, frame: pd.DataFrame, y_true: Any, y_pred: Any,
    slices: Mapping[str, Slice | str | Mapping[str, Any]], baseline_pred: Any, metric: str,
    *, y_proba: Any = None, baseline_proba: Any = None, labels: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """The error-analysis table: one row for all data, then one per value of each slice.

    Each row: ``slice`` (the slice name, ``"(all)"`` for the first row), ``value``,
    ``rows``, ``share_of_data``, ``metric`` (its name), ``score`` (the model's metric on the
    rows), ``baseline`` (the baseline's metric on the same rows), ``gap_to_baseline``
    (``score - baseline``, so positive is better for higher-is-better metrics and negative
    is better for error metrics), ``errors`` (misclassified rows, or the sum of absolute
    errors) and ``share_of_errors`` (``errors`` over all the errors; 0 when there are none).
    For each slice, ``share_of_data`` and ``share_of_errors`` add up to 1. ``frame`` holds
    the slice columns and is aligned by position with the predictions.
    Proba-based metrics (``roc_auc``, ``log_loss``) need ``y_proba`` and ``baseline_proba``.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    base = np.asarray(baseline_pred)
    n = len(y_true)
    if not (len(y_pred) == len(base) == len(frame) == n):
        raise ValueError(
            f"rows differ: frame {len(frame)}, y_true {n}, y_pred {len(y_pred)}, "
            f"baseline_pred {len(base)}"
        )
    higher_is_better(metric)
    if metric in ("roc_auc", "log_loss") and (y_proba is None or baseline_proba is None):
        raise ValueError(f"metric {metric!r} needs y_proba and baseline_proba")
    proba = None if y_proba is None else np.asarray(y_proba)
    base_proba = None if baseline_proba is None else np.asarray(baseline_proba)
    if task == "classification" and labels is None:
        labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()) | set(base.tolist()))
    errors = _errors(task, y_true, y_pred)
    total_errors = float(errors.sum())

    def row(name: str, value: str, mask: np.ndarray) -> dict[str, Any]:
        def score(pred: np.ndarray, p: np.ndarray | None) -> float:
            values = metrics(
                task, y_true[mask], pred[mask], None if p is None else p[mask], labels=labels,
            )
            return values.get(metric, math.nan)

        model_score = score(y_pred, proba)
        base_score = score(base, base_proba)
        slice_errors = float(errors[mask].sum())
        return {
            "slice": name,
            "value": value,
            "rows": int(mask.sum()),
            "share_of_data": float(mask.sum()) / n if n else math.nan,
            "metric": metric,
            "score": model_score,
            "baseline": base_score,
            "gap_to_baseline": model_score - base_score,
            "errors": slice_errors,
            "share_of_errors": slice_errors / total_errors if total_errors > 0 else 0.0,
        }

    table = [row(ALL, ALL, np.ones(n, dtype=bool))]
    positional = frame.reset_index(drop=True)
    for name, spec_like in slices.items():
        spec = Slice.of(spec_like)
        values = spec.labels(positional)
        array = values.to_numpy()
        for value in _order(values, spec):
            table.append(row(name, value, array == value))
    return table
