"""Drift between two tables, one column at a time, with Evidently-compatible defaults.

``compare(reference, current)`` reads both tables column by column (Parquet is never
loaded whole), reduces each column to sorted numbers or category counts
(:mod:`tidal.data.samples`), picks the test Evidently would pick
(:func:`tidal.stats.defaults.default_test`) and gives per column the statistic, the
verdict and the two distributions on shared bins for the report. Columns are processed
on two threads: sorting, binary searches and Parquet decoding release the GIL.

Missing values: the distribution tests ignore them, as Evidently's do, but a change in
the share of missing values is drift too (a broken upstream join shows up as nulls, not
as a new distribution). A column's missing share is compared with a two-proportion
Z-test; it counts as drifted when p < 0.01 and the share moved by at least 0.02. Both
shares are in the result, so the reason is visible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from tidal.core.errors import ValidationError
from tidal.stats import tests as drift_tests
from tidal.stats.binning import MANY_VALUES, align_counts, sturges_edges
from tidal.stats.defaults import (
    DRIFT_SHARE,
    check_options,
    count_p_value_tests,
    default_test,
    threshold_for,
    verdict,
)

from .samples import ColumnSample, Kind, arrow_kind, reduce_column
from .sources import TableSource, open_source

MISSING_P_VALUE = 0.01
MISSING_MIN_CHANGE = 0.02
#: categories shown in a distribution; the rest are summed into one bar
PLOT_CATEGORIES = 50
OTHER = "(other)"


@dataclass
class _Measured:
    """One column's statistic before thresholds (a correction needs every column first)."""

    column: str
    kind: Kind
    test: str
    statistic: float
    p_value: float | None
    missing: dict[str, Any]
    distribution: dict[str, Any]
    reason: str | None = None


