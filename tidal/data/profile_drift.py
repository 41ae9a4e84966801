"""Drift between a reference profile and a window profile, with no raw data.

Same tests, thresholds, default choice and output keys as :func:`tidal.data.drift.compare`
(but for ``reference``, ``current``, ``generated_at``, which name files, and the
per-column ``distribution`` plot data), so a monitor reading stored profiles and a script
comparing two files give the same JSON, plus per column ``approximate`` and
``error_bound`` (see :class:`tidal.stats.counts.ProfileDriftResult`) and ``reason``:
``"distribution"``, ``"missing"``, ``"distribution and missing"``, or None when the
column did not drift.

Missing values, as in :func:`tidal.data.drift.compare`: the tests below ignore them,
but a change in a column's share of missing values is drift too. The share is
``(missing + infinite) / (count + missing + infinite)``: +-inf counts as missing, as the
raw path drops it with nulls and NaN. Two-proportion Z-test; drifted when
p < ``MISSING_P_VALUE`` (0.01) and the share moved by at least ``MISSING_MIN_CHANGE``
(0.02), the constants of :mod:`tidal.data.drift`. A column with values on one side only
is a ``"missing"`` result (statistic: the change of the share) when that test says so; a
column with nothing to compare (no values on either side, or on one side without a
significant change, or absent from the current profile) is listed under ``skipped``
with the reason, as the raw path does. A column that is numeric on one side and
categorical on the other (both with values) is a ``"type"`` drift, kind ``"changed"``,
reason ``"type changed: ..."``, also as the raw path reports it.

What each test gets from the two profiles:

- chi-square, Z, Jensen-Shannon, PSI: counts on shared keys. Categorical columns and
  numeric columns with at most 20 distinct values over both profiles are counted per
  value, exactly as the raw tests count them, so the results are equal. When a side
  kept only its 1,000 most frequent categories (``other > 0``), a category that side
  did not keep has an unknown count (somewhere in its ``other``): only categories whose
  count is known on both sides get a bin (kept by both, or kept by one and absent from
  an untruncated other side, where its count is 0), and everything else goes to one
  ``other`` bin on both sides (the side's count minus its counts in those bins). So
  two samples of one distribution agree on every bin, where comparing a count with an
  ``other``-folded zero would show drift that is not there; the price is that two
  truncated sides sharing few kept categories are compared on little more than the
  ``other`` bin. A numeric column with more values
  uses the reference's histogram bins (plus the under/overflow bins when either side has
  values there); the raw tests cut Sturges bins over both samples instead, which a
  reference fixed in advance cannot do, so the two differ a little on continuous data.
  Z needs per-value counts (it tests the share of the first value).
- KS and Wasserstein: the exact value counts when both sides have them (exact results),
  else the KLL sketches (``approximate: true``, with the bound of
  :mod:`tidal.stats.counts`).
- Default test (Evidently's table, :func:`tidal.stats.defaults.default_test`): reference
  size is the reference's count of present values; distinct values over both sides are
  exact from the value counts (categories: a lower bound past 1,000, which is "many"
  either way); a numeric side without value counts has more than 20, which is all the
  table needs to know (it only asks "at most 2", "3 to 5" or "more than 5").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tidal.core.errors import ValidationError
from tidal.data.drift import MISSING_MIN_CHANGE, MISSING_P_VALUE
from tidal.data.profiles import CATEGORICAL, NUMERIC, ColumnProfile, DatasetProfile
from tidal.stats.binning import MANY_VALUES
from tidal.stats.counts import (
    MIN_SCALE,
    ProfileDriftResult,
    chisquare_counts,
    js_counts,
    ks_weighted,
    psi_counts,
    wasserstein_weighted,
    z_counts,
)
from tidal.stats.defaults import (
    DRIFT_SHARE,
    check_options,
    count_p_value_tests,
    default_test,
    threshold_for,
    verdict,
)
from tidal.stats.tests import TESTS


def drift_from_profiles(
    reference: DatasetProfile, current: DatasetProfile, *,
    tests: Mapping[str, str] | None = None, thresholds: Mapping[str, float] | None = None,
    drift_share: float = DRIFT_SHARE, correction: str | None = None,
) -> dict[str, Any]:
    """Drift of every reference column in ``current``, and the dataset verdict.

    ``tests`` and ``thresholds`` override the test and threshold per column;
    ``correction="bonferroni"`` divides the p-value thresholds by the number of columns
    using a p-value test, as :func:`tidal.data.drift.compare` does. Columns that cannot
    be compared are listed under ``skipped``; when none can be, it is an error.
    """
    try:
        check_options(drift_share, correction)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    tests, thresholds = dict(tests or {}), dict(thresholds or {})
    for test in tests.values():
        _test(test)
    skipped: list[dict[str, str]] = []
    measured: list[tuple[str, dict[str, Any], str | None]] = []  # (name, missing, test)
    for name, ref in reference.columns.items():
        cur = current.columns.get(name)
        if cur is None:
            skipped.append({"column": name, "reason": "not in the current profile"})
            continue
        missing = missing_drift(ref, cur)
        if ref.count == 0 or cur.count == 0:
            if missing["drifted"]:
                measured.append((name, missing, None))
            else:
                skipped.append({"column": name,
                                "reason": "no values to compare (all missing)"})
            continue
        if ref.kind != cur.kind:  # numbers became text or back: drift in itself
            measured.append((name, missing, "type"))
            continue
        measured.append((name, missing, tests.get(name) or choose_test_from_profiles(
            name, ref, cur)))
    if not measured:
        raise ValidationError("no column of the reference profile can be compared with the "
                              "current profile: " + "; ".join(
                                  f"{s['column']}: {s['reason']}" for s in skipped))
    p_tests = count_p_value_tests([test for _, _, test in measured])
    results = []
    for name, missing, test in measured:
        ref, cur = reference.columns[name], current.columns[name]
        if test == "type":
            results.append({
                "column": name, "test": "type", "statistic": 1.0, "p_value": None,
                "threshold": 1.0, "drifted": True, "approximate": False, "error_bound": 0.0,
                "kind": "changed", "missing": missing,
                "reason": f"type changed: {ref.kind} → {cur.kind}"})
            continue
        if test is None:
            result: dict[str, Any] = {
                "column": name, "test": "missing",
                "statistic": abs(missing["current"] - missing["reference"]),
                "p_value": missing["p_value"], "threshold": MISSING_P_VALUE, "drifted": True,
                "approximate": False, "error_bound": 0.0}
        else:
            limit = threshold_for(test, thresholds.get(name), correction, p_tests)
            result = column_drift_from_profiles(name, ref, cur, test=test,
                                                threshold=limit).to_dict()
        distribution = test is not None and result["drifted"]
        result["drifted"] = bool(result["drifted"] or missing["drifted"])
        result.update(kind=ref.kind if ref.count or not cur.count else cur.kind,
                      missing=missing, reason=_reason(distribution, missing["drifted"]))
        results.append(result)
    return verdict([result["drifted"] for result in results], drift_share) | {
        "threshold": drift_share,
        "correction": correction,
        "columns": results,
        "skipped": skipped,
    }


def missing_drift(reference: ColumnProfile, current: ColumnProfile) -> dict[str, Any]:
    """Shares of missing values (+-inf included) on both sides and whether the share
    moved: two-proportion Z-test p < MISSING_P_VALUE and a change >= MISSING_MIN_CHANGE."""
    ref_missing, cur_missing = _missing_count(reference), _missing_count(current)
    ref_total, cur_total = reference.count + ref_missing, current.count + cur_missing
    ref_share = ref_missing / ref_total if ref_total else 0.0
    cur_share = cur_missing / cur_total if cur_total else 0.0
    p_value = None
    drifted = False
    if (ref_missing or cur_missing) and ref_total and cur_total:
        _, p_value = z_counts(ref_missing, ref_total, cur_missing, cur_total)
        drifted = p_value < MISSING_P_VALUE and abs(cur_share - ref_share) >= MISSING_MIN_CHANGE
    return {"reference": ref_share, "current": cur_share, "p_value": p_value,
            "drifted": bool(drifted)}


def _missing_count(column: ColumnProfile) -> int:
    return column.missing + column.infinite


def _reason(distribution: bool, missing: bool) -> str | None:
    if distribution and missing:
        return "distribution and missing"
    if distribution:
        return "distribution"
    return "missing" if missing else None


def choose_test_from_profiles(column: str, reference: ColumnProfile,
                              current: ColumnProfile) -> str:
    """Evidently's default test for this column, decided from the two profiles."""
    _check(column, reference, current)
    if reference.values is None or current.values is None:
        distinct = MANY_VALUES + 1
    else:  # a lower bound past the category cap, where it is "many" either way
        distinct = len(set(reference.values) | set(current.values))
        distinct += 1 if reference.other or current.other else 0
    return default_test(reference.count, distinct, reference.kind == NUMERIC)


