"""A mergeable quantile sketch of one numeric column: a thin wrapper around Apache
DataSketches' KLL sketch (``datasketches.kll_doubles_sketch``).

Why KLL and not a hand-written summary: KLL has the best known space/accuracy trade-off
for mergeable quantiles, DataSketches is well kept (Apache), takes a NumPy array in one
call (about 35 ms per million values), and its binary form is stable across versions and
languages. A sketch of ``k = 200`` holds a few hundred values whatever the input size
(about 5 KB serialised) and answers any rank or CDF query within a normalised rank error
of about 1.3 % (99 % confidence, DataSketches' empirically fitted bound); merging two
sketches keeps that guarantee. Below ``k`` values the sketch keeps every value and is exact.

The wrapper exists so that the rest of Tidal sees NumPy arrays, a value-based ``==`` and
``to_bytes``/``from_bytes``, and never the binding's details (empty sketches answer with
empty lists, CDF split points must be strictly increasing, NaN is silently skipped...).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from datasketches import kll_doubles_sketch

DEFAULT_K = 200


class QuantileSketch:
    """A KLL quantile sketch of float values (NaN is ignored by the sketch itself)."""

    __slots__ = ("_kll",)

    def __init__(self, k: int = DEFAULT_K, *, _kll: kll_doubles_sketch | None = None) -> None:
        if _kll is None and not 8 <= k <= 65535:
            raise ValueError(f"sketch size k must be between 8 and 65535, not {k}")
        self._kll = _kll if _kll is not None else kll_doubles_sketch(k)

    @classmethod
    def from_array(cls, values: np.ndarray, k: int = DEFAULT_K) -> QuantileSketch:
        sketch = cls(k)
        sketch.update(values)
        return sketch

    def update(self, values: np.ndarray) -> None:
        array = np.ascontiguousarray(values, dtype=np.float64)
        if not array.flags.writeable:  # the binding refuses read-only (e.g. Arrow) buffers
            array = array.copy()
        if array.size:
            self._kll.update(array)

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A new sketch of both inputs (neither operand changes)."""
        merged = copy.copy(self._kll)
        merged.merge(other._kll)
        return QuantileSketch(_kll=merged)

    @property
    def n(self) -> int:
        """How many values went in."""
        return int(self._kll.n)

    @property
    def k(self) -> int:
        return int(self._kll.k)

    @property
    def minimum(self) -> float:
        """The smallest value seen (exact; NaN when empty)."""
        return float("nan") if self._kll.is_empty() else float(self._kll.get_min_value())

    @property
    def maximum(self) -> float:
        """The largest value seen (exact; NaN when empty)."""
        return float("nan") if self._kll.is_empty() else float(self._kll.get_max_value())

    @property
    def is_exact(self) -> bool:
        """True while the sketch still holds every value (no compaction yet)."""
        return not self._kll.is_estimation_mode()

    @property
    def rank_error(self) -> float:
        """Normalised rank error of a rank or CDF query (0 while exact), 99 % confidence."""
        if self.is_exact:
            return 0.0
        return float(self._kll.normalized_rank_error(False))

    def quantiles(self, ranks: Sequence[float] | np.ndarray) -> np.ndarray:
        """Values at the given normalised ranks (NaN for an empty sketch)."""
        ranks = np.asarray(ranks, dtype=float)
        if self._kll.is_empty():
            return np.full(ranks.shape, np.nan)
        return np.asarray(self._kll.get_quantiles(ranks.tolist(), True), dtype=float)

    def cdf(self, points: Sequence[float] | np.ndarray) -> np.ndarray:
        """Estimated share of values <= each point (any order, repeats allowed)."""
        points = np.asarray(points, dtype=float)
        if self._kll.is_empty():
            return np.full(points.shape, np.nan)
        values, weights = self.items()
        cumulative = np.concatenate([[0.0], np.cumsum(weights)])
        return cumulative[np.searchsorted(values, points, side="right")] / cumulative[-1]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """The retained values (sorted, unique) and their weights, which sum to ``n``.

        The sketch's estimate of the distribution is exactly this weighted sample, so
        statistics computed from it (KS, Wasserstein) are those of the sketch, with no
        further discretisation.
        """
        pairs = list(self._kll)
        if not pairs:
            return np.empty(0), np.empty(0)
        values = np.fromiter((value for value, _ in pairs), dtype=float, count=len(pairs))
        weights = np.fromiter((weight for _, weight in pairs), dtype=float, count=len(pairs))
        unique, inverse = np.unique(values, return_inverse=True)
        return unique, np.bincount(inverse, weights=weights, minlength=len(unique))

    def to_bytes(self) -> bytes:
        return bytes(self._kll.serialize())

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        return cls(_kll=kll_doubles_sketch.deserialize(data))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable (update)

    def __repr__(self) -> str:
        return f"QuantileSketch(k={self.k}, n={self.n}, retained={self._kll.num_retained})"
