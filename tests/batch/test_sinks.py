"""The Parquet sink: its parts land in order and only at commit, and a part that cannot
be written fails the job and leaves nothing behind, never a half-written output."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tidal.batch.sinks import ParquetSink
from tidal.core.errors import ValidationError


def part(start: int, rows: int) -> pa.Table:
    return pa.table({"key": pa.array(range(start, start + rows), pa.int64()),
                     "score": np.linspace(0, 1, rows)})


def test_parts_land_in_order_and_only_at_commit(tmp_path):
    sink = ParquetSink(tmp_path / "out.parquet", "job1")
    for start in range(0, 50_000, 5_000):
        sink.write(part(start, 5_000))
    assert not (tmp_path / "out.parquet").exists()
    sink.commit(part(0, 0).schema)
    written = pq.read_table(tmp_path / "out.parquet")
    assert written.column("key").to_pylist() == list(range(50_000))
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_a_part_that_does_not_fit_fails_the_job_and_leaves_nothing(tmp_path):
    sink = ParquetSink(tmp_path / "out.parquet", "job2")
    sink.write(part(0, 10))
    with pytest.raises(ValidationError, match="changed type between partitions"):
        sink.write(part(10, 10).set_column(0, "key", pa.array(["x"] * 10)))  # text keys
        for start in range(20, 1_000, 10):  # fails here, at a later write or at commit
            sink.write(part(start, 10))
        sink.commit(part(0, 0).schema)
    sink.abort()
    assert list(tmp_path.iterdir()) == []
