"""sha256 helpers: the one hash Tidal uses for artifacts, datasets and code."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}\Z")
CHUNK_SIZE = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    """Hash of a JSON-able value in canonical form (sorted keys, no spaces)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(canonical.encode())


def is_sha256(text: str) -> bool:
    """True for a lowercase 64-hex-digit sha256 digest (and nothing else)."""
    return isinstance(text, str) and bool(_SHA256_PATTERN.match(text))
