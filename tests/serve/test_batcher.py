"""The adaptive batcher on its own: batches form under concurrency, outputs go back to
the right requests, and a request whose rows a model refuses fails alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tidal.serve.batcher import Batcher


def negative_refusing_model(calls: list[int]):
    """A model that doubles its input, and, like scikit-learn on a value it cannot cast,
    raises for a whole call when any row is negative."""
    def predict(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = columns["x"]
        calls.append(len(values))
        if (values < 0).any():
            raise ValueError("Input X contains a value too large for dtype('float32')")
        return {"y": values * 2}
    return predict


async def _submit_all(batcher: Batcher, values: list[float]) -> list[object]:
    return await asyncio.gather(*(batcher.submit({"x": np.array([v])}, 1) for v in values),
                                return_exceptions=True)


def test_concurrent_requests_share_calls_and_get_their_own_rows_back():
    calls: list[int] = []
    batcher = Batcher(negative_refusing_model(calls), max_batch_size=64)
    results = asyncio.run(_submit_all(batcher, [float(i) for i in range(100)]))
    assert [float(r["y"][0]) for r in results] == [2.0 * i for i in range(100)]
    assert len(calls) < 100 and max(calls) > 1  # batched


def test_a_request_the_model_refuses_fails_alone_not_with_its_batch():
    calls: list[int] = []
    batcher = Batcher(negative_refusing_model(calls), max_batch_size=64)
    values = [float(i) if i % 20 else -1.0 for i in range(1, 101)]  # every 20th is bad
    results = asyncio.run(_submit_all(batcher, values))
    failed = [v for v, r in zip(values, results, strict=True) if isinstance(r, Exception)]
    assert failed == [v for v in values if v < 0] and len(failed) == 5
    assert all(float(r["y"][0]) == 2 * v for v, r in zip(values, results, strict=True)
               if not isinstance(r, Exception))
    with pytest.raises(ValueError, match="float32"):
        raise next(r for r in results if isinstance(r, Exception))
