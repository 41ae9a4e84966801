"""Splits on the real data: by time (Elec2, bike sharing), stratified (census), random
(bike-sharing regression) and balanced (30 rows with a rare class)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tidal.core.errors import ValidationError
from tidal.data.sources import open_source
from tidal.data.splits import RARE_CLASS_ROWS, SMALL_DATA_ROWS, Split, split

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
ELEC2 = DATA_DIR / "elec2.csv.gz"
BIKE = DATA_DIR / "bike_sharing_hourly.csv.gz"
CENSUS_2015 = DATA_DIR / "us_census_ma_employment_2015_reference.parquet"
needs_data = pytest.mark.skipif(not ELEC2.is_file(), reason="shared/data not present")


def assert_partition(result: Split, rows: int) -> None:
    """Both indices are sorted int arrays covering every row exactly once."""
    for index in (result.train_index, result.test_index):
        assert isinstance(index, np.ndarray) and index.dtype == np.int64
        assert np.all(np.diff(index) > 0)
    together = np.concatenate([result.train_index, result.test_index])
    assert np.array_equal(np.sort(together), np.arange(rows))
    assert result.details["train_rows"] + result.details["test_rows"] == rows


def elec2_with_time() -> pa.Table:
    """Elec2 with its nominal timestamp (1996-05-07 00:00 + row x 30 min, per the README)
    and day index, with rows shuffled so that the split must really sort by time."""
    table = open_source(ELEC2).to_table()
    start = datetime(1996, 5, 7)
    stamps = [start + timedelta(minutes=30 * row) for row in range(table.num_rows)]
    table = table.append_column("time", pa.array(stamps, pa.timestamp("s")))
    table = table.append_column("day", pa.array(np.arange(table.num_rows) // 48))
    return table.take(np.random.default_rng(7).permutation(table.num_rows))


@needs_data
def test_elec2_by_time_tests_on_the_latest_rows():
    table = elec2_with_time()
    result = split(table, target="target", time_column="time", task="classification")
    assert result.method == "time"
    assert_partition(result, 45_312)
    times = table.column("time")
    train_last = pc.max(times.take(result.train_index)).as_py()
    test_first = pc.min(times.take(result.test_index)).as_py()
    assert train_last < test_first
    assert result.test_index.size == 9063  # ceil(0.2 * 45,312), no ties on a timestamp
    assert result.details["test_first_time"] == str(test_first)
    assert set(result.details["classes"]) == {"0", "1"}


@needs_data
def test_elec2_by_day_sends_a_whole_boundary_day_to_one_side():
    table = elec2_with_time()
    result = split(table, target="target", time_column="day", test_size=0.2,
                   task="classification")
    days = table.column("day").to_numpy()
    assert days[result.train_index].max() < days[result.test_index].min()
    assert result.test_index.size % 48 == 0  # whole days only
    assert abs(result.test_index.size - 0.2 * 45_312) <= 24  # closest side chosen
    assert any("share the boundary time" in note for note in result.details["notes"])


@needs_data
def test_bike_sharing_by_its_real_timestamp_despite_shuffled_rows():
    table = open_source(BIKE).to_table()
    hours = [datetime.strptime(h, "%I%p").hour for h in table.column("hr").to_pylist()]
    # pyarrow's CSV reader already parses dteday as a date
    stamps = [datetime.combine(day, time()) + timedelta(hours=hour)
              for day, hour in zip(table.column("dteday").to_pylist(), hours, strict=True)]
    table = table.append_column("timestamp", pa.array(stamps, pa.timestamp("s")))
    result = split(table, target="cnt", time_column="timestamp", test_size=0.25,
                   task="regression")
    assert_partition(result, 17_379)
    assert max(stamps[i] for i in result.train_index) < min(stamps[i] for i in
                                                              result.test_index)
    assert result.test_index.size == 4345  # ceil(0.25 * 17,379)


@needs_data
def test_census_is_stratified_with_class_shares_within_one_point():
    table = pq.read_table(CENSUS_2015)
    result = split(table, target="employed", task="classification", seed=3)
    assert result.method == "stratified"
    assert_partition(result, 68_785)
    employed = table.column("employed").to_numpy()
    overall = employed.mean()
    for index in (result.train_index, result.test_index):
        assert abs(employed[index].mean() - overall) < 0.01
    # the same from a DataFrame and from the Parquet path
    frame = split(table.to_pandas(), target="employed", task="classification", seed=3)
    path = split(CENSUS_2015, target="employed", task="classification", seed=3)
    for other in (frame, path):
        assert np.array_equal(other.test_index, result.test_index)
    # a categorical (dictionary-encoded) target with real rare classes: every class
    # appears on both sides
    race = split(table, target="RAC1P", task="classification")
    assert race.method == "balanced"  # RAC1P "7" has 22 rows and "4" a single one
    assert race.details["classes"]["4"] == [1, 0]
    for name, (train, test) in race.details["classes"].items():
        assert train >= 1 and (test >= 1 or name == "4"), name
    assert race.details["classes"]["7"][1] == round(0.2 * 22)


@needs_data
def test_bike_sharing_regression_split_is_random_and_seeded():
    first = split(BIKE, target="cnt", task="regression", seed=11)
    again = split(BIKE, target="cnt", task="regression", seed=11)
    other = split(BIKE, target="cnt", task="regression", seed=12)
    assert first.method == "random"
    assert_partition(first, 17_379)
    assert first.test_index.size == 3476  # ceil(0.2 * 17,379)
    assert np.array_equal(first.test_index, again.test_index)
    assert np.array_equal(first.train_index, again.train_index)
    assert not np.array_equal(first.test_index, other.test_index)
    # not a block of rows: the test rows are spread over the whole file
    assert first.test_index.min() < 100 and first.test_index.max() > 17_279


@needs_data
def test_thirty_real_rows_with_a_rare_and_a_single_row_class():
    table = pq.read_table(CENSUS_2015).slice(0, 30)  # RAC1P: 26 x "1", 3 x "2", 1 x "9"
    result = split(table, target="RAC1P", task="classification", test_size=0.2)
    assert result.method == "balanced"
    assert_partition(result, 30)
    assert result.details["classes"] == {"1": [21, 5], "2": [2, 1], "9": [1, 0]}
    assert any("single row, kept in train: 9" in n for n in result.details["notes"])
    assert np.array_equal(
        split(table, target="RAC1P", task="classification", test_size=0.2).test_index,
        result.test_index)


def test_a_class_of_two_rows_is_on_both_sides_even_with_a_small_test_size():
    labels = ["a"] * 25 + ["b"] * 3 + ["c"] * 2
    table = pa.table({"x": range(30), "y": labels})
    for seed in range(20):
        result = split(table, target="y", task="classification", test_size=0.1, seed=seed)
        assert_partition(result, 30)
        # ceil(0.1 * 30) = 3 test rows: b and c keep their floor of one, a gives way
        assert result.details["classes"] == {"a": [24, 1], "b": [2, 1], "c": [1, 1]}
        assert result.details["notes"] == []
    # ceil(0.05 * 30) = 2 test rows, but three classes each need one: 3, and a note says so
    result = split(table, target="y", task="classification", test_size=0.05)
    assert result.details["classes"] == {"a": [24, 1], "b": [2, 1], "c": [1, 1]}
    assert any("3 test rows instead of 2" in n for n in result.details["notes"])


def test_missing_target_values_are_a_class_of_their_own():
    table = pa.table({"y": [None] * 10 + ["a"] * 45 + ["b"] * 45})
    result = split(table, target="y", task="classification", seed=1)
    assert result.details["classes"]["<missing>"] == [8, 2]
    assert_partition(result, 100)


def test_seeds_are_deterministic_and_differ():
    table = pa.table({"y": [i % 3 for i in range(3000)]})
    a = split(table, target="y", task="classification", seed=5)
    b = split(table, target="y", task="classification", seed=5)
    c = split(table, target="y", task="classification", seed=6)
    assert a.method == "stratified" and 3000 >= SMALL_DATA_ROWS
    assert np.array_equal(a.test_index, b.test_index)
    assert not np.array_equal(a.test_index, c.test_index)
    assert a.details["classes"] == {"0": [800, 200], "1": [800, 200], "2": [800, 200]}
    small = pa.table({"y": [i % 3 for i in range(300)]})
    assert split(small, target="y", task="classification").method == "balanced"
    rare = pa.table({"y": [0] * 2000 + [1] * (RARE_CLASS_ROWS - 1)})
    assert split(rare, target="y", task="classification").method == "balanced"


def test_ties_go_to_the_side_closest_to_the_requested_share():
    # 10 rows: times 0..6 once each, then three rows at time 7; 20 % -> 2 test rows
    # cutting at time 7 gives 3 test rows (|3-2| = 1), after it 0 (not allowed) -> test
    table = pa.table({"t": [0, 1, 2, 3, 4, 5, 6, 7, 7, 7], "y": [0.0] * 10})
    result = split(table, target="y", time_column="t", task="regression")
    assert result.test_index.tolist() == [7, 8, 9]
    # times 0..4 then five rows at 5 (indices 5..9), shuffled order: 30 % -> 3 test rows;
    # giving the tie to test makes 5 (off by 2), to train makes 0 (empty) -> test
    table = pa.table({"t": [5, 0, 5, 1, 5, 2, 5, 3, 5, 4], "y": [1.0] * 10})
    result = split(table, target="y", time_column="t", task="regression", test_size=0.3)
    assert result.test_index.tolist() == [0, 2, 4, 6, 8]
    # 12 rows, 25 % -> 3 test rows, the cut falls inside a group of three 7s:
    # test side makes 5 (off by 2), train side 2 (off by 1) -> train gets the 7s
    table = pa.table({"t": [0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 8, 9], "y": [1.0] * 12})
    result = split(table, target="y", time_column="t", task="regression", test_size=0.25)
    assert result.test_index.tolist() == [10, 11]
    assert "went to the train side" in result.details["notes"][0]
    # equally close (4 or 2 rows for 3 asked): the test side, so the test is not smaller
    table = pa.table({"t": [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 9], "y": [1.0] * 12})
    result = split(table, target="y", time_column="t", task="regression", test_size=0.25)
    assert result.test_index.tolist() == [8, 9, 10, 11]


def test_invalid_requests_are_validation_errors():
    table = pa.table({"y": [0, 1, 0, 1], "t": [1, 2, 3, 4], "s": ["a", "b", "c", "d"]})
    with pytest.raises(ValidationError, match="no target column 'nope'"):
        split(table, target="nope", task="classification")
    with pytest.raises(ValidationError, match="no time column 'when'"):
        split(table, target="y", time_column="when", task="classification")
    for bad in (0, 1, 1.5, -0.1, True):
        with pytest.raises(ValidationError, match="test_size"):
            split(table, target="y", test_size=bad, task="classification")
    with pytest.raises(ValidationError, match="at least 2"):
        split(table.slice(0, 1), target="y", task="classification")
    with pytest.raises(ValidationError, match="task"):
        split(table, target="y", task="clustering")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not numeric"):
        split(table, target="s", task="regression")
    with pytest.raises(ValidationError, match="same time"):
        split(pa.table({"y": [0.0, 1.0], "t": [3, 3]}), target="y", time_column="t",
              task="regression")
    with pytest.raises(ValidationError, match="missing"):
        split(pa.table({"y": [0.0, 1.0], "t": [3, None]}), target="y", time_column="t",
              task="regression")
