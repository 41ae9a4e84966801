"""Injectable time.

Every window, schedule and timestamp in Tidal reads a :class:`Clock` instead of calling
``time.time()`` directly, so a recorded dataset can be replayed through the real system at
any speed by handing it a :class:`ManualClock`.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Something that tells the time as seconds since the Unix epoch (UTC)."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to; for replays and tests."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = float(when)

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now
