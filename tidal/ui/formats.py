"""How the dashboard writes times (UTC, to the minute)."""

from __future__ import annotations

import time


def when(epoch: float | None) -> str:
    """``2026-12-04 04:35`` (UTC), or a dash for no time."""
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))