def column_drift_from_profiles(column: str, reference: ColumnProfile, current: ColumnProfile,
                               *, test: str | None = None,
                               threshold: float | None = None) -> ProfileDriftResult:
    """One column's verdict from its reference and current profiles."""
    name = test or choose_test_from_profiles(column, reference, current)
    drift_test = _test(name)
    _check(column, reference, current)
    approximate, bound = False, 0.0
    p_value: float | None = None
    if name in ("ks", "wasserstein"):
        if reference.kind != NUMERIC:
            raise ValidationError(f"column {column!r}: {name} needs a numeric column")
        ref_values, ref_weights, ref_error, ref_exact = _distribution(reference)
        cur_values, cur_weights, cur_error, cur_exact = _distribution(current)
        approximate = not (ref_exact and cur_exact)
        if name == "ks":
            statistic, p_value = ks_weighted(ref_values, ref_weights, cur_values, cur_weights,
                                             exact=not approximate)
            bound = ref_error + cur_error
        else:
            scale = max(reference.std or 0.0, MIN_SCALE)
            statistic = wasserstein_weighted(ref_values, ref_weights, cur_values,
                                             cur_weights) / scale
            spread = max(reference.max, current.max) - min(reference.min, current.min)
            bound = (ref_error + cur_error) * spread / scale
    else:
        ref_counts, cur_counts, per_value = _binned(column, reference, current)
        if name == "z":
            if not per_value:
                raise ValidationError(f"column {column!r}: the z test needs a column with "
                                      f"at most {MANY_VALUES} distinct values")
            statistic, p_value = z_counts(ref_counts[0], reference.count, cur_counts[0],
                                          current.count)
        elif name == "chisquare":
            statistic, p_value = chisquare_counts(ref_counts, cur_counts)
        elif name == "jensenshannon":
            statistic = js_counts(ref_counts, cur_counts)
        else:
            statistic = psi_counts(ref_counts, cur_counts)
    result = drift_test.verdict(column, statistic, p_value, threshold)
    return ProfileDriftResult.of(result, approximate, bound)


