"""sha256 helpers: the one hash Tidal uses for artifacts, datasets and code."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import IO, Any

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
CHUNK_SIZE = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: IO[bytes]) -> tuple[str, int]:
    """Hash a binary stream in chunks; returns (hex digest, number of bytes)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """Hash of a JSON-able value in canonical form (sorted keys, no spaces)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(canonical.encode())


def is_sha256(text: str) -> bool:
    """True for a lowercase 64-hex-digit sha256 digest (and nothing else)."""
    return isinstance(text, str) and bool(_SHA256_PATTERN.match(text))
