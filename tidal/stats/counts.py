"""Drift tests from what a profile keeps: counts on shared bins, weighted samples, sketches.

Count-based tests (chi-square, Z, Jensen-Shannon, PSI) are the cores of
:mod:`tidal.stats.tests`, re-exported here, so a verdict from profiles and one from raw
samples go through the same arithmetic (and the same empty-bin floor of
:func:`tidal.stats.binning.shares`): on the same bins they are equal.

KS and Wasserstein need distributions, not bins. A profile keeps them in two forms:

- exact value counts (a numeric column with few distinct values): a *weighted sample*
  that is the data itself, so the statistics are exact;
- a KLL sketch (:class:`~tidal.stats.sketch.QuantileSketch`): a weighted sample of a few
  hundred values whose CDF is within ``eps`` (the sketch's normalised rank error, 99 %
  confidence) of the data's CDF at every point.

From two weighted samples both statistics are computed exactly (step CDFs on the union of
their values), so the only approximation is the sketch's own:

- KS statistic: ``|D_sketch - D| <= eps_ref + eps_cur`` (a difference of two CDFs).
  P-value: Smirnov's asymptotic distribution, ``kstwo.sf(D, round(n m / (n + m)))``, as
  SciPy's ``ks_2samp`` does above 10,000 values, with the sketches' true counts as sizes.
  When both sides are exact and small (<= 10,000 values) the samples are rebuilt and
  SciPy's ``ks_2samp`` itself runs, so the p-value is SciPy's exact one. The p-value is
  that of the sketched statistic: with large samples an error of ``eps`` in D moves it by
  orders of magnitude, so read a sketched verdict as firm when D is further than the
  bound from the critical value.
- Wasserstein-1 (``integral |F_ref - F_cur| dx``, the same as the integral of
  ``|Q_ref(p) - Q_cur(p)| dp`` but evaluated on the steps instead of a p grid, so no grid
  error is added): ``|W_sketch - W| <= (eps_ref + eps_cur) * (max - min)`` over both
  columns' exact range; divided, like the raw test, by the reference's standard deviation
  (from exact moments, at least 0.001). The bound is a worst case (every point off by
  ``eps`` in the same direction); in practice, at k = 200 on 100,000 values, the error
  is about 0.02 reference deviations (0.035 at most in 30 trials), against the 0.1
  threshold. The integral is summed here over the steps of :func:`_step_cdfs` (the same
  sum as ``scipy.stats.wasserstein_distance`` with weights, checked against it).

SciPy is imported only inside the KS functions: ``scipy.stats`` costs about 70 MB and
0.7 s at import (see :mod:`tidal.stats.tests`), and a monitor comparing categorical
profiles never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .binning import shares
from .sketch import QuantileSketch
from .tests import DriftResult, chisquare_counts, js_counts, psi_counts, z_counts

__all__ = [
    "ProfileDriftResult", "chisquare_counts", "js_counts", "ks_p_value", "ks_sketches",
    "ks_weighted", "psi_counts", "shares", "wasserstein_sketches", "wasserstein_weighted",
    "z_counts",
]

#: SciPy's ks_2samp is exact up to this many values per sample (its MAX_AUTO_N).
KS_EXACT_MAX = 10_000
MIN_SCALE = 0.001


@dataclass(frozen=True)
class ProfileDriftResult(DriftResult):
    """A :class:`DriftResult` plus how far the statistic may be from the raw-data one.

    ``approximate`` is True when the statistic came from a quantile sketch; then
    ``error_bound`` bounds ``|statistic - raw statistic|`` (99 % confidence). Exact
    results have ``approximate=False`` and ``error_bound=0.0``.
    """

    approximate: bool = False
    error_bound: float = 0.0

    @classmethod
    def of(cls, result: DriftResult, approximate: bool = False,
           error_bound: float = 0.0) -> ProfileDriftResult:
        return cls(result.column, result.test, result.statistic, result.p_value,
                   result.threshold, result.drifted, approximate, float(error_bound))


def ks_p_value(statistic: float, n_ref: int, n_cur: int) -> float:
    """Two-sided asymptotic p-value, exactly as SciPy's ``ks_2samp(method="asymp")``."""
    from scipy import stats as scipy_stats

    big, small = sorted([float(n_ref), float(n_cur)], reverse=True)
    effective = big * small / (big + small)
    return float(np.clip(scipy_stats.kstwo.sf(statistic, np.round(effective)), 0.0, 1.0))


