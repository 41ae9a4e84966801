"""The checks of one window: each a number per window (a point of a time series).

Check (subject) — value:

- ``rows``, ``requests`` — prediction rows and requests in the window;
- ``missing`` (feature) — the feature's missing share minus the reference's;
- ``schema`` (feature) — share of present values outside what training saw: below its
  minimum, above its maximum, or a category it never had;
- ``drift`` (feature) — drift score: the test's statistic over its threshold (distance
  tests), or log p / log threshold (p-value tests); 1 is the test's own verdict;
- ``drift_share`` — share of the features whose drift score reached 1;
- ``prediction_drift`` — drift score of the main output (score, label or prediction);
- ``output_invalid`` — share of rows whose main output is null or not finite;
- ``prediction_bias`` — largest change of a predicted class's share against the training
  prior (classification), or of the mean prediction in target standard deviations
  (regression);
- ``latency_p50_ms``, ``latency_p99_ms`` — per-request latency inside the server;
- ``error_rate``, ``server_error_rate`` — share of the window's requests that failed
  (4xx and 5xx; 5xx only), from the failed requests the server logs;
- ``model_age_days`` — days from the version's registration to the window's end;
- ``estimated_quality`` (accuracy) — for a classifier whose reference had its target,
  the accuracy expected from the window's confidences before any label arrives
  (NannyML's CBPE idea: the reference's accuracy per confidence bin, weighted by the
  window's confidences), and ``estimated_drop`` (accuracy), how much below the
  reference's accuracy that is, relatively. It is only as good as the calibration: use
  held-out data, not the training rows of a model that overfits them, as the reference.

Drift uses the profiles of :mod:`tidal.data.profile_drift` with Evidently's default tests
and thresholds, against the reference of :mod:`tidal.monitor.reference`. Checks that need
a reference are left out when there is none, and every check but rows, requests, latency
and model age is left out of a window with fewer than ``min_rows`` rows: a verdict on a
handful of predictions is noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tidal.core.errors import ValidationError
from tidal.data.profile_drift import drift_from_profiles
from tidal.data.profiles import CATEGORICAL, NUMERIC, ColumnProfile, DatasetProfile
from tidal.monitor.outputs import CONFIDENCE, LABEL, PREDICTION, main_output
from tidal.monitor.reference import TARGET, Reference
from tidal.stats.tests import TESTS

#: a p-value of 0 has no logarithm: its score is capped here
MAX_SCORE = 10.0


@dataclass(frozen=True)
class Measured:
    """One check's value in one window (subject "" for the whole deployment)."""

    check: str
    subject: str
    value: float | None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class WindowData:
    """What the checks read: the window's rows (``in.*``, monitored ``out.*``, latency,
    row number) and their profile on the reference's bins."""

    table: pa.Table
    profile: DatasetProfile
    features: list[str]
    requests: int
    end: float


def compute(window: WindowData, reference: Reference | None, *,
            registered_at: float | None, min_rows: int) -> list[Measured]:
    """Every check of :mod:`this module <tidal.monitor.checks>` that applies."""
    rows = window.table.num_rows
    measured = [Measured("rows", "", float(rows)), Measured("requests", "",
                                                              float(window.requests))]
    measured += _latency(window.table)
    if registered_at is not None:
        measured.append(Measured("model_age_days", "",
                                 max(0.0, (window.end - registered_at) / 86400.0)))
    if rows < min_rows:
        return measured
    measured += _missing(window, reference)
    measured += _invalid_outputs(window.table)
    if reference is None:
        return measured
    measured += _schema(window, reference)
    measured += _input_drift(window, reference)
    measured += _prediction_drift(window, reference)
    measured += _prediction_bias(window, reference)
    measured += _estimated_quality(window, reference)
    return measured


def error_rates(requests: int, failed: pa.Table) -> list[Measured]:
    """``error_rate`` (4xx and 5xx) and ``server_error_rate`` (5xx) among the window's
    requests, from the failed requests the server logged (one row each)."""
    if failed.num_rows == 0 and requests == 0:
        return []
    status = failed.column("status").to_numpy(zero_copy_only=False) if failed.num_rows \
        else np.empty(0)
    client = int(np.count_nonzero((status >= 400) & (status < 500)))
    server = int(np.count_nonzero(status >= 500))
    total = requests + failed.num_rows
    details = {"requests": total, "4xx": client, "5xx": server}
    return [Measured("error_rate", "", (client + server) / total, details),
            Measured("server_error_rate", "", server / total, details)]