def compare(
    reference: Any, current: Any, *,
    columns: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = DRIFT_SHARE,
    correction: str | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Compare every shared column of ``reference`` and ``current`` (paths, DataFrames or
    Arrow tables) and say whether the dataset drifted.

    ``kinds`` forces a column to be treated as ``"numeric"`` or ``"categorical"`` (an
    integer code is a category); ``tests`` and ``thresholds`` override the defaults per
    column; ``correction="bonferroni"`` divides p-value thresholds by the number of
    p-value tests.
    """
    try:
        check_options(drift_share, correction)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    for name, test in (tests or {}).items():
        if test not in drift_tests.TESTS:
            raise ValidationError(f"column {name!r}: unknown drift test {test!r}; choose one "
                                  f"of {', '.join(drift_tests.TESTS)}")
    ref_source, cur_source = open_source(reference), open_source(current)
    for option, given in (("tests", tests), ("thresholds", thresholds), ("kinds", kinds)):
        unknown = sorted(set(given or {}) - set(ref_source.names))
        if unknown:
            raise ValidationError(f"{option} names columns {ref_source.name} does not have: "
                                  f"{', '.join(map(repr, unknown))}")
    chosen, skipped = _columns(ref_source, cur_source, columns, dict(kinds or {}))

    def measure(item: tuple[str, Any]) -> _Measured | dict[str, str]:
        name, kind = item
        if isinstance(kind, tuple):  # the column changed type
            return _Measured(name, "changed", "type", 1.0, None,
                             {"reference": 0.0, "current": 0.0, "p_value": None,
                              "drifted": False}, {}, reason=f"type changed: {kind[1]}")
        ref = _reduce(ref_source, name, kind)
        cur = _reduce(cur_source, name, kind)
        return _measure(name, kind, ref, cur, (tests or {}).get(name))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(measure, chosen.items()))
    measured = [m for m in outcomes if isinstance(m, _Measured)]
    skipped += [m for m in outcomes if isinstance(m, dict)]
    if not measured:
        reasons = "; ".join(f"{s['column']}: {s['reason']}" for s in skipped)
        raise ValidationError(f"no column of {ref_source.name} can be compared with "
                              f"{cur_source.name} ({reasons or 'no columns'})")
    results = _verdicts(measured, dict(thresholds or {}), correction)
    return verdict([result["drifted"] for result in results], drift_share) | {
        "threshold": drift_share,
        "correction": correction,
        "reference": {"name": ref_source.name, "rows": ref_source.num_rows},
        "current": {"name": cur_source.name, "rows": cur_source.num_rows},
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "columns": results,
        "skipped": skipped,
    }


def _columns(ref: TableSource, cur: TableSource, wanted: Sequence[str] | None,
             kinds: dict[str, Kind]) -> tuple[dict[str, Kind], list[dict[str, str]]]:
    """The columns to compare with their kinds, and the ones left out with why.

    A column whose type changed kind between the tables (numbers became text) gets the
    kind ``"changed"``: that is drift in itself, and comparing the values would be
    meaningless. A column of the Arrow type ``null`` (every value missing) takes the
    other table's kind, so that "all values vanished" is reported as missing-value drift.
    """
    names = list(wanted) if wanted is not None else list(ref.names)
    for name in names:
        if wanted is not None and name not in ref.names:
            raise ValidationError(f"{ref.name} has no column {name!r}")
    for name, kind in kinds.items():
        if kind not in ("numeric", "categorical"):
            raise ValidationError(f"column {name!r}: kind must be numeric or categorical, "
                                  f"not {kind!r}")
    chosen: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    for name in names:
        if name not in cur.names:
            skipped.append({"column": name, "reason": f"not in {cur.name}"})
            continue
        ref_type, cur_type = ref.arrow_schema.field(name).type, cur.arrow_schema.field(name).type
        ref_kind, cur_kind = _kind_of(ref_type), _kind_of(cur_type)
        if name in kinds:
            chosen[name] = kinds[name]
        elif ref_kind is None or cur_kind is None:
            shown = ref_type if ref_kind is None else cur_type
            skipped.append({"column": name, "reason": f"type {shown} is not compared"})
        elif "null" in (ref_kind, cur_kind):
            kind = cur_kind if ref_kind == "null" else ref_kind
            if kind == "null":
                skipped.append({"column": name, "reason": "no values in either table"})
            else:
                chosen[name] = kind
        elif ref_kind != cur_kind:
            chosen[name] = ("changed", f"{ref_kind} ({ref_type}) → {cur_kind} ({cur_type})")
        else:
            chosen[name] = ref_kind
    return chosen, skipped


def _kind_of(arrow_type: Any) -> str | None:
    import pyarrow as pa

    return "null" if pa.types.is_null(arrow_type) else arrow_kind(arrow_type)


def _measure(name: str, kind: Kind, ref: ColumnSample, cur: ColumnSample,
             test: str | None) -> _Measured | dict[str, str]:
    missing = _missing(ref, cur)
    if ref.size == 0 or cur.size == 0:
        if not missing["drifted"]:
            return {"column": name, "reason": "no values to compare (all missing)"}
        return _Measured(name, kind, "missing", abs(missing["current"] - missing["reference"]),
                         missing["p_value"], missing, {})
    distinct = _union_distinct(ref, cur)
    numeric = kind == "numeric"
    test = test or default_test(ref.size, distinct, numeric)
    if test in ("ks", "wasserstein") and not numeric:
        raise ValidationError(f"column {name!r}: the {test} test needs numbers, and the "
                              "column is categorical")
    if test == "z" and distinct > 2:  # it compares one value's share: blind to the rest
        raise ValidationError(f"column {name!r}: the z test compares two values and the "
                              f"column has {distinct}; use chisquare or jensenshannon")
    binned = numeric and distinct > MANY_VALUES
    if binned:
        edges = sturges_edges(min(ref.values[0], cur.values[0]),
                              max(ref.values[-1], cur.values[-1]), ref.size + cur.size)
        ref_counts = np.histogram(ref.values, bins=edges)[0].astype(float)
        cur_counts = np.histogram(cur.values, bins=edges)[0].astype(float)
        distribution = {"kind": "numeric", "edges": edges.tolist(),
                        "reference": ref_counts.tolist(), "current": cur_counts.tolist()}
    else:
        keys, ref_counts, cur_counts = align_counts(*ref.value_counts(), *cur.value_counts())
        distribution = _categorical_distribution(keys, ref_counts, cur_counts)
    statistic, p_value = _statistic(test, ref, cur, ref_counts, cur_counts)
    return _Measured(name, kind, test, statistic, p_value, missing, distribution)


def _statistic(test: str, ref: ColumnSample, cur: ColumnSample, ref_counts: np.ndarray,
               cur_counts: np.ndarray) -> tuple[float, float | None]:
    if test == "ks":
        return drift_tests.ks(ref.values, cur.values, True)
    if test == "wasserstein":
        return drift_tests.wasserstein_normed_sorted(ref.values, cur.values), None
    if test == "jensenshannon":
        return drift_tests.js_counts(ref_counts, cur_counts), None
    if test == "psi":
        return drift_tests.psi_counts(ref_counts, cur_counts), None
    if test == "chisquare":
        return drift_tests.chisquare_counts(ref_counts, cur_counts)
    # z: share of the first value (in sorted order) on each side
    return drift_tests.z_counts(ref_counts[0], ref.size, cur_counts[0], cur.size)


def _union_distinct(ref: ColumnSample, cur: ColumnSample) -> int:
    """Distinct values over both samples; exact up to MANY_VALUES, a lower bound above."""
    ref_distinct, cur_distinct = ref.distinct(), cur.distinct()
    if max(ref_distinct, cur_distinct) > MANY_VALUES:
        return max(ref_distinct, cur_distinct)
    return len(np.union1d(ref.value_counts()[0], cur.value_counts()[0]))


def _missing(ref: ColumnSample, cur: ColumnSample) -> dict[str, Any]:
    ref_share = ref.missing / ref.total if ref.total else 0.0
    cur_share = cur.missing / cur.total if cur.total else 0.0
    p_value = None
    drifted = False
    if (ref.missing or cur.missing) and ref.total and cur.total:
        _, p_value = drift_tests.z_counts(ref.missing, ref.total, cur.missing, cur.total)
        drifted = p_value < MISSING_P_VALUE and abs(cur_share - ref_share) >= MISSING_MIN_CHANGE
    return {"reference": ref_share, "current": cur_share, "p_value": p_value,
            "drifted": bool(drifted)}


def _categorical_distribution(keys: np.ndarray, ref_counts: np.ndarray,
                              cur_counts: np.ndarray) -> dict[str, Any]:
    labels = [_label(key) for key in keys]
    if len(labels) > PLOT_CATEGORIES:
        top = np.sort(np.argsort(-(ref_counts + cur_counts), kind="stable")[:PLOT_CATEGORIES])
        rest = np.ones(len(labels), dtype=bool)
        rest[top] = False
        labels = [labels[i] for i in top] + [OTHER]
        ref_counts = np.append(ref_counts[top], ref_counts[rest].sum())
        cur_counts = np.append(cur_counts[top], cur_counts[rest].sum())
    return {"kind": "categorical", "labels": labels, "reference": ref_counts.tolist(),
            "current": cur_counts.tolist()}


def _label(key: Any) -> str:
    if isinstance(key, float | np.floating):
        return f"{float(key):g}"
    return str(key)


def _reduce(source: TableSource, name: str, kind: Kind) -> ColumnSample:
    import pyarrow as pa

    try:
        return reduce_column(source.column(name), kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(f"column {name!r} of {source.name} cannot be read as {kind} "
                              f"({str(exc).splitlines()[0]})") from None


def _verdicts(measured: list[_Measured], thresholds: dict[str, float],
              correction: str | None) -> list[dict[str, Any]]:
    """Thresholds (corrected when asked) applied to every measured column.

    ``drifted`` says whether the column drifted; ``reason`` says why: "distribution"
    (the test's statistic crossed its threshold), "missing" (the share of missing values
    moved), both, or "type changed: ...". The statistic and threshold are always those
    of the distribution test, so a column can drift with a statistic under its threshold
    when the reason is "missing".
    """
    p_tests = count_p_value_tests([m.test for m in measured])
    results = []
    for m in measured:
        if m.test in ("missing", "type"):
            result = {"column": m.column, "test": m.test, "statistic": m.statistic,
                      "p_value": m.p_value,
                      "threshold": MISSING_P_VALUE if m.test == "missing" else 1.0,
                      "drifted": True, "reason": m.reason or "missing"}
        else:
            test = drift_tests.TESTS[m.test]
            limit = threshold_for(m.test, thresholds.get(m.column), correction, p_tests)
            result = test.verdict(m.column, m.statistic, m.p_value, limit).to_dict()
            reasons = [why for why, hit in (("distribution", result["drifted"]),
                                            ("missing", m.missing["drifted"])) if hit]
            result["drifted"] = bool(reasons)
            result["reason"] = " and ".join(reasons) or None
        result.update(kind=m.kind, missing=m.missing, distribution=m.distribution)
        results.append(result)
    return results
