"""Which test a column gets by default, and the dataset-level verdict.

The choice reproduces Evidently's defaults (``_get_default_stattest``), so that users
moving from Evidently see the same verdicts:

| reference rows | column | distinct values (both samples) | test |
| --- | --- | --- | --- |
| <= 1000 | numeric | > 5 | ks |
| <= 1000 | numeric | 3-5 | chisquare |
| <= 1000 | any | <= 2 | z |
| <= 1000 | categorical | > 2 | chisquare |
| > 1000 | numeric | > 5 | wasserstein |
| > 1000 | numeric | <= 5 | jensenshannon |
| > 1000 | categorical | any | jensenshannon |

The dataset drifts when at least ``drift_share`` (0.5) of its columns drift. With
``correction="bonferroni"`` the p-value thresholds are divided by the number of columns
that use a p-value test (distances are not corrected).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .tests import TESTS, DriftResult

SMALL_REFERENCE = 1000
DRIFT_SHARE = 0.5


def choose_test(reference: np.ndarray, current: np.ndarray, numeric: bool) -> str:
    distinct = len(np.unique(np.concatenate([reference, current]).astype(str)))
    return default_test(len(reference), distinct, numeric)


def default_test(reference_size: int, distinct: int, numeric: bool) -> str:
    """The test for a column with ``reference_size`` values and ``distinct`` distinct
    values over both samples (any count above 5 means "many")."""
    if reference_size <= SMALL_REFERENCE:
        if distinct <= 2:
            return "z"
        if numeric and distinct > 5:
            return "ks"
        return "chisquare"
    if numeric and distinct > 5:
        return "wasserstein"
    return "jensenshannon"


def column_drift(
    column: str, reference: Any, current: Any, *, numeric: bool | None = None,
    test: str | None = None, threshold: float | None = None,
) -> DriftResult:
    """Compare one column; missing values (None, NaN, +-inf) are left out of both."""
    ref, cur = _clean(reference), _clean(current)
    is_numeric = _is_numeric(ref) if numeric is None else numeric
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError(f"column {column!r}: no values to compare (after removing missing)")
    name = test or choose_test(ref, cur, is_numeric)
    if name not in TESTS:
        raise ValueError(f"unknown drift test {name!r}: choose one of {', '.join(TESTS)}")
    if is_numeric and name in ("ks", "wasserstein"):
        ref, cur = ref.astype(float), cur.astype(float)
    return TESTS[name].run(column, ref, cur, is_numeric, threshold)


def check_options(drift_share: float, correction: str | None) -> None:
    """Refuse a drift share outside (0, 1] or an unknown correction (ValueError)."""
    if correction not in (None, "bonferroni"):
        raise ValueError(f"unknown correction {correction!r}: use None or 'bonferroni'")
    if not 0 < drift_share <= 1:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share}")


def threshold_for(test: str, override: float | None, correction: str | None,
                  p_value_tests: int) -> float | None:
    """The threshold a column's test uses: the user's, else the default divided by the
    number of p-value tests under Bonferroni, else None (the test's own default)."""
    if override is not None:
        return override
    if correction == "bonferroni" and test in TESTS and TESTS[test].uses_p_value:
        return TESTS[test].default_threshold / max(p_value_tests, 1)
    return None


def count_p_value_tests(tests: Sequence[str | None]) -> int:
    return sum(1 for test in tests if test in TESTS and TESTS[test].uses_p_value)


def verdict(drifted: Sequence[bool], drift_share: float) -> dict[str, Any]:
    """The dataset-level part of a drift result, from each column's verdict."""
    count = sum(bool(flag) for flag in drifted)
    share = count / len(drifted) if drifted else 0.0
    return {"dataset_drift": bool(drifted) and share >= drift_share, "drift_share": share,
            "number_of_drifted_columns": count}


def dataset_drift(
    reference: Mapping[str, Any], current: Mapping[str, Any], *,
    columns: Sequence[str] | None = None, tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None, drift_share: float = DRIFT_SHARE,
    correction: str | None = None,
) -> dict[str, Any]:
    """Drift of every column, and whether the dataset as a whole drifted.

    ``reference`` and ``current`` map column names to arrays (a DataFrame works).
    """
    names = list(columns if columns is not None else reference.keys())
    tests, thresholds = dict(tests or {}), dict(thresholds or {})
    check_options(drift_share, correction)
    chosen = {}
    for name in names:
        ref, cur = _clean(reference[name]), _clean(current[name])
        chosen[name] = tests.get(name) or choose_test(ref, cur, _is_numeric(ref))
    p_tests = count_p_value_tests(list(chosen.values()))
    results = [
        column_drift(name, reference[name], current[name], test=chosen[name],
                     threshold=threshold_for(chosen[name], thresholds.get(name), correction,
                                             p_tests))
        for name in names
    ]
    return verdict([r.drifted for r in results], drift_share) | {
        "columns": [result.to_dict() for result in results]}


def _clean(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind == "f":  # NaN and +-inf are missing, as in Evidently
        return array[np.isfinite(array)]
    if array.dtype.kind == "O":
        keep = np.array([v is not None and v == v for v in array], dtype=bool)
        return array[keep]
    return array


def _is_numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "iuf"