# -- the checks ------------------------------------------------------------------------------

def _latency(table: pa.Table) -> list[Measured]:
    if "latency_ms" not in table.column_names or table.num_rows == 0:
        return []
    latency = table.column("latency_ms")
    if "row" in table.column_names:  # one latency per request, on its first row
        latency = latency.filter(pc.equal(table.column("row"), 0))
    values = latency.to_numpy(zero_copy_only=False).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return []
    p50, p99 = np.percentile(values, [50, 99])
    return [Measured("latency_p50_ms", "", float(p50)),
            Measured("latency_p99_ms", "", float(p99))]


def _missing(window: WindowData, reference: Reference | None) -> list[Measured]:
    measured = []
    for feature in window.features:
        current = window.profile.columns.get(f"in.{feature}")
        if current is None:
            continue
        share = missing_share(current)
        base = reference.profile.columns.get(f"in.{feature}") if reference else None
        before = missing_share(base) if base is not None else 0.0
        measured.append(Measured("missing", feature, share - before,
                                 {"share": share, "reference_share": before}))
    return measured


def _invalid_outputs(table: pa.Table) -> list[Measured]:
    name = main_output(table.column_names)
    if name is None or table.num_rows == 0:
        return []
    column = table.column(name)
    invalid = column.null_count
    if pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
        invalid = int(np.count_nonzero(~np.isfinite(values)))
    return [Measured("output_invalid", "", invalid / table.num_rows, {"output": name,
                                                                       "rows": invalid})]


def _schema(window: WindowData, reference: Reference) -> list[Measured]:
    measured = []
    for feature in window.features:
        name = f"in.{feature}"
        base = reference.profile.columns.get(name)
        if base is None or name not in window.table.column_names:
            continue
        outside, present = out_of_domain(window.table.column(name), base)
        if present:
            measured.append(Measured("schema", feature, outside / present,
                                     {"outside": outside, "present": present}))
    return measured


def _input_drift(window: WindowData, reference: Reference) -> list[Measured]:
    names = [f"in.{f}" for f in window.features if f"in.{f}" in window.profile.columns]
    result = _drift(reference.subset(names), _subset(window.profile, names))
    if result is None:
        return []
    measured = []
    drifted = 0
    for column in result["columns"]:
        score = drift_score(column)
        drifted += score >= 1.0
        measured.append(Measured("drift", column["column"][len("in."):], score, _brief(column)))
    share = drifted / len(result["columns"]) if result["columns"] else 0.0
    measured.append(Measured("drift_share", "", share, {"drifted": drifted,
                                                        "features": len(result["columns"])}))
    return measured


def _prediction_drift(window: WindowData, reference: Reference) -> list[Measured]:
    name = main_output([n for n in window.profile.columns if n in reference.profile.columns])
    if name is None:
        return []
    result = _drift(reference.subset([name]), _subset(window.profile, [name]))
    if result is None or not result["columns"]:
        return []
    column = result["columns"][0]
    return [Measured("prediction_drift", "", drift_score(column),
                     _brief(column) | {"output": name})]


def _prediction_bias(window: WindowData, reference: Reference) -> list[Measured]:
    prior = reference.profile.columns.get(TARGET)
    if LABEL in window.profile.columns:
        current = window.profile.columns[LABEL]
        base = prior if prior is not None else reference.profile.columns.get(LABEL)
        if base is None:
            return []
        shares_now, shares_before = class_shares(current), class_shares(base)
        keys = set(shares_now) | set(shares_before)
        if not keys:
            return []
        gaps = {key: shares_now.get(key, 0.0) - shares_before.get(key, 0.0) for key in keys}
        worst = max(gaps, key=lambda key: abs(gaps[key]))
        return [Measured("prediction_bias", "", abs(gaps[worst]), {
            "class": worst, "share": shares_now.get(worst, 0.0),
            "prior": shares_before.get(worst, 0.0),
            "prior_from": "target" if prior is not None else "reference predictions"})]
    if PREDICTION in window.profile.columns and prior is not None and prior.kind == NUMERIC:
        current = window.profile.columns[PREDICTION]
        std = prior.std
        if current.mean is None or prior.mean is None or not std:
            return []
        return [Measured("prediction_bias", "", abs(current.mean - prior.mean) / std, {
            "mean": current.mean, "target_mean": prior.mean, "target_std": std})]
    return []


