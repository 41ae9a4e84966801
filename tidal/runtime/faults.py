"""Broken models on purpose: wrappers that turn a working model into a faulty candidate.

A rollout is only as safe as what it catches, so the fault-injection benchmark
(``benchmarks/rollout_faults.py``) and the tests register these as candidates and check
that each is rolled back. Each wraps a fitted scikit-learn style model and keeps its
``classes_`` (so the server treats it as the classifier or regressor it wraps):

- :class:`Constant` — always the same answer (a model that learned nothing);
- :class:`Inverted` — a binary classifier's answers swapped (labels flipped in training);
- :class:`Crashing` — raises on the rows where a feature is above a threshold;
- :class:`Slow` — sleeps before answering (a model ten times too slow);
- :class:`NonFinite` — NaN probabilities or predictions on a share of the rows.

They live in the package (not the tests) because a model server must be able to import
them to unpickle them, as it would any model's code; in ``runtime``, which a server
imports anyway.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class _Wrapped:
    """Delegates to ``model``; subclasses change what comes out."""

    def __init__(self, model: Any) -> None:
        self.model = model
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_

    def predict(self, frame: Any) -> np.ndarray:
        return np.asarray(self.model.predict(frame))

    def __getattr__(self, name: str) -> Any:  # predict_proba only where the model has it
        if name == "predict_proba" and hasattr(self.model, "predict_proba"):
            return self._proba
        raise AttributeError(name)

    def _proba(self, frame: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(frame), dtype=np.float64)


class Constant(_Wrapped):
    def __init__(self, model: Any, value: Any) -> None:
        super().__init__(model)
        self.value = value

    def predict(self, frame: Any) -> np.ndarray:
        return np.full(len(frame), self.value)

    def _proba(self, frame: Any) -> np.ndarray:
        classes = list(self.classes_)
        proba = np.zeros((len(frame), len(classes)))
        proba[:, classes.index(self.value)] = 1.0
        return proba


class Inverted(_Wrapped):
    def predict(self, frame: Any) -> np.ndarray:
        classes = np.asarray(self.classes_)
        picked = np.asarray(self.model.predict(frame))
        return np.where(picked == classes[0], classes[1], classes[0])

    def _proba(self, frame: Any) -> np.ndarray:
        return super()._proba(frame)[:, ::-1]


class Crashing(_Wrapped):
    def __init__(self, model: Any, column: str, above: float) -> None:
        super().__init__(model)
        self.column, self.above = column, above

    def _check(self, frame: Any) -> None:
        if (np.asarray(frame[self.column], dtype=float) > self.above).any():
            raise RuntimeError(f"injected crash: {self.column} above {self.above}")

    def predict(self, frame: Any) -> np.ndarray:
        self._check(frame)
        return super().predict(frame)

    def _proba(self, frame: Any) -> np.ndarray:
        self._check(frame)
        return super()._proba(frame)


class Slow(_Wrapped):
    def __init__(self, model: Any, seconds: float) -> None:
        super().__init__(model)
        self.seconds = seconds

    def predict(self, frame: Any) -> np.ndarray:
        time.sleep(self.seconds)
        return super().predict(frame)


class NonFinite(_Wrapped):
    def __init__(self, model: Any, share: float) -> None:
        super().__init__(model)
        self.share = share

    def _mask(self, frame: Any) -> np.ndarray:
        n = len(frame)
        return (np.arange(n) + int(time.time_ns() % 997)) % max(1, round(1 / self.share)) == 0

    def predict(self, frame: Any) -> np.ndarray:
        values = super().predict(frame)
        if values.dtype.kind == "f":
            values = values.copy()
            values[self._mask(frame)] = np.nan
        return values

    def _proba(self, frame: Any) -> np.ndarray:
        proba = super()._proba(frame).copy()
        proba[self._mask(frame)] = np.nan
        return proba
