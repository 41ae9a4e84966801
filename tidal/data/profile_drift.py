"""Drift between a reference profile and a window profile, with no raw data.

Same tests, thresholds, default choice and output shape as
:func:`tidal.stats.defaults.dataset_drift`, so a monitor reading stored profiles and a
script comparing two files give the same JSON (plus ``approximate`` and ``error_bound``
per column, see :class:`tidal.stats.counts.ProfileDriftResult`).

What each test gets from the two profiles:

- chi-square, Z, Jensen-Shannon, PSI: counts on shared keys. Categorical columns and
  numeric columns with at most 20 distinct values over both profiles are counted per
  value, exactly as the raw tests count them, so the results are equal. Truncated
  categories (past 1,000) add one shared "other" bin. A numeric column with more values
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
from tidal.stats.defaults import DRIFT_SHARE, default_test
from tidal.stats.tests import TESTS


def drift_from_profiles(
    reference: DatasetProfile, current: DatasetProfile, *,
    tests: Mapping[str, str] | None = None, thresholds: Mapping[str, float] | None = None,
    drift_share: float = DRIFT_SHARE, correction: str | None = None,
) -> dict[str, Any]:
    """Drift of every reference column in ``current``, and the dataset verdict.

    ``tests`` and ``thresholds`` override the test and threshold per column;
    ``correction="bonferroni"`` divides the p-value thresholds by the number of columns
    using a p-value test, as :func:`tidal.stats.defaults.dataset_drift` does.
    """
    if correction not in (None, "bonferroni"):
        raise ValidationError(f"unknown correction {correction!r}: use None or 'bonferroni'")
    names = list(reference.columns)
    absent = [name for name in names if name not in current.columns]
    if absent:
        raise ValidationError(f"the current profile has no column {', '.join(absent)}")
    tests, thresholds = dict(tests or {}), dict(thresholds or {})
    chosen = {name: tests.get(name) or choose_test_from_profiles(
        name, reference.columns[name], current.columns[name]) for name in names}
    p_tests = [name for name in names if _test(chosen[name]).uses_p_value]
    results = []
    for name in names:
        limit = thresholds.get(name)
        if limit is None and correction == "bonferroni" and name in p_tests:
            limit = TESTS[chosen[name]].default_threshold / len(p_tests)
        results.append(column_drift_from_profiles(
            name, reference.columns[name], current.columns[name], test=chosen[name],
            threshold=limit))
    drifted = sum(result.drifted for result in results)
    share = drifted / len(results) if results else 0.0
    return {
        "dataset_drift": bool(results) and share >= drift_share,
        "drift_share": share,
        "number_of_drifted_columns": drifted,
        "columns": [result.to_dict() for result in results],
    }


def choose_test_from_profiles(column: str, reference: ColumnProfile,
                              current: ColumnProfile) -> str:
    """Evidently's default test for this column, decided from the two profiles."""
    _check(column, reference, current)
    keys = _shared_keys(reference, current)
    distinct = MANY_VALUES + 1 if keys is None else len(keys)
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
    """The union of both sides' values in the raw tests' order (sorted as strings), plus
    ``None`` for the shared "other" bin of truncated categories; None when a numeric side
    has too many values to count each."""
    if reference.values is None or current.values is None:
        return None
    keys: list[Any] = sorted(set(reference.values) | set(current.values), key=str)
    if reference.other or current.other:
        keys.append(None)
    return keys


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
    values = column.values or {}
    return np.array([column.other if key is None else values.get(key, 0) for key in keys],
                    dtype=float)


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
