"""Identifiers for records.

Ids are 32 lowercase hex characters whose first 12 encode the creation time in
milliseconds, so ids sort roughly by creation and index well (UUIDv7-like), and the rest
is random. They are safe to embed in paths and URLs.
"""

from __future__ import annotations

import re
import secrets
import time

_ID_PATTERN = re.compile(r"^[0-9a-f]{32}\Z")


def new_id(now: float | None = None) -> str:
    """A new time-ordered 32-hex-character id."""
    millis = int((time.time() if now is None else now) * 1000) & 0xFFFFFFFFFFFF
    return f"{millis:012x}{secrets.token_hex(10)}"


def short_id(identifier: str) -> str:
    """The id as shown to people: the time part plus 4 random characters, so that two
    records made in the same millisecond still look different and prefix lookups work."""
    return identifier[:16]


def is_id(text: str) -> bool:
    return bool(_ID_PATTERN.match(text))
