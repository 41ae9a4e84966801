"""Reading files: what counts as a row, a missing value, and a file that cannot be read."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tidal.data.sources import DataReadError, open_source


def test_empty_lines_of_a_one_column_csv_are_missing_values(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("x\n1\n\n3\n")
    assert open_source(path).column("x").to_pylist() == [1, None, 3]


def test_empty_text_fields_are_missing_values(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("k,x\na,1\n,2\nNA,3\n")
    assert open_source(path).column("k").to_pylist() == ["a", None, None]


def test_duplicated_column_names_are_refused_in_csv_and_parquet(tmp_path):
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    pq.write_table(table, tmp_path / "dup.parquet")
    for name in ("dup.csv", "dup.parquet"):
        with pytest.raises(DataReadError, match=f"{name}: duplicated column names: a"):
            open_source(tmp_path / name)


def test_parquet_is_read_one_column_at_a_time_from_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    table = pa.table({f"c{i}": pa.array(range(i, i + 1000)) for i in range(8)})
    pq.write_table(table, tmp_path / "t.parquet")
    source = open_source(tmp_path / "t.parquet")
    with ThreadPoolExecutor(4) as pool:
        sums = list(pool.map(lambda n: sum(source.column(n).to_pylist()), source.names))
    assert sums == [sum(range(i, i + 1000)) for i in range(8)]


@pytest.mark.parametrize("name,content,reason", [
    ("missing.csv", None, "no such file"),
    ("empty.csv", b"", "empty"),
    ("notes.txt", b"hello", "unknown file kind"),
    ("random.parquet", bytes(range(256)) * 8, "cannot read it"),
])
def test_unreadable_files_are_clear_errors(tmp_path, name, content, reason):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataReadError, match=reason) as caught:
        open_source(tmp_path / name)
    assert name in str(caught.value)


def test_a_truncated_parquet_file_is_a_clear_error(tmp_path):
    pq.write_table(pa.table({"x": list(range(10_000))}), tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataReadError, match="cut.parquet"):
        open_source(tmp_path / "cut.parquet").column("x")
