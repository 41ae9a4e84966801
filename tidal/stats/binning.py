"""Shared binning of two samples into matching shares, as the distance tests need.

Evidently-compatible by design, so that Tidal's verdicts can be checked against
Evidently's: a numeric column with more than 20 distinct values is cut at
``numpy.histogram_bin_edges(both samples, bins="sturges")``; anything else is counted per
distinct value. Empty bins get a small share (0.0001, or the smallest non-zero share over
a million when that is smaller) so that log-based distances stay finite.
"""

from __future__ import annotations

import numpy as np

EMPTY_SHARE = 1e-4
MANY_VALUES = 20


def binned_shares(
    reference: np.ndarray, current: np.ndarray, numeric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Shares of each bin (summing to 1) for reference and current, on the same bins."""
    both = np.concatenate([reference, current])
    if numeric and len(np.unique(both)) > MANY_VALUES:
        edges = np.histogram_bin_edges(both, bins="sturges")
        ref_counts = np.histogram(reference, bins=edges)[0]
        cur_counts = np.histogram(current, bins=edges)[0]
    else:
        ref_counts, cur_counts = category_counts(reference, current)
    ref_share = ref_counts / max(len(reference), 1)
    cur_share = cur_counts / max(len(current), 1)
    return _fill_empty(ref_share), _fill_empty(cur_share)


def category_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per distinct value over the union of both samples' values."""
    keys = np.unique(np.concatenate([reference, current]).astype(str))
    ref_values, ref_counts = np.unique(reference.astype(str), return_counts=True)
    cur_values, cur_counts = np.unique(current.astype(str), return_counts=True)
    ref_map = dict(zip(ref_values, ref_counts, strict=True))
    cur_map = dict(zip(cur_values, cur_counts, strict=True))
    return (np.array([ref_map.get(k, 0) for k in keys], dtype=float),
            np.array([cur_map.get(k, 0) for k in keys], dtype=float))


def _fill_empty(shares: np.ndarray) -> np.ndarray:
    non_zero = shares[shares > 0]
    floor = EMPTY_SHARE
    if non_zero.size and non_zero.min() <= EMPTY_SHARE:
        floor = non_zero.min() / 1e6
    return np.where(shares == 0, floor, shares)
