"""A run's summary: its params, latest metrics and tags, as one JSON text on the run row.

Searches return whole runs, and assembling each from the ``params``, ``latest_metrics``
and ``tags`` rows cost more than the search itself (about 3,000 rows for 160 runs). The
repository therefore keeps this summary up to date in the same transaction as those rows,
and reading a page of runs is one row per run. The rows stay the source of truth for
filtering and sorting; the summary is what is shown.

The text is JSON written and read with orjson (exact float round trips, and about five
times faster than the json module at reading, which is what a search page does). JSON
has no NaN or infinity, so those are stored as the strings "nan", "inf" and "-inf"; the
column is TEXT rather than a JSON type, as Tidal alone reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from .records import MetricPoint

_make_point = MetricPoint._make  # tuple.__new__: the cheapest way to build thousands


@dataclass
class Summary:
    params: dict[str, str] = field(default_factory=dict)
    #: key → [key, value, step, timestamp], value a float or "nan" / "inf" / "-inf"
    metrics: dict[str, list[Any]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def decode(cls, text: str | bytes | None) -> Summary:
        if not text:
            return cls()
        data = orjson.loads(text)
        return cls(data.get("p", {}), data.get("m", {}), data.get("t", {}))

    def encode(self) -> str:
        return orjson.dumps({"p": self.params, "m": self.metrics, "t": self.tags}).decode()

    def add_metric(self, key: str, value: float, step: int, timestamp: float) -> None:
        """Keep the point with the highest (step, timestamp), as latest_metrics does."""
        current = self.metrics.get(key)
        if current is None or (step, timestamp) >= (current[2], current[3]):
            stored: float | str = value if math.isfinite(value) else str(value)
            self.metrics[key] = [key, stored, step, timestamp]

    def metric_points(self) -> dict[str, MetricPoint]:
        points = {}
        for key, entry in self.metrics.items():
            if type(entry[1]) is str:  # a non-finite value
                entry = [key, float(entry[1]), entry[2], entry[3]]
            points[key] = _make_point(entry)
        return points