def ks_weighted(ref_values: np.ndarray, ref_weights: np.ndarray, cur_values: np.ndarray,
                cur_weights: np.ndarray, *, exact: bool = True) -> tuple[float, float]:
    """KS statistic and p-value of two weighted samples (weights are counts).

    ``exact`` says the weights are the data's own counts (not a sketch's): then small
    samples are rebuilt and SciPy decides the p-value exactly as on raw data.
    """
    n_ref, n_cur = int(round(ref_weights.sum())), int(round(cur_weights.sum()))
    if exact and max(n_ref, n_cur) <= KS_EXACT_MAX:
        from scipy import stats as scipy_stats

        result = scipy_stats.ks_2samp(np.repeat(ref_values, ref_weights.astype(np.int64)),
                                      np.repeat(cur_values, cur_weights.astype(np.int64)))
        return float(result.statistic), float(result.pvalue)
    ref_cdf, cur_cdf = _step_cdfs(ref_values, ref_weights, cur_values, cur_weights)
    statistic = float(np.max(np.abs(ref_cdf - cur_cdf)))
    return statistic, ks_p_value(statistic, n_ref, n_cur)


def ks_sketches(reference: QuantileSketch,
                current: QuantileSketch) -> tuple[float, float, float]:
    """(statistic, p-value, bound on |statistic - raw statistic|) from two sketches."""
    exact = reference.is_exact and current.is_exact
    statistic, p_value = ks_weighted(*reference.items(), *current.items(), exact=exact)
    return statistic, p_value, reference.rank_error + current.rank_error


def wasserstein_weighted(ref_values: np.ndarray, ref_weights: np.ndarray,
                         cur_values: np.ndarray, cur_weights: np.ndarray) -> float:
    """Wasserstein-1 distance of two weighted samples: the integral of |F_ref - F_cur|.

    Both CDFs are steps on the union of the values, so the integral is a finite sum of
    |F_ref - F_cur| times the gap to the next value: what SciPy's
    ``wasserstein_distance(u, v, u_weights, v_weights)`` computes, to floating rounding.
    """
    if ref_values.size == 0 or cur_values.size == 0:
        raise ValueError("Wasserstein distance needs values on both sides")
    points = np.union1d(ref_values, cur_values)
    ref_cdf = _cdf_at(ref_values, ref_weights, points)
    cur_cdf = _cdf_at(cur_values, cur_weights, points)
    gaps = np.abs(ref_cdf[:-1] - cur_cdf[:-1])
    return float(np.einsum("i,i->", gaps, np.diff(points)))  # np.dot may stall on BLAS


def wasserstein_sketches(reference: QuantileSketch, current: QuantileSketch,
                         scale: float) -> tuple[float, float]:
    """(Wasserstein-1 / scale, bound on its error) from two sketches.

    ``scale`` is the reference's standard deviation (floored at 0.001 here, as the raw
    test does); the bound uses the sketches' exact minimum and maximum.
    """
    scale = max(scale, MIN_SCALE)
    distance = wasserstein_weighted(*reference.items(), *current.items())
    low = min(reference.minimum, current.minimum)
    high = max(reference.maximum, current.maximum)
    bound = (reference.rank_error + current.rank_error) * float(high - low) / scale
    return distance / scale, bound


def _step_cdfs(ref_values: np.ndarray, ref_weights: np.ndarray, cur_values: np.ndarray,
               cur_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both right-continuous CDFs on the sorted union of the two samples' values.

    Hand-written because SciPy's ``ks_2samp`` takes no weights; the sup of |F_ref - F_cur|
    over two step functions is reached at one of their steps, so these points suffice.
    """
    points = np.union1d(ref_values, cur_values)
    return _cdf_at(ref_values, ref_weights, points), _cdf_at(cur_values, cur_weights, points)


def _cdf_at(values: np.ndarray, weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(weights[order])])
    return cumulative[np.searchsorted(values[order], points, side="right")] / cumulative[-1]
