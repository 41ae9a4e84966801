"""Which model version answers a request: stable, canary (by weight), and the shadow.

A canary gets ``canary_weight`` of the requests. With a routing key (a user or entity id,
sent as the ``X-Tidal-Route-Key`` header or the request's ``key``), the choice is sticky:
the key's hash decides, so one user sees one version for the whole rollout, and raising
the weight only moves users from stable to canary, never back. Without a key the choice
is random per request. A shadow version gets a copy of every request off the response
path: its output is logged (route ``shadow``), never returned.

Batch scoring (:mod:`tidal.batch`) logs its rows with the routes ``batch``,
``batch_canary`` and ``batch_shadow``: readers that ask "is this the canary's (or the
shadow's) row?" use :data:`CANARY_ROUTES` and :data:`SHADOW_ROUTES`, so a rollout's
analysis sees batch traffic like online traffic, and batch rows stay told apart.
"""

from __future__ import annotations

import hashlib
import random

STABLE, CANARY, SHADOW = "stable", "canary", "shadow"
BATCH, BATCH_CANARY, BATCH_SHADOW = "batch", "batch_canary", "batch_shadow"
CANARY_ROUTES = (CANARY, BATCH_CANARY)
SHADOW_ROUTES = (SHADOW, BATCH_SHADOW)


def key_position(key: str) -> float:
    """A stable position in [0, 1) for a routing key (the same on every replica and run:
    a cryptographic hash, not Python's per-process salted ``hash``)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def choose_route(canary_weight: float, has_canary: bool, key: str | None,
                 rng: random.Random | None = None) -> str:
    """``"canary"`` for the canary's share of requests, else ``"stable"``."""
    if not has_canary or canary_weight <= 0:
        return STABLE
    if canary_weight >= 1:
        return CANARY
    position = key_position(key) if key else (rng or random).random()
    return CANARY if position < canary_weight else STABLE
