"""Adaptive batching: concurrent requests for one model version share one predict call.

A model's per-call cost (Python dispatch, ONNX Runtime's session run, scikit-learn's
input checks) dwarfs its per-row cost for tabular models, so under load one call for 64
rows is far cheaper than 64 calls for one. The batcher keeps one queue per served model
version and one task that drains it:

- when the model is idle and a request arrives, it runs at once (no added latency at low
  load, unless ``max_wait_ms`` asks to wait for company);
- while a call runs, arriving requests queue up, and the next call takes all of them, up
  to ``max_batch_size`` rows (so the batch size adapts to the load by itself);
- with ``max_wait_ms > 0`` a batch that is not full waits up to that long for more rows.

A request larger than ``max_batch_size`` runs alone. Outputs are split back per request by
row offsets. When a batch's call fails, each of its requests runs again alone, so a
request whose values the model refuses fails alone, not with its neighbours. Predict
runs on the event loop's thread: for the small models this serves a thread hop costs
more than it saves, and the loop would only be parsing more requests that then wait for
the model anyway. (How the defaults were chosen: benchmarks/README.md.)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: defaults when neither the deployment nor ``[serve]`` says otherwise
DEFAULT_MAX_BATCH_SIZE = 256
DEFAULT_MAX_WAIT_MS = 0.0

Predict = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class _Pending:
    columns: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]


class Batcher:
    """Merge concurrent ``submit`` calls into batched ``predict`` calls (see the module)."""

    def __init__(self, predict: Predict, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
                 on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the model (not counting the call running now)."""
        return len(self._queue)

    async def submit(self, columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """The model's outputs for these rows (computed, perhaps, with other requests')."""
        if self._closed:
            raise RuntimeError("the model is being unloaded")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._drain())
        pending = _Pending(columns, rows, loop.create_future())
        self._queue.append(pending)
        self._queued_rows += rows
        self._wake.set()  # type: ignore[union-attr]
        return await pending.future

    async def close(self) -> None:
        """Finish what is queued, then stop (used when a model version is unloaded)."""
        self._closed = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            await self._task

    async def _drain(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.max_wait > 0 and self._queued_rows < self.max_batch_size:
                await self._wait_for_company()
            batch = self._take()
            self._run(batch)
            # let the loop read the sockets that became ready while the model ran
            await asyncio.sleep(0)

    async def _wait_for_company(self) -> None:
        deadline = time.perf_counter() + self.max_wait
        assert self._wake is not None
        while self._queued_rows < self.max_batch_size and not self._closed:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending]:
        first = self._queue.popleft()
        batch, rows = [first], first.rows
        while self._queue and rows + self._queue[0].rows <= self.max_batch_size:
            item = self._queue.popleft()
            batch.append(item)
            rows += item.rows
        self._queued_rows -= rows
        return batch

    def _run(self, batch: list[_Pending]) -> None:
        live = [item for item in batch if not item.future.done()]  # a client may have gone
        if not live:
            return
        columns = live[0].columns if len(live) == 1 else {
            name: np.concatenate([item.columns[name] for item in live])
            for name in live[0].columns}
        try:
            outputs = self.predict(columns)
        except Exception as exc:  # noqa: BLE001 - the waiters get the model's error
            if len(live) > 1:  # one request's rows may be at fault: never its neighbours'
                for item in live:
                    self._run([item])
                return
            if not live[0].future.done():
                live[0].future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(sum(item.rows for item in live))
        if len(live) == 1:
            live[0].future.set_result(outputs)
            return
        start = 0
        for item in live:
            stop = start + item.rows
            if not item.future.done():
                item.future.set_result({name: values[start:stop]
                                        for name, values in outputs.items()})
            start = stop

