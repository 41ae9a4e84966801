"""A child process for the prediction-log crash tests (the parent SIGKILLs it).

``python predlog_child.py write FOLDER TASKS PREFIX``
    Writes records in acknowledged mode from TASKS concurrent asyncio tasks, forever, and
    prints each request id (``PREFIX-t<task>-<i>``) on stdout right after its
    ``await log.write(...)`` returned. With one task, each write is ``alone`` (synced on
    the event loop's thread, as the server does at one request at a time).
``python predlog_child.py compact LOG INTO MAX_BATCH_BYTES``
    Prints ``compacting``, runs one compaction with small rounds, then prints ``done``.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from tidal.serve.compaction import compact
from tidal.serve.predlog import PredictionLog, PredictionRecord


async def write_forever(folder: str, tasks: int, prefix: str) -> None:
    log = PredictionLog(folder, durability="acknowledged")
    log.start()
    out = sys.stdout

    async def writer(task: int) -> None:
        i = 0
        while True:
            rows = 1 + (i % 3)
            request_id = f"{prefix}-t{task}-{i}"
            record = PredictionRecord(
                request_id=request_id, event_time=1.7e9 + i, deployment="elec2", model="m",
                version=1, route="stable",
                inputs={"x": np.arange(rows, dtype=np.float64), "tag": ["a"] * rows},
                outputs={"probabilities": np.full((rows, 2), 0.5)}, latency_ms=1.0,
                received_at=1.7e9 + i)
            await log.write([record], alone=tasks == 1)
            out.write(request_id + "\n")
            out.flush()
            i += 1

    await asyncio.gather(*(writer(t) for t in range(tasks)))


def main() -> None:
    mode = sys.argv[1]
    if mode == "write":
        asyncio.run(write_forever(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    elif mode == "compact":
        print("compacting", flush=True)  # imports done: the parent's kill timer starts
        compact(sys.argv[2], sys.argv[3], max_batch_bytes=int(sys.argv[4]))
        print("done", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
