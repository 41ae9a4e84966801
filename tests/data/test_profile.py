"""Profiles: merging two batches gives the profile of both, and bytes round-trip exactly."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tidal.core.errors import ValidationError
from tidal.data.profiles import (
    CATEGORY_CAP,
    ColumnProfile,
    DatasetProfile,
    profile,
    profile_column,
)

FLOATS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.5]),
)
FLOAT_ARRAYS = st.lists(FLOATS, max_size=400).map(lambda v: np.array(v, dtype=float))
WORDS = st.lists(st.one_of(st.sampled_from(["a", "b", "c", "dd", "é", ""]), st.none()),
                 max_size=200)


def split(values, cut: float):
    at = int(cut * len(values))
    return values[:at], values[at:]


def assert_same_numeric(merged: ColumnProfile, direct: ColumnProfile, data: np.ndarray):
    """Exact for counts, extremes, histogram and value counts; moments to rounding;
    quantiles within the sketch's rank error of the data's true ranks."""
    assert (merged.count, merged.missing, merged.infinite) == \
        (direct.count, direct.missing, direct.infinite)
    assert (merged.min, merged.max) == (direct.min, direct.max)
    assert merged.values == direct.values
    assert np.array_equal(merged.edges, direct.edges)
    assert np.array_equal(merged.histogram, direct.histogram)
    scale = max(float(np.max(np.abs(data[np.isfinite(data)]), initial=1.0)), 1.0)
    assert merged.mean == pytest.approx(direct.mean, rel=1e-9, abs=1e-12 * scale)
    if direct.count:
        assert merged.variance == pytest.approx(direct.variance, rel=1e-9,
                                                abs=1e-12 * scale * scale)
        assert_quantiles_within_error(merged, data)


def assert_quantiles_within_error(column: ColumnProfile, data: np.ndarray):
    finite = np.sort(data[np.isfinite(data)])
    error = column.sketch.rank_error
    ranks = np.linspace(0.0, 1.0, 41)
    for rank, value in zip(ranks, column.quantiles(ranks), strict=True):
        below = np.searchsorted(finite, value, "left") / finite.size
        upto = np.searchsorted(finite, value, "right") / finite.size
        assert below - error - 1e-12 <= rank <= upto + error + 1e-12 or rank == 0.0


@settings(max_examples=150, deadline=None)
@given(FLOAT_ARRAYS, FLOAT_ARRAYS, st.floats(0, 1))
def test_merging_two_batches_equals_profiling_both(reference, values, cut):
    assume(np.isfinite(reference).any())  # a reference without numbers has no bins to give
    base = profile_column(reference)  # fixes the histogram edges, as a monitor's reference does
    first, second = split(values, cut)
    merged = profile_column(first, reference=base).merge(profile_column(second, reference=base))
    direct = profile_column(values, reference=base)
    assert_same_numeric(merged, direct, values)


@settings(max_examples=100, deadline=None)
@given(FLOAT_ARRAYS, st.floats(0, 1), st.floats(0, 1))
def test_merging_is_associative(values, cut_a, cut_b):
    assume(np.isfinite(values).any())
    base = profile_column(values)
    cuts = sorted([int(cut_a * len(values)), int(cut_b * len(values))])
    a, b, c = (profile_column(part, reference=base) for part in np.split(values, cuts))
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert_same_numeric(left, right, values)
    assert_same_numeric(left, profile_column(values, reference=base), values)


@settings(max_examples=100, deadline=None)
@given(WORDS, st.floats(0, 1))
def test_category_counts_merge_exactly(words, cut):
    first, second = split(words, cut)
    merged = profile_column(pa.array(first, pa.string())).merge(
        profile_column(pa.array(second, pa.string())))
    direct = profile_column(pa.array(words, pa.string()))
    assert merged == direct
    assert direct.values == {w: words.count(w) for w in set(words) if w is not None}
    assert direct.missing == words.count(None) and direct.other == 0


@settings(max_examples=100, deadline=None)
@given(FLOAT_ARRAYS, WORDS)
def test_bytes_round_trip_exactly(values, words):
    original = DatasetProfile(len(values), {
        "x": profile_column(values), "w": profile_column(pa.array(words, pa.string()))})
    back = DatasetProfile.from_bytes(original.to_bytes())
    assert back == original
    x, y = original.columns["x"], back.columns["x"]
    assert (np.float64(x.mean).tobytes(), np.float64(x.m2).tobytes()) == \
        (np.float64(y.mean).tobytes(), np.float64(y.m2).tobytes())
    ranks = np.linspace(0, 1, 11)
    assert x.quantiles(ranks).tobytes() == y.quantiles(ranks).tobytes()
    assert back.to_bytes() == original.to_bytes()


def test_large_batches_keep_quantiles_within_the_rank_error():
    rng = np.random.default_rng(3)
    values = rng.lognormal(0, 1, 200_000)
    base = profile_column(values[:1000])
    parts = [profile_column(part, reference=base) for part in np.array_split(values, 7)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert not merged.sketch.is_exact and 0 < merged.sketch.rank_error < 0.02
    assert_same_numeric(merged, profile_column(values, reference=base), values)
    assert merged.histogram[-1] > 0  # values above the reference's range: overflow bin


def test_moments_stay_accurate_where_naive_sums_cancel():
    rng = np.random.default_rng(4)
    values = 1e9 + rng.normal(0, 1, 100_000)
    first = profile_column(values[:31_337])
    merged = first.merge(profile_column(values[31_337:], reference=first))
    assert merged.variance == pytest.approx(np.var(values), rel=1e-9)
    assert merged.mean == pytest.approx(np.mean(values), rel=1e-15)


def test_few_distinct_numbers_are_counted_exactly_until_twenty():
    few = profile_column(np.array([1, 2, 2, 3, 3, 3], dtype=np.int64))
    assert few.values == {1.0: 1, 2.0: 2, 3.0: 3} and few.distinct == 3
    assert profile_column(np.arange(21.0)).values is None
    ten = profile_column(np.arange(10.0))
    twenty = ten.merge(profile_column(np.arange(10.0, 20.0), reference=ten))
    assert twenty.distinct == 20
    assert twenty.merge(profile_column(np.array([99.0]), reference=ten)).values is None
    late = np.concatenate([np.zeros(10_000), np.arange(30.0)])  # new values after the head
    assert profile_column(late).values is None


def test_categories_past_the_cap_keep_the_most_frequent_and_count_the_rest():
    words = [f"w{i}" for i in range(CATEGORY_CAP + 50)] + ["w7"] * 5
    column = profile_column(pa.array(words))
    assert len(column.values) == CATEGORY_CAP and column.other == 50
    assert column.values["w7"] == 6 and column.count == len(words)
    assert sum(column.values.values()) + column.other == column.count


def test_merging_categories_past_the_cap_keeps_only_exact_counts():
    rng = np.random.default_rng(8)
    labels = np.array([f"c{i:04d}" for i in range(CATEGORY_CAP + 200)])
    weights = rng.uniform(0.5, 1.5, labels.size)
    words = rng.choice(labels, 60_000, p=weights / weights.sum())
    first, second = (profile_column(pa.array(part)) for part in np.split(words, [25_000]))
    assert first.other and second.other  # both batches truncated, on different categories
    merged = first.merge(second)
    exact = dict(zip(*np.unique(words, return_counts=True), strict=True))
    assert merged.values and all(count == exact[key] for key, count in merged.values.items())
    assert set(merged.values) == set(first.values) & set(second.values)
    assert sum(merged.values.values()) + merged.other == merged.count == words.size
    # merged with a batch that kept every category: what it lacks are known zeros, and
    # what it has that the truncated side folded into ``other`` is unknown, so ``other``
    kept = min(first.values)
    hidden = min(set(labels) - set(first.values))
    joined = first.merge(profile_column(pa.array([kept, kept, hidden])))
    assert joined.values == {**first.values, kept: first.values[kept] + 2}
    assert joined.other == first.other + 1


def test_missing_infinite_booleans_and_all_null_columns():
    column = profile_column(pa.array([1, None, 3], pa.int64()))
    assert (column.count, column.missing, column.mean) == (2, 1, 2.0)
    column = profile_column(np.array([1.0, np.nan, np.inf, -np.inf]))
    assert (column.count, column.missing, column.infinite, column.max) == (1, 1, 2, 1.0)
    flags = profile_column(pa.array([True, False, True, None]))
    assert flags.kind == "categorical" and flags.values == {"true": 2, "false": 1}
    empty = profile_column(pa.array([None, None]))
    assert (empty.count, empty.missing) == (0, 2)
    words = profile_column(pa.array(["a"]))
    assert empty.merge(words) == profile_column(pa.array([None, None, "a"]))


def test_histograms_on_different_edges_do_not_merge():
    a = profile_column(np.arange(100.0))
    b = profile_column(np.arange(50.0, 500.0))
    with pytest.raises(ValidationError, match="same reference"):
        a.merge(b)
    assert a.merge(profile_column(np.arange(50.0, 500.0), reference=a)).count == 550


def test_profile_reads_parquet_column_by_column_and_summarises_to_json(tmp_path):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=5000), "n": rng.integers(0, 4, 5000),
                          "c": rng.choice(["red", "green", None], 5000)})
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    from_file = profile(path)
    assert from_file.rows == 5000 and list(from_file.columns) == ["x", "n", "c"]
    assert profile(frame, columns=["x"]).columns["x"].count == 5000
    summary = orjson.loads(orjson.dumps(from_file.to_dict()))
    x = summary["columns"]["x"]
    assert set(x["quantiles"]) == {"p01", "p05", "p25", "p50", "p75", "p95", "p99"}
    assert x["std"] == pytest.approx(np.std(frame["x"]), rel=1e-12)
    assert sum(x["histogram"]["counts"]) == 5000 and x["histogram"]["overflow"] == 0
    assert summary["columns"]["c"]["top"][0]["value"] in ("red", "green")
    assert summary["columns"]["n"]["distinct"] == 4
    window = profile(frame.iloc[:100], reference=from_file)
    assert np.array_equal(window.columns["x"].edges, from_file.columns["x"].edges)
    with pytest.raises(ValidationError):
        profile(frame, reference=from_file, bins=10)


def test_profile_leaves_out_nested_binary_and_temporal_columns(tmp_path):
    table = pa.table({
        "x": pa.array([1.0, 2.0, None]),
        "flag": pa.array([True, False, True]),
        "l": pa.array([[1, 2], [], None], pa.list_(pa.int64())),
        "s": pa.array([{"a": 1}, {"a": 2}, None]),
        "b": pa.array([b"\x00", b"\x01", None], pa.binary()),
        "d": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2), None], pa.date32()),
        "t": pa.array([dt.datetime(2024, 1, 1, 12)] * 3, pa.timestamp("us")),
        "empty": pa.nulls(3),
    })
    path = tmp_path / "nested.parquet"
    pq.write_table(table, path)
    result = profile(path)  # the list column used to stop it (value_counts has no kernel)
    assert list(result.columns) == ["x", "flag", "empty"]
    assert result.columns["flag"].values == {"true": 2, "false": 1}
    asked = profile(path, columns=["d", "x"])
    assert list(asked.columns) == ["d", "x"]
    assert asked.columns["d"].kind == "categorical"
    assert asked.columns["d"].values == {"2024-01-01": 1, "2024-01-02": 1}
    for name in ("l", "s", "b"):
        with pytest.raises(ValidationError, match="cannot be profiled"):
            profile(path, columns=[name])
    with pytest.raises(ValidationError, match="no column 'nope'"):
        profile(path, columns=["nope"])
    with pytest.raises(ValidationError, match="cannot be profiled"):
        profile_column(table.column("l"))


def test_booleans_are_keyed_as_the_raw_drift_keys_them():
    from tidal.data.drift import compare
    from tidal.data.profile_drift import drift_from_profiles

    rng = np.random.default_rng(9)
    reference = pa.table({"f": pa.array(rng.random(800) < 0.3)})  # z test
    current = pa.table({"f": pa.array(rng.random(600) < 0.4)})
    raw = compare(reference, current)["columns"][0]
    ours = drift_from_profiles(profile(reference), profile(current))["columns"][0]
    assert raw["distribution"]["labels"] == ["false", "true"]
    assert set(profile(reference).columns["f"].values) == {"false", "true"}
    assert (ours["test"], ours["drifted"]) == (raw["test"], raw["drifted"])
    assert ours["statistic"] == pytest.approx(raw["statistic"], rel=1e-12)
    assert ours["p_value"] == pytest.approx(raw["p_value"], rel=1e-9)


def test_from_bytes_rejects_other_data():
    with pytest.raises(ValidationError, match="not a Tidal profile"):
        DatasetProfile.from_bytes(b"PAR1 something else")
    data = profile(pd.DataFrame({"x": [1.0, 2.0]})).to_bytes()
    with pytest.raises(ValidationError, match="corrupt"):
        DatasetProfile.from_bytes(data + b"x")
