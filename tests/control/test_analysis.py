"""The rollout analysis on tables shaped like the compacted log: each broken kind of
candidate fails on the comparison meant for it, a healthy one passes, and too little
traffic is inconclusive (except a candidate failing most of its first requests)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tidal.control.analysis import analyse
from tidal.core.config import AnalysisSection
from tidal.store.feedback import Labels

CONFIG = AnalysisSection(min_requests=100, min_labelled=50)


def _rows(labels, *, prefix="r", latency=2.0, status=None, probabilities=None):
    n = len(labels)
    rng = np.random.default_rng(len(prefix) + n)
    columns = {
        "request_id": [f"{prefix}{i}" for i in range(n)],
        "row": pa.array([0] * n, pa.int32()),
        "event_time": pa.array(np.arange(n, dtype=np.int64) * 10**6).cast(
            pa.timestamp("us", tz="UTC")),
        "latency_ms": latency * (1 + 0.1 * rng.random(n)),
        "status": pa.array(status if status is not None else [200] * n, pa.int64()),
        "out.label": pa.array(labels, pa.int64()),
    }
    if probabilities is not None:
        columns["out.probabilities"] = pa.array(probabilities, pa.list_(pa.float64()))
    return pa.table(columns)


def _stable(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return list((rng.random(n) < 0.4).astype(int))


def _verdicts(analysis):
    return {c.name: c.verdict for c in analysis.comparisons}


def test_a_healthy_candidate_passes():
    stable = _stable()
    candidate = list(stable)
    for i in range(0, 400, 10):  # disagrees on one answer in ten
        candidate[i] = 1 - candidate[i]
    result = analyse(_rows(candidate), _rows(stable), CONFIG, task="classification",
                     paired=True)
    assert result.verdict == "pass", result.reasons()
    assert _verdicts(result)["agreement"] == "pass"


@pytest.mark.parametrize(("broken", "comparison"), [
    ("inverted", "agreement"),
    ("constant", "collapsed_outputs"),
    ("crashing", "server_errors"),
    ("rejecting", "client_errors"),
    ("slow", "latency_p99"),
    ("non_finite", "invalid_outputs"),
])
def test_each_broken_candidate_fails_on_its_comparison(broken, comparison):
    stable = _stable()
    rows = {"inverted": lambda: _rows([1 - x for x in stable]),
            "constant": lambda: _rows([1] * 400),
            "crashing": lambda: _rows(stable, status=[500 if i % 5 == 0 else 200
                                                      for i in range(400)]),
            "rejecting": lambda: _rows(stable, status=[400 if i % 5 == 0 else 200
                                                       for i in range(400)]),
            "slow": lambda: _rows(stable, latency=20.0),
            "non_finite": lambda: _rows(stable, probabilities=[
                [float("nan"), float("nan")] if i % 50 == 0 else [0.5, 0.5]
                for i in range(400)])}[broken]()
    result = analyse(rows, _rows(stable), CONFIG, task="classification", paired=True)
    assert result.verdict == "fail"
    assert _verdicts(result)[comparison] == "fail", result.reasons()


def test_too_little_traffic_is_inconclusive_but_a_crashing_start_fails_at_once():
    stable = _stable(400)
    few = analyse(_rows(stable[:40]), _rows(stable), CONFIG, task="classification")
    assert few.verdict == "inconclusive"
    crashing = analyse(_rows(stable[:20], status=[500] * 20), _rows(stable), CONFIG,
                       task="classification")
    assert crashing.verdict == "fail" and "fails most requests" in crashing.reasons()


def test_labelled_quality_is_compared_where_labels_came_back():
    truth = _stable(400, seed=1)
    stable = [t if i % 4 else 1 - t for i, t in enumerate(truth)]  # 75 % right
    worse = [t if i % 2 else 1 - t for i, t in enumerate(truth)]  # 50 % right
    labels = Labels({(f"{side}{i}", 0): (i + 1, truth[i]) for side in ("c", "s")
                     for i in range(400)}, {}, 0)
    result = analyse(_rows(worse, prefix="c"), _rows(stable, prefix="s"), CONFIG,
                     task="classification", labels=labels, metric="accuracy")
    quality = {c.name: c for c in result.comparisons}["quality"]
    assert quality.verdict == "fail"
    assert (quality.candidate, quality.stable) == (pytest.approx(0.5), pytest.approx(0.75))
