"""Prediction rows written straight into the compacted folder, for writers that already
hold them as columns (batch jobs).

The server logs one request at a time, so it appends JSON records to the durable log and
:mod:`tidal.serve.compaction` turns them into Parquet later. A batch job holds a whole
partition as columns: encoding its rows as JSON only for compaction to decode them
again would cost more than scoring them (a logistic regression scores about ten million
rows a second per core). So a batch partition's rows go straight to

    into/deployment=<name>/hour=<YYYY-MM-DDTHH>/part-<name>.parquet

in the compacted layout and column types (``request_id, row, event_time, …, in.<input>,
out.<output>``), written under a hidden name, fsync'ed and renamed: the monitors, the
rollout analysis and the feedback join read them like compacted server traffic.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TIMESTAMP = pa.timestamp("us", tz="UTC")


def hour_folder(into: Path, deployment: str, event_time: float) -> Path:
    """The folder of ``deployment``'s rows of the UTC hour holding ``event_time``."""
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime(int(event_time // 3600) * 3600))
    return into / f"deployment={quote(deployment, safe='')}" / f"hour={hour}"


def prediction_rows(*, request_ids: list[str], rows_per_id: int, count: int,
                    event_time: float, deployment: str, model: str, version: int,
                    route: str, inputs: dict[str, np.ndarray],
                    outputs: dict[str, np.ndarray]) -> pa.Table:
    """``count`` predicted rows as compacted rows: the i-th has request id
    ``request_ids[i // rows_per_id]`` and row ``i % rows_per_id``."""
    ids = each_repeated(request_ids, rows_per_id, count)
    rows = pa.array(np.arange(count, dtype=np.int32) % rows_per_id)
    table = _fixed(ids, rows, event_time, deployment, model, version, route, status=200,
                   error=None)
    for name, values in inputs.items():
        table = table.append_column(f"in.{name}", _array(values))
    for name, values in outputs.items():
        table = table.append_column(f"out.{name}", _array(values))
    return table


def each_repeated(values: list[str], times: int, count: int) -> pa.Array:
    """A string column of ``count`` rows: each of ``values`` ``times`` times in turn
    (the last perhaps fewer). Built from its buffers: materialising a dictionary column
    row by row costs more than writing the whole part."""
    encoded = [value.encode() for value in values]
    repeats = np.full(len(encoded), times, np.int64)
    if encoded:
        repeats[-1] = count - times * (len(encoded) - 1)
    lengths = np.repeat(np.array([len(e) for e in encoded], np.int64), repeats)
    offsets = np.zeros(count + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(e * int(r) for e, r in zip(encoded, repeats, strict=True))
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.tobytes()),
                                       pa.py_buffer(data))


def failure_rows(*, request_ids: list[str], event_time: float, deployment: str, model: str,
                 version: int, route: str, status: int, error: str | None) -> pa.Table:
    """One row per failed request: its status and error, no values (as compaction
    stores a failed request)."""
    return _fixed(pa.array(request_ids, pa.string()),
                  pa.array(np.zeros(len(request_ids), np.int32)), event_time, deployment,
                  model, version, route, status=status, error=error)


def write_part(into: Path, deployment: str, event_time: float, table: pa.Table,
               name: str) -> Path:
    """``table`` as ``part-<name>.parquet`` in its hour's folder, atomically and durably."""
    folder = hour_folder(into, deployment, event_time)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"part-{name}.parquet"
    temporary = folder / f".part-{name}.parquet.tmp"
    pq.write_table(table, temporary, compression="zstd",
                   use_dictionary=dictionary_columns(table.schema))
    descriptor = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, final)
    return final


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth dictionary-encoding: all but the numbers, whose dictionary
    Parquet would build only to drop it (that costs more than the rest of the write)."""
    return [f.name for f in schema if not (pa.types.is_floating(f.type)
                                           or pa.types.is_list(f.type))]


def _fixed(request_ids: pa.Array, rows: pa.Array, event_time: float, deployment: str,
           model: str, version: int, route: str, *, status: int, error: str | None
           ) -> pa.Table:
    n = len(request_ids)
    micros = round(event_time * 1_000_000)

    def repeated(value: Any, kind: pa.DataType) -> pa.Array:
        return pa.repeat(pa.scalar(value, kind), n)

    when = repeated(micros, pa.int64()).cast(TIMESTAMP)
    return pa.table({
        "request_id": request_ids, "row": rows, "event_time": when, "received_at": when,
        "deployment": repeated(deployment, pa.string()), "model": repeated(model, pa.string()),
        "version": repeated(version, pa.int64()), "route": repeated(route, pa.string()),
        "latency_ms": repeated(0.0, pa.float64()), "key": repeated(None, pa.string()),
        "status": repeated(status, pa.int32()), "error": repeated(error, pa.string())})


def _array(values: np.ndarray) -> pa.Array:
    """A column as compaction types it: a matrix (class probabilities) becomes
    ``list<double>``, integers stay integers, numbers double (NaN null), anything else as
    given."""
    values = np.asarray(values)
    if values.ndim == 2:
        flat = pa.array(values.astype(np.float64, copy=False).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, values.shape[1]).cast(
            pa.list_(pa.float64()))
    if values.dtype.kind == "f":  # NaN is missing, as in the JSON log (null)
        return pa.array(values.astype(np.float64, copy=False), from_pandas=True)
    if values.dtype.kind in "iub":
        return pa.array(values)
    return pa.array(values.tolist())
