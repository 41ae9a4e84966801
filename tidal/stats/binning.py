"""Shared binning of two samples into matching counts, as the distance tests need.

Evidently-compatible by design, so that Tidal's verdicts can be checked against
Evidently's: a numeric column with more than 20 distinct values is cut at
``numpy.histogram_bin_edges(both samples, bins="sturges")``; anything else is counted per
distinct value. When counts become shares, empty bins get a small share (0.0001, or the
smallest non-zero share over a million when that is smaller) so that log-based distances
stay finite.
"""

from __future__ import annotations

import numpy as np

EMPTY_SHARE = 1e-4
MANY_VALUES = 20


def binned_counts(
    reference: np.ndarray, current: np.ndarray, numeric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin for reference and current, on the same bins."""
    both = np.concatenate([reference, current])
    if numeric and len(np.unique(both)) > MANY_VALUES:
        edges = sturges_edges(float(both.min()), float(both.max()), both.size)
        return (np.histogram(reference, bins=edges)[0].astype(float),
                np.histogram(current, bins=edges)[0].astype(float))
    return category_counts(reference, current)


def category_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per distinct value over the union of both samples' values (sorted keys)."""
    ref_values, ref_counts = np.unique(reference.astype(str), return_counts=True)
    cur_values, cur_counts = np.unique(current.astype(str), return_counts=True)
    return align_counts(ref_values, ref_counts, cur_values, cur_counts)[1:]


def align_counts(
    ref_keys: np.ndarray, ref_counts: np.ndarray, cur_keys: np.ndarray, cur_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of two samples on the sorted union of their keys (0 where a key is absent)."""
    keys = np.union1d(ref_keys, cur_keys)
    ref = np.zeros(len(keys))
    cur = np.zeros(len(keys))
    ref[np.searchsorted(keys, ref_keys)] = ref_counts
    cur[np.searchsorted(keys, cur_keys)] = cur_counts
    return keys, ref, cur


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares summing to 1, empty bins floored as Evidently does."""
    share = counts / max(float(counts.sum()), 1.0)
    non_zero = share[share > 0]
    floor = EMPTY_SHARE
    if non_zero.size and non_zero.min() <= EMPTY_SHARE:
        floor = non_zero.min() / 1e6
    return np.where(share == 0, floor, share)


def sturges_edges(low: float, high: float, size: int) -> np.ndarray:
    """``numpy.histogram_bin_edges(x, bins="sturges")`` from x's min, max and size alone,
    so two sorted samples need not be concatenated to get Evidently's bins."""
    width = (high - low) / (np.log2(size) + 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    bins = int(np.ceil((high - low) / width)) if width else 1
    return np.linspace(low, high, bins + 1, endpoint=True)