def _test(name: str) -> Any:
    if name not in TESTS:
        raise ValidationError(f"unknown drift test {name!r}: choose one of {', '.join(TESTS)}")
    return TESTS[name]


def _check(column: str, reference: ColumnProfile, current: ColumnProfile) -> None:
    if reference.kind != current.kind:
        raise ValidationError(f"column {column!r} is {reference.kind} in the reference but "
                              f"{current.kind} in the current data")
    if reference.count == 0 or current.count == 0:
        raise ValidationError(f"column {column!r}: no values to compare (after removing "
                              "missing)")


def _shared_keys(reference: ColumnProfile, current: ColumnProfile) -> list[Any] | None:
    """The values to count each in the raw tests' order (sorted as strings), plus
    ``None`` for the shared "other" bin when a side was truncated; None when a numeric
    side has too many values to count each.

    Untruncated: the union of both sides' values. Truncated (a side has ``other``): only
    values whose count is known on both sides, kept there or absent from a side that
    kept everything (count 0); the rest of each side is its "other" bin.
    """
    if reference.values is None or current.values is None:
        return None
    keys = set(reference.values) | set(current.values)
    if reference.other or current.other:
        keys = {key for key in keys
                if (key in reference.values or not reference.other)
                and (key in current.values or not current.other)}
    shared: list[Any] = sorted(keys, key=str)
    if reference.other or current.other:
        shared.append(None)
    return shared


def _binned(column: str, reference: ColumnProfile,
            current: ColumnProfile) -> tuple[np.ndarray, np.ndarray, bool]:
    """Counts on shared bins, and whether they are per value (else histogram bins)."""
    keys = _shared_keys(reference, current)
    if keys is not None:
        return _counts_on(reference, keys), _counts_on(current, keys), True
    if reference.kind == CATEGORICAL:  # unreachable: categories are always counted
        raise AssertionError("categorical profile without value counts")
    if reference.histogram is None or current.histogram is None \
            or not np.array_equal(reference.edges, current.edges):
        raise ValidationError(f"column {column!r}: the current profile's histogram is not on "
                              "the reference's bins; profile the window with "
                              "profile(window, reference=reference_profile)")
    ref_counts = reference.histogram.astype(float)
    cur_counts = current.histogram.astype(float)
    keep = np.ones(len(ref_counts), dtype=bool)
    for outer in (0, -1):  # under/overflow bins only when something fell there
        keep[outer] = bool(ref_counts[outer] or cur_counts[outer])
    return ref_counts[keep], cur_counts[keep], False


def _counts_on(column: ColumnProfile, keys: list[Any]) -> np.ndarray:
    """Counts on ``keys``; the ``None`` key (last) gets everything not counted before."""
    values = column.values or {}
    counts = np.array([0 if key is None else values.get(key, 0) for key in keys],
                      dtype=float)
    if keys and keys[-1] is None:
        counts[-1] = column.count - counts[:-1].sum()
    return counts


def _distribution(column: ColumnProfile) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """(values, weights, rank error, exact): the exact value counts when kept, else the
    sketch (exact too while it still holds every value)."""
    if column.values is not None:
        keys = sorted(column.values)
        weights = np.array([column.values[key] for key in keys], dtype=float)
        return np.array(keys, dtype=float), weights, 0.0, True
    if column.sketch is None:
        raise AssertionError("numeric profile without a sketch")
    values, weights = column.sketch.items()
    return values, weights, column.sketch.rank_error, column.sketch.is_exact
