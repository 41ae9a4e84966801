"""Helpers for the monitoring tests: real models, real prediction logs, real replays.

Predictions are written with the server's own log writer (:class:`PredictionLog`), one
record per request, with the event times of the replayed data, so the monitor reads
exactly what a server would have written.
"""

from __future__ import annotations

import calendar
from pathlib import Path

import numpy as np
import pandas as pd

from tidal.core.ids import new_id
from tidal.runtime.inputs import check_columns
from tidal.runtime.loaded import LoadedModel
from tidal.serve.predlog import PredictionLog, PredictionRecord

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
#: Elec2's first half-hour, 1996-05-07 00:00 (taken as UTC): row r is at START + r * 1800
ELEC2_START = float(calendar.timegm((1996, 5, 7, 0, 0, 0)))
ELEC2_FEATURES = ["feat_1", "feat_2", "feat_3", "feat_4", "feat_5", "feat_6"]


def elec2() -> pd.DataFrame:
    return pd.read_csv(DATA / "elec2.csv.gz")


def elec2_time(rows: np.ndarray | range) -> np.ndarray:
    return ELEC2_START + np.asarray(rows, dtype=np.float64) * 1800.0


def log_predictions(folder: Path, deployment: str, model: LoadedModel, frame: pd.DataFrame,
                    times: np.ndarray, *, rows_per_request: int = 1, route: str = "stable",
                    latency_ms: float = 2.0, key=None, request_ids=None) -> list[str]:
    """Predict ``frame`` with ``model`` and log it as requests of ``rows_per_request`` rows
    at ``times`` (one per row; a request takes its first row's), with the entity key
    ``key(request number)`` when given and the ids ``request_ids`` (default: new ones);
    returns the request ids."""
    columns = check_columns(model.signature, {name: frame[name].to_numpy()
                                              for name in model.input_names},
                            max_rows=len(frame) + 1)
    outputs = model.predict(columns)
    ids: list[str] = []
    with PredictionLog(folder, durability="async") as log:
        for start in range(0, len(frame), rows_per_request):
            stop = min(len(frame), start + rows_per_request)
            request_id = new_id() if request_ids is None else request_ids[len(ids)]
            ids.append(request_id)
            log.write_nowait([PredictionRecord(
                request_id=request_id, event_time=float(times[start]), deployment=deployment,
                model=model.name, version=model.version, route=route,
                inputs={name: values[start:stop] for name, values in columns.items()},
                outputs={name: values[start:stop] for name, values in outputs.items()},
                latency_ms=latency_ms, received_at=float(times[start]),
                key=None if key is None else key(len(ids) - 1))])
    return ids
