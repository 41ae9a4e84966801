"""Drift from profiles: equal to the raw-sample tests on the same bins, sketches within
their error bound, and the real drift of Elec2 found without its raw data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from tidal.core.errors import ValidationError
from tidal.data.profile_drift import (
    choose_test_from_profiles,
    column_drift_from_profiles,
    drift_from_profiles,
)
from tidal.data.profiles import profile, profile_column
from tidal.stats import choose_test, column_drift, dataset_drift
from tidal.stats.counts import ks_sketches, ks_weighted, wasserstein_sketches
from tidal.stats.sketch import QuantileSketch

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
rng = np.random.default_rng(11)


def from_profiles(reference, current, test, base=None):
    ref = profile_column(reference, reference=base)
    cur = profile_column(current, reference=base if base is not None else ref)
    return column_drift_from_profiles("x", ref, cur, test=test)


def assert_same(ours, raw):
    assert ours.test == raw.test and ours.drifted == raw.drifted
    assert ours.statistic == pytest.approx(raw.statistic, rel=1e-12, abs=1e-15)
    if raw.p_value is None:
        assert ours.p_value is None
    else:
        assert ours.p_value == pytest.approx(raw.p_value, rel=1e-9, abs=1e-15)
    assert not ours.approximate and ours.error_bound == 0.0


@pytest.mark.parametrize("test", ["chisquare", "z", "jensenshannon", "psi"])
def test_count_tests_equal_the_raw_tests_on_categories(test):
    reference = rng.choice(["a", "b", "c", "d"], 3000, p=[0.4, 0.3, 0.2, 0.1])
    current = rng.choice(["a", "b", "c", "e"], 2000, p=[0.3, 0.3, 0.3, 0.1])
    ours = from_profiles(reference.astype(object), current.astype(object), test)
    assert_same(ours, column_drift("x", reference, current, test=test))


@pytest.mark.parametrize("test", ["chisquare", "z", "jensenshannon", "psi", "ks",
                                  "wasserstein"])
def test_every_test_equals_the_raw_one_on_few_distinct_numbers(test):
    reference = rng.integers(0, 12, 4000).astype(float)
    current = rng.integers(2, 15, 2500).astype(float)
    ours = from_profiles(reference, current, test)
    assert_same(ours, column_drift("x", reference, current, test=test))


@pytest.mark.parametrize("test", ["jensenshannon", "psi"])
def test_binned_distances_equal_the_raw_ones_on_the_same_bins(test):
    reference, current = rng.normal(0, 1, 5000), rng.normal(0.3, 1.2, 4000)
    # the raw test cuts Sturges bins over both samples: a reference profile of both gives
    # the same edges, and then the counts are the same
    both = profile_column(np.concatenate([reference, current]))
    ours = from_profiles(reference, current, test, base=both)
    assert_same(ours, column_drift("x", reference, current, test=test))


def test_ks_from_sketches_is_within_the_rank_error_of_scipys():
    reference, current = rng.normal(0, 1, 100_000), rng.normal(0.02, 1.05, 100_000)
    raw = scipy_stats.ks_2samp(reference, current)
    statistic, p_value, bound = ks_sketches(QuantileSketch.from_array(reference),
                                            QuantileSketch.from_array(current))
    assert 0 < bound < 0.03
    assert abs(statistic - raw.statistic) <= bound
    ours = from_profiles(reference, current, "ks")
    assert ours.approximate and ours.error_bound == pytest.approx(bound)
    assert abs(ours.statistic - raw.statistic) <= ours.error_bound
    assert ours.p_value < 0.05 and raw.pvalue < 0.05


def test_ks_of_exact_sketches_is_scipys_exactly():
    reference, current = rng.normal(0, 1, 150), rng.normal(0.5, 1, 120)
    statistic, p_value, bound = ks_sketches(QuantileSketch.from_array(reference),
                                            QuantileSketch.from_array(current))
    raw = scipy_stats.ks_2samp(reference, current)
    assert (statistic, p_value, bound) == (pytest.approx(raw.statistic),
                                           pytest.approx(raw.pvalue), 0.0)
    ours = from_profiles(reference, current, "ks")
    assert not ours.approximate and ours.p_value == pytest.approx(raw.pvalue)


def test_asymptotic_ks_p_value_is_scipys_for_large_samples():
    reference, current = rng.integers(0, 9, 30_000), rng.integers(0, 10, 20_000)
    raw = scipy_stats.ks_2samp(reference, current)
    keys = np.arange(10.0)
    statistic, p_value = ks_weighted(keys, np.bincount(reference, minlength=10).astype(float),
                                     keys, np.bincount(current, minlength=10).astype(float))
    assert statistic == pytest.approx(raw.statistic, rel=1e-12)
    assert p_value == pytest.approx(raw.pvalue, rel=1e-9)


def test_wasserstein_from_sketches_is_within_its_bound():
    reference, current = rng.gamma(2, 2, 100_000), rng.gamma(2.2, 2, 80_000)
    raw = column_drift("x", reference, current, test="wasserstein")
    statistic, bound = wasserstein_sketches(QuantileSketch.from_array(reference),
                                            QuantileSketch.from_array(current),
                                            float(np.std(reference)))
    assert abs(statistic - raw.statistic) <= bound
    ours = from_profiles(reference, current, "wasserstein")
    assert ours.approximate and abs(ours.statistic - raw.statistic) <= ours.error_bound
    # in practice far inside the bound: about 0.02 reference deviations at k = 200
    assert ours.statistic == pytest.approx(raw.statistic, abs=0.06)


@pytest.mark.parametrize("n,values,expected", [
    (500, np.arange(100.0), "ks"),
    (500, np.array([1.0, 2.0, 3.0, 4.0]), "chisquare"),
    (500, np.array([0, 1]), "z"),
    (500, np.array(["a", "b"], dtype=object), "z"),
    (500, np.array(["a", "b", "c"], dtype=object), "chisquare"),
    (5000, np.arange(100.0), "wasserstein"),
    (5000, np.array([1.0, 2.0, 3.0]), "jensenshannon"),
    (5000, np.array(["a", "b", "c"], dtype=object), "jensenshannon"),
])
def test_default_test_from_profiles_follows_the_raw_choice(n, values, expected):
    reference, current = rng.choice(values, n), rng.choice(values, 100)
    ref = profile_column(reference)
    cur = profile_column(current, reference=ref)
    numeric = values.dtype.kind in "iuf"
    assert choose_test(reference, current, numeric) == expected
    assert choose_test_from_profiles("x", ref, cur) == expected


def test_dataset_verdict_has_the_raw_shape_and_applies_bonferroni():
    frame = pd.DataFrame({"a": rng.normal(0, 1, 800), "b": rng.choice(["x", "y"], 800)})
    window = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.choice(["x", "y"], 300)})
    reference = profile(frame)
    current = profile(window, reference=reference)
    ours = drift_from_profiles(reference, current, correction="bonferroni")
    raw = dataset_drift(frame, window, correction="bonferroni")
    assert set(ours) == set(raw)
    assert [c["test"] for c in ours["columns"]] == [c["test"] for c in raw["columns"]]
    assert [c["threshold"] for c in ours["columns"]] == [0.025, 0.025]
    assert set(ours["columns"][0]) == set(raw["columns"][0]) | {"approximate", "error_bound"}
    with pytest.raises(ValidationError, match="unknown drift test"):
        drift_from_profiles(reference, current, tests={"a": "nope"})
    with pytest.raises(ValidationError, match="reference's bins"):
        drift_from_profiles(reference, profile(window), tests={"a": "psi"})
    with pytest.raises(ValidationError, match="no column"):
        drift_from_profiles(reference, profile(window[["a"]], reference=reference))


@pytest.fixture(scope="module")
def elec2() -> pd.DataFrame:
    return pd.read_csv(DATA / "elec2.csv.gz")


def test_profiles_find_the_victoria_columns_switching_on(elec2):
    first_year = elec2.iloc[:17_520]
    reference = profile(first_year)
    window = profile(elec2.iloc[30_000:40_000], reference=reference)
    result = drift_from_profiles(reference, window)
    drifted = {c["column"] for c in result["columns"] if c["drifted"]}
    assert {"feat_4", "feat_5", "feat_6"} <= drifted
    raw = dataset_drift(first_year, elec2.iloc[30_000:40_000])
    assert drifted == {c["column"] for c in raw["columns"] if c["drifted"]}


def test_profiles_of_random_halves_of_one_year_do_not_drift(elec2):
    first_year = elec2.iloc[:17_520]
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(first_year))
        half_a = first_year.iloc[np.sort(order[:8_760])]
        half_b = first_year.iloc[np.sort(order[8_760:])]
        reference = profile(half_a)
        result = drift_from_profiles(reference, profile(half_b, reference=reference))
        assert result["number_of_drifted_columns"] == 0, result
        assert not result["dataset_drift"]
