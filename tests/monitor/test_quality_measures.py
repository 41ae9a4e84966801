"""Quality measures of one window, checked against scikit-learn on the same numbers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from tidal.monitor.quality import measure


def _index(**columns) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"request_id": [f"r{i}" for i in range(n)], "row": [0] * n, **columns})


def test_classification_measures_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    p1 = np.clip(truth * 0.6 + rng.random(400) * 0.5, 0, 1)
    predicted = (p1 >= 0.5).astype(int)
    index = _index(**{"out.label": predicted.tolist(),
                      "out.probabilities": np.column_stack([1 - p1, p1]).tolist()})
    labels = [float(t) for t in truth]  # labels from a CSV come back as floats
    labels[:10] = [None] * 10  # ten are not labelled yet
    got = {(m.check, m.subject): m.value for m in measure(
        index, labels, task="classification", classes=[0, 1],
        reference={"metric": "accuracy", "overall": {"accuracy": 0.9}}, min_rows=50)}
    kept = slice(10, None)
    assert got[("labelled", "")] == pytest.approx(390 / 400)
    assert got[("quality", "accuracy")] == pytest.approx(
        skm.accuracy_score(truth[kept], predicted[kept]))
    assert got[("quality", "balanced_accuracy")] == pytest.approx(
        skm.balanced_accuracy_score(truth[kept], predicted[kept]))
    assert got[("quality", "f1")] == pytest.approx(skm.f1_score(truth[kept], predicted[kept]))
    assert got[("quality", "roc_auc")] == pytest.approx(skm.roc_auc_score(truth[kept],
                                                                          p1[kept]))
    assert got[("quality", "log_loss")] == pytest.approx(
        skm.log_loss(truth[kept], np.column_stack([1 - p1, p1])[kept]))
    assert got[("quality_drop", "accuracy")] == pytest.approx(
        (0.9 - got[("quality", "accuracy")]) / 0.9)


def test_regression_measures_and_labels_that_are_not_numbers():
    predicted = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    labels = [1.5, 2.0, "oops", 4.5, 5.0, 7.0]  # a text label is left out, not fatal
    got = {(m.check, m.subject): m.value for m in measure(
        _index(**{"out.prediction": predicted.tolist()}), labels, task="regression",
        classes=None, reference={"metric": "rmse", "overall": {"rmse": 0.5}}, min_rows=3)}
    usable = [0, 1, 3, 4, 5]
    truth = np.array([1.5, 2.0, 4.5, 5.0, 7.0])
    assert got[("quality", "mae")] == pytest.approx(skm.mean_absolute_error(
        truth, predicted[usable]))
    assert got[("quality", "rmse")] == pytest.approx(np.sqrt(skm.mean_squared_error(
        truth, predicted[usable])))
    assert got[("quality", "r2")] == pytest.approx(skm.r2_score(truth, predicted[usable]))
    assert got[("quality_drop", "rmse")] == pytest.approx((got[("quality", "rmse")] - 0.5)
                                                          / 0.5)


def test_too_few_labels_are_not_judged():
    got = measure(_index(**{"out.label": [1, 0, 1]}), [1, None, None], task="classification",
                  classes=[0, 1], reference=None, min_rows=2)
    assert [(m.check, m.value) for m in got] == [("labelled", pytest.approx(1 / 3))]