def _estimated_quality(window: WindowData, reference: Reference) -> list[Measured]:
    """Accuracy expected from the window's confidences, read through the reference's
    calibration table (the accuracy the model had at each confidence); a bin the
    reference never reached counts at its middle confidence."""
    table = reference.calibration
    if not table or CONFIDENCE not in window.table.column_names or not table.get("accuracy"):
        return []
    edges = np.asarray(table["edges"], dtype=np.float64)
    count = np.asarray(table["count"], dtype=np.float64)
    correct = np.asarray(table["correct"], dtype=np.float64)
    middle = (edges[:-1] + edges[1:]) / 2
    accuracy = np.where(count > 0, correct / np.maximum(count, 1), middle)
    confidence = window.table.column(CONFIDENCE).to_numpy(zero_copy_only=False)
    confidence = confidence[np.isfinite(confidence)]
    if confidence.size == 0:
        return []
    bins = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, len(count) - 1)
    estimate = float(np.mean(accuracy[bins]))
    base = float(table["accuracy"])
    return [Measured("estimated_quality", "accuracy", estimate,
                     {"reference_accuracy": base, "rows": int(confidence.size)}),
            Measured("estimated_drop", "accuracy", (base - estimate) / base,
                     {"estimate": estimate, "reference_accuracy": base})]


# -- helpers ---------------------------------------------------------------------------------

def drift_score(column: dict[str, Any]) -> float:
    """One number per drift result, 1 at the test's threshold and larger when worse."""
    test, statistic = column.get("test"), column.get("statistic")
    threshold, p_value = column.get("threshold"), column.get("p_value")
    spec = TESTS.get(test) if isinstance(test, str) else None
    if spec is None:  # "type" or "missing": drifted or not
        return 1.0 if column.get("drifted") else 0.0
    if spec.uses_p_value:
        if p_value is None or not threshold or threshold >= 1:
            return 0.0
        if p_value <= 0:
            return MAX_SCORE
        return min(MAX_SCORE, max(0.0, math.log(p_value) / math.log(threshold)))
    if statistic is None or not threshold:
        return 0.0
    return min(MAX_SCORE, max(0.0, float(statistic) / float(threshold)))


def missing_share(column: ColumnProfile) -> float:
    total = column.count + column.missing + column.infinite
    return (column.missing + column.infinite) / total if total else 0.0


def class_shares(column: ColumnProfile) -> dict[str, float]:
    """Each class's share, keyed by its text (numeric labels as their integer text)."""
    counts: dict[str, float] = {}
    if column.kind == CATEGORICAL:
        for key, count in (column.values or {}).items():
            counts[str(key)] = float(count)
    else:
        for key, count in (column.values or {}).items():
            number = float(key)
            counts[str(int(number)) if number.is_integer() else str(number)] = float(count)
    total = sum(counts.values())
    return {key: count / total for key, count in counts.items()} if total else {}


def out_of_domain(values: pa.ChunkedArray, reference: ColumnProfile) -> tuple[int, int]:
    """(values outside the reference's range or categories, present values)."""
    present_values = values.drop_null()
    if reference.kind == NUMERIC:
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
            return 0, 0
        array = present_values.to_numpy().astype(np.float64)
        array = array[~np.isnan(array)]
        if reference.min is None or reference.max is None or array.size == 0:
            return 0, int(array.size)
        outside = np.count_nonzero((array < reference.min) | (array > reference.max))
        return int(outside), int(array.size)
    if reference.values is None or reference.other:  # categories not fully known
        return 0, 0
    known = pa.array(list(reference.values), pa.string())
    text = present_values.cast(pa.string())
    outside = len(text) - pc.sum(pc.is_in(text, value_set=known).cast(pa.int64())).as_py() \
        if len(text) else 0
    return int(outside), len(text)


def _drift(reference: DatasetProfile, current: DatasetProfile) -> dict[str, Any] | None:
    if not reference.columns or not current.columns:
        return None
    try:
        return drift_from_profiles(reference, current)
    except ValidationError:  # nothing comparable (e.g. every value missing)
        return None


def _subset(profile: DatasetProfile, names: list[str]) -> DatasetProfile:
    return DatasetProfile(profile.rows, {name: profile.columns[name] for name in names
                                         if name in profile.columns})


def _brief(column: dict[str, Any]) -> dict[str, Any]:
    return {key: column.get(key) for key in ("test", "statistic", "p_value", "threshold",
                                             "drifted", "reason", "approximate")}
