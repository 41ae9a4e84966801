"""A batch job's memory stays bounded by its partitions, not by its input.

Two ways it did not, both found on a 10-million-row benchmark: the Parquet reader
decoded (and pre-buffered) whole row groups however small the partitions, and the row
checks' recursive closure kept every partition's columns alive until the garbage
collector happened to run.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tidal.batch.sources import open_source
from tidal.batch.validation import split_valid


def test_checking_a_partition_with_bad_rows_keeps_none_of_it_alive():
    signature = {"inputs": [{"name": "x", "datatype": "FP64", "nullable": False}]}
    values = np.arange(1_000, dtype=np.float64)
    values[[3, 500, 999]] = np.nan  # not nullable: three bad rows, found by halving
    alive = weakref.ref(values)
    was_enabled = gc.isenabled()
    gc.disable()  # only reference counting frees it, as between two collections
    try:
        good, checked, bad = split_valid(signature, {"x": values})
        assert [row for row, _ in bad] == [3, 500, 999]
        assert len(good) == 997 and np.isfinite(checked["x"]).all()
        del values, good, checked, bad
        assert alive() is None, "the checked partition is kept alive by a reference cycle"
    finally:
        if was_enabled:
            gc.enable()


def test_a_parquet_file_is_read_a_partition_at_a_time_whatever_its_row_groups(tmp_path):
    rows = 3_000_000
    table = pa.table({"id": np.arange(rows, dtype=np.int64),
                      **{f"f{i}": np.random.default_rng(i).random(rows) for i in range(2)}})
    path = tmp_path / "one-row-group.parquet"
    pq.write_table(table, path, row_group_size=rows)  # one row group of 72 MB decoded
    decoded = table.nbytes
    del table
    source = open_source(path)
    before = pa.total_allocated_bytes()
    most, seen, total = 0, 0, 0
    for batch in source.batches(["id", "f0", "f1"], 10_000):
        most = max(most, pa.total_allocated_bytes() - before)
        assert batch.num_rows == 10_000 and batch.column("id")[0].as_py() == seen
        seen += batch.num_rows
        total += int(np.sum(batch.column("id").to_numpy()))
    assert seen == rows and total == rows * (rows - 1) // 2
    assert most < decoded / 4, f"reading held {most / 2**20:.1f} MB at once"


def test_the_files_of_a_folder_are_read_as_the_folders_types(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"x": pa.array([1.5, 2.5], pa.float64())}), folder / "a.parquet")
    pq.write_table(pa.table({"x": pa.array([3, 4], pa.int64())}), folder / "b.parquet")
    batches = list(open_source(folder).batches(["x"], 10))
    assert [b.schema.field("x").type for b in batches] == [pa.float64()]
    assert batches[0].column("x").to_pylist() == [1.5, 2.5, 3.0, 4.0]
