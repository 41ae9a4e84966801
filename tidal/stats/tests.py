"""The per-column drift tests: p-value tests and distances, each with its own threshold.

P-values come from SciPy (exact where SciPy is exact); distances follow the definitions
Evidently uses, so verdicts can be compared one to one:

- ``ks``: two-sample Kolmogorov-Smirnov, drift when p < threshold (0.05).
- ``chisquare``: chi-square of current counts against reference shares, p < 0.05.
- ``z``: two-proportion Z-test on the share of the first value, p < 0.05.
- ``wasserstein``: Wasserstein distance divided by the reference's standard deviation
  (at least 0.001), drift when >= 0.1.
- ``jensenshannon``: Jensen-Shannon distance (natural log) of binned shares, >= 0.1.
- ``psi``: population stability index of binned shares, >= 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats
from scipy.spatial import distance

from .binning import binned_shares, category_counts


@dataclass(frozen=True)
class DriftResult:
    """One column's verdict, in the shape the drift JSON promises to scripts."""

    column: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DriftTest:
    name: str
    #: (reference, current, numeric) → (statistic, p-value or None)
    compute: Callable[[np.ndarray, np.ndarray, bool], tuple[float, float | None]]
    default_threshold: float
    #: True: drift when the p-value is below the threshold; False: statistic at/above it
    uses_p_value: bool

    def run(self, column: str, reference: np.ndarray, current: np.ndarray, numeric: bool,
            threshold: float | None = None) -> DriftResult:
        limit = self.default_threshold if threshold is None else threshold
        statistic, p_value = self.compute(reference, current, numeric)
        if self.uses_p_value:
            drifted = p_value is not None and p_value < limit
        else:
            drifted = statistic >= limit
        return DriftResult(column, self.name, float(statistic),
                           None if p_value is None else float(p_value), limit, bool(drifted))


def ks(reference: np.ndarray, current: np.ndarray, numeric: bool) -> tuple[float, float]:
    result = scipy_stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def chisquare(reference: np.ndarray, current: np.ndarray, numeric: bool) -> tuple[float, float]:
    ref_counts, cur_counts = category_counts(reference, current)
    expected = ref_counts / ref_counts.sum() * cur_counts.sum()
    observed = cur_counts
    keep = expected > 0
    if (observed[~keep] > 0).any():  # a value never seen in the reference: certain drift
        return math.inf, 0.0
    result = scipy_stats.chisquare(observed[keep], expected[keep])
    return float(result.statistic), float(result.pvalue)


def z_proportions(reference: np.ndarray, current: np.ndarray,
                  numeric: bool) -> tuple[float, float]:
    """Two-proportion Z-test on the share of the first value seen (in sorted order)."""
    values = np.unique(np.concatenate([reference, current]).astype(str))
    first = values[0]
    n_ref, n_cur = len(reference), len(current)
    p_ref = float(np.mean(reference.astype(str) == first))
    p_cur = float(np.mean(current.astype(str) == first))
    pooled = (p_ref * n_ref + p_cur * n_cur) / (n_ref + n_cur)
    if pooled in (0.0, 1.0):
        return 0.0, 1.0
    z = (p_ref - p_cur) / math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    return z, float(2 * scipy_stats.norm.sf(abs(z)))


def wasserstein_normed(reference: np.ndarray, current: np.ndarray,
                       numeric: bool) -> tuple[float, None]:
    scale = max(float(np.std(reference)), 0.001)
    return float(scipy_stats.wasserstein_distance(reference, current)) / scale, None


def jensen_shannon(reference: np.ndarray, current: np.ndarray,
                   numeric: bool) -> tuple[float, None]:
    ref_share, cur_share = binned_shares(reference, current, numeric)
    return float(distance.jensenshannon(ref_share, cur_share)), None


def psi(reference: np.ndarray, current: np.ndarray, numeric: bool) -> tuple[float, None]:
    ref_share, cur_share = binned_shares(reference, current, numeric)
    return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share))), None


TESTS: dict[str, DriftTest] = {
    test.name: test
    for test in (
        DriftTest("ks", ks, 0.05, True),
        DriftTest("chisquare", chisquare, 0.05, True),
        DriftTest("z", z_proportions, 0.05, True),
        DriftTest("wasserstein", wasserstein_normed, 0.1, False),
        DriftTest("jensenshannon", jensen_shannon, 0.1, False),
        DriftTest("psi", psi, 0.1, False),
    )
}
