"""Drift from profiles: equal to the raw-sample tests on the same bins, sketches within
their error bound, and the real drift of Elec2 found without its raw data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats

from tidal.core.errors import ValidationError
from tidal.data.drift import compare
from tidal.data.profile_drift import (
    choose_test_from_profiles,
    column_drift_from_profiles,
    drift_from_profiles,
)
from tidal.data.profiles import CATEGORY_CAP, profile, profile_column
from tidal.stats import choose_test, column_drift, dataset_drift
from tidal.stats.counts import (
    ks_sketches,
    ks_weighted,
    wasserstein_sketches,
    wasserstein_weighted,
)
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
    from_data = compare(frame, window, correction="bonferroni")
    # everything compare gives but what names the inputs (the CLI adds those)
    assert set(ours) == set(from_data) - {"reference", "current", "generated_at"}
    assert set(raw) < set(ours) and ours["threshold"] == 0.5 and ours["skipped"] == []
    assert [c["test"] for c in ours["columns"]] == [c["test"] for c in raw["columns"]]
    assert [c["threshold"] for c in ours["columns"]] == [0.025, 0.025]
    assert set(ours["columns"][0]) == set(from_data["columns"][0]) - {"distribution"} | {
        "approximate", "error_bound", "reason"}
    assert [c["kind"] for c in ours["columns"]] == ["numeric", "categorical"]
    with pytest.raises(ValidationError, match="unknown drift test"):
        drift_from_profiles(reference, current, tests={"a": "nope"})
    with pytest.raises(ValidationError, match="reference's bins"):
        drift_from_profiles(reference, profile(window), tests={"a": "psi"})
    partial = drift_from_profiles(reference, profile(window[["a"]], reference=reference))
    assert partial["skipped"] == [{"column": "b", "reason": "not in the current profile"}]
    with pytest.raises(ValidationError, match="no column .* can be compared"):
        drift_from_profiles(reference, profile(window[[]]))


def test_categories_past_the_cap_compare_only_counts_known_on_both_sides():
    # each side keeps its own top 1,000 of 1,200 labels: a label kept on one side and
    # folded into ``other`` on the other used to count as present against absent
    labels = np.array([f"c{i:04d}" for i in range(CATEGORY_CAP + 200)])
    weights = rng.uniform(0.5, 1.5, labels.size)
    weights /= weights.sum()
    reference = rng.choice(labels, 200_000, p=weights).astype(object)
    current = rng.choice(labels, 200_000, p=weights).astype(object)
    raw = column_drift("x", reference, current, test="jensenshannon")
    ours = from_profiles(reference, current, "jensenshannon")
    assert ours.statistic == pytest.approx(raw.statistic, abs=0.01)  # was 0.09
    assert not ours.drifted and not raw.drifted
    # a reference profiled in two batches and merged compares the same way
    first, second = (profile_column(pa.array(part)) for part in np.split(reference, [80_000]))
    merged = first.merge(second)
    assert merged.other > 0
    cur = profile_column(pa.array(current))
    again = column_drift_from_profiles("x", merged, cur, test="jensenshannon")
    assert again.statistic == pytest.approx(raw.statistic, abs=0.01)
    assert column_drift_from_profiles("x", merged, profile_column(pa.array(reference)),
                                      test="jensenshannon").statistic == 0.0
    # one side truncated: the other side's absent labels are known zeros, so a new
    # category in a small window still shows
    window = rng.choice(labels[:50], 3000).astype(object)
    window[:600] = "brand-new"
    shifted = column_drift_from_profiles("x", cur, profile_column(pa.array(window)),
                                         test="chisquare")
    assert shifted.drifted and shifted.p_value < 1e-12


def test_missing_values_drift_as_in_the_raw_comparison():
    n = 4000
    reference = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.choice(["x", "y"], n),
                              "c": rng.normal(0, 1, n), "d": [np.nan] * n,
                              "e": rng.normal(0, 1, n)})
    current = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.choice(["x", "y"], n),
                            "c": rng.normal(2, 1, n), "d": [np.nan] * n,
                            "e": [np.nan] * n})
    reference.loc[:40, "a"] = np.nan  # 1 % missing
    current.loc[:400, "a"] = np.inf  # 10 % infinite: missing, as the raw path counts it
    current.loc[:400, "c"] = np.nan  # shifted and missing
    current.loc[:3, "b"] = None  # 0.1 %: too small a change
    ours = drift_from_profiles(profile(reference), profile(current))
    raw = compare(reference, current)
    by_name = {c["column"]: c for c in ours["columns"]}
    expected = {c["column"]: c for c in raw["columns"]}
    assert set(by_name) == set(expected) == {"a", "b", "c", "e"}
    assert ours["skipped"] == raw["skipped"] == [
        {"column": "d", "reason": "no values to compare (all missing)"}]
    for name in "abce":
        assert by_name[name]["test"] == expected[name]["test"]
        assert by_name[name]["drifted"] == expected[name]["drifted"]
        assert by_name[name]["missing"] == pytest.approx(expected[name]["missing"])
    for name in "be":  # exact counts (a and c: KS from sketches, within their bound)
        assert by_name[name]["statistic"] == pytest.approx(expected[name]["statistic"])
    assert by_name["a"]["missing"]["current"] == pytest.approx(401 / n)
    assert [by_name[name]["reason"] for name in "abce"] == [
        "missing", None, "distribution and missing", "missing"]
    assert by_name["e"]["test"] == "missing" and by_name["e"]["drifted"]
    assert by_name["e"]["statistic"] == pytest.approx(1.0)
    assert by_name["e"]["kind"] == "numeric" and by_name["c"]["kind"] == "numeric"
    assert by_name["b"]["missing"]["p_value"] is not None and not by_name["b"]["missing"][
        "drifted"]
    assert ours["number_of_drifted_columns"] == raw["number_of_drifted_columns"] == 3
    with pytest.raises(ValidationError, match="no column .* can be compared"):
        drift_from_profiles(profile(reference[["d"]]), profile(current[["d"]]))
    # all null in the window, whatever type it was read as: missing drift, not an error
    gone = drift_from_profiles(profile(reference[["b"]]),
                               profile(pd.DataFrame({"b": [None] * 100})))
    assert gone["columns"][0]["test"] == "missing" and gone["columns"][0]["drifted"]
    assert gone["columns"][0]["kind"] == "categorical"
    changed = drift_from_profiles(profile(reference[["b"]]),
                                  profile(pd.DataFrame({"b": [1.0, 2.0]})))
    assert changed["columns"][0]["reason"] == "type changed: categorical → numeric"
    raw_changed = compare(reference[["b"]], pd.DataFrame({"b": [1.0, 2.0]}))
    assert raw_changed["columns"][0]["reason"].startswith("type changed: categorical (")
    assert {k: v for k, v in changed["columns"][0].items() if k not in ("missing", "reason")} \
        == {k: v for k, v in raw_changed["columns"][0].items()
            if k not in ("missing", "distribution", "reason")} | {"approximate": False,
                                                                   "error_bound": 0.0}


def test_wasserstein_of_weighted_samples_is_scipys():
    for trial in range(50):
        ref_values = np.unique(rng.normal(0, rng.choice([1e-3, 1.0, 1e4]), rng.integers(1, 300)))
        cur_values = np.unique(rng.gamma(2, 2, rng.integers(1, 300)))
        if trial % 2:
            cur_values = np.union1d(cur_values, ref_values[:3])
        ref_weights = rng.integers(1, 40, ref_values.size).astype(float)
        cur_weights = rng.random(cur_values.size) + 0.01
        ours = wasserstein_weighted(ref_values, ref_weights, cur_values, cur_weights)
        theirs = scipy_stats.wasserstein_distance(ref_values, cur_values, ref_weights,
                                                  cur_weights)
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)


def test_counts_imports_no_scipy_until_a_ks_test_runs():
    code = ("import sys, numpy as np; import tidal.stats.counts as c; "
            "x = np.arange(5.0); w = np.ones(5); "
            "c.wasserstein_weighted(x, w, x + 1, w); c.z_counts(1, 10, 2, 10); "
            "c.js_counts(w, w); print('scipy' in sys.modules)")
    output = subprocess.check_output([sys.executable, "-c", code], text=True)
    assert output.strip() == "False"


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
