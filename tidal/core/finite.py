"""JSON without NaN or infinities: they become the strings "nan", "inf" and "-inf".

Strict JSON (and PostgreSQL's JSON types) has no NaN or infinity, while Tidal's numbers
(a drift distance, a metric of a failed model) may be either. One rule everywhere they
leave Python as JSON: the store's JSON columns and the command line's ``--json``.
"""

from __future__ import annotations

import math
from typing import Any


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float, however deep in dicts and lists, as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    return value
