"""Drift tests: agreement with SciPy, the defaults Evidently uses, and real drift."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tidal.stats import choose_test, column_drift, dataset_drift
from tidal.stats.tests import TESTS

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
rng = np.random.default_rng(7)


def test_ks_and_chisquare_p_values_are_scipys():
    ref, cur = rng.normal(0, 1, 800), rng.normal(0.1, 1, 700)
    ours = column_drift("x", ref, cur, test="ks")
    theirs = scipy_stats.ks_2samp(ref, cur)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)

    ref_c = rng.choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2])
    cur_c = rng.choice(["a", "b", "c"], 500, p=[0.4, 0.4, 0.2])
    ours = column_drift("c", ref_c, cur_c, test="chisquare")
    counts = lambda v: [np.sum(v == k) for k in "abc"]  # noqa: E731
    theirs = scipy_stats.chi2_contingency([counts(ref_c), counts(cur_c)], correction=False)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-12)


def test_chisquare_treats_both_sides_as_samples():
    """A value absent from a small reference is evidence, not proof, of drift."""
    ref = np.array(["a"] * 50 + ["b"] * 49)
    cur = np.array(["a"] * 50 + ["b"] * 49 + ["c"])
    result = column_drift("c", ref, cur, test="chisquare")
    assert 0.3 < result.p_value < 1 and not result.drifted
    # under no drift the homogeneity test keeps its 5 % promise with equal sample sizes
    draws = np.random.default_rng(3)
    alarms = sum(
        column_drift("c", draws.choice(list("abcdef"), 200), draws.choice(list("abcdef"), 200),
                     test="chisquare").drifted
        for _ in range(400)
    )
    assert alarms / 400 <= 0.08


def test_wasserstein_equals_scipys_with_ties_and_unequal_sizes():
    ref = rng.normal(0, 1, 3001).round(1)
    cur = rng.normal(0.2, 1.3, 1777).round(1)
    ours = column_drift("x", ref, cur, test="wasserstein").statistic * np.std(ref)
    assert ours == pytest.approx(scipy_stats.wasserstein_distance(ref, cur), rel=1e-12)


def test_z_test_equals_the_uncorrected_two_by_two_chi_square():
    ref, cur = rng.random(900) < 0.30, rng.random(700) < 0.36
    ours = column_drift("flag", ref, cur, test="z")
    table = [[np.sum(~ref), np.sum(ref)], [np.sum(~cur), np.sum(cur)]]
    chi2, p_value, *_ = scipy_stats.chi2_contingency(table, correction=False)
    assert ours.p_value == pytest.approx(p_value, abs=1e-9)
    assert ours.statistic ** 2 == pytest.approx(chi2, rel=1e-9)


def test_normed_wasserstein_measures_a_shift_in_reference_deviations():
    ref = rng.normal(10, 3, 5000)
    result = column_drift("x", ref, ref + 1.5, test="wasserstein")
    assert result.statistic == pytest.approx(1.5 / np.std(ref), rel=1e-9)
    assert result.drifted and result.p_value is None and result.threshold == 0.1


def test_distances_are_zero_for_the_same_sample_and_large_for_disjoint_ones():
    same = rng.choice(["a", "b"], 2000)
    for name in ("jensenshannon", "psi"):
        assert column_drift("c", same, same.copy(), test=name).statistic == pytest.approx(0)
    disjoint = column_drift("c", np.array(["a"] * 50), np.array(["b"] * 50),
                            test="jensenshannon")
    assert disjoint.statistic == pytest.approx(math.sqrt(math.log(2)), rel=1e-3)


def test_psi_by_hand():
    ref = np.array(["a"] * 60 + ["b"] * 40)
    cur = np.array(["a"] * 40 + ["b"] * 60)
    expected = (0.6 - 0.4) * math.log(0.6 / 0.4) + (0.4 - 0.6) * math.log(0.4 / 0.6)
    assert column_drift("c", ref, cur, test="psi").statistic == pytest.approx(expected)


@pytest.mark.parametrize("n,values,numeric,expected", [
    (500, np.arange(100.0), True, "ks"),
    (500, np.array([1.0, 2.0, 3.0, 4.0]), True, "chisquare"),
    (500, np.array([0, 1]), True, "z"),
    (500, np.array(["a", "b"]), False, "z"),
    (500, np.array(["a", "b", "c"]), False, "chisquare"),
    (5000, np.arange(100.0), True, "wasserstein"),
    (5000, np.array([1.0, 2.0, 3.0]), True, "jensenshannon"),
    (5000, np.array(["a", "b", "c"]), False, "jensenshannon"),
])
def test_default_test_follows_evidently(n, values, numeric, expected):
    reference = rng.choice(values, n)
    assert choose_test(reference, rng.choice(values, 100), numeric) == expected


def test_missing_values_are_left_out_and_empty_columns_refused():
    ref = np.array([1.0, np.nan, 2.0, 3.0] * 50)
    result = column_drift("x", ref, ref.copy(), test="ks")
    assert result.p_value == pytest.approx(1.0) and not result.drifted
    with pytest.raises(ValueError, match="no values"):
        column_drift("x", np.array([np.nan]), ref)
    with pytest.raises(ValueError, match="unknown drift test"):
        column_drift("x", ref, ref, test="vibes")


def test_dataset_verdict_and_bonferroni():
    ref = {f"c{i}": rng.normal(0, 1, 500) for i in range(4)}
    # two columns shifted by one deviation; two merely reordered (no drift by construction)
    cur = {name: values + 1.0 if i < 2 else rng.permutation(values)
           for i, (name, values) in enumerate(ref.items())}
    report = dataset_drift(ref, cur)
    assert [c["drifted"] for c in report["columns"]] == [True, True, False, False]
    assert report["drift_share"] == 0.5 and report["dataset_drift"] is True
    assert set(report["columns"][0]) >= {"column", "test", "statistic", "p_value",
                                         "threshold", "drifted"}
    corrected = dataset_drift(ref, cur, correction="bonferroni")
    assert all(c["threshold"] == pytest.approx(0.05 / 4) for c in corrected["columns"])
    stricter = dataset_drift(ref, cur, drift_share=0.75)
    assert stricter["dataset_drift"] is False


@pytest.mark.skipif(not (DATA / "elec2.csv.gz").is_file(), reason="shared/data not present")
def test_real_drift_in_elec2_and_quiet_on_the_same_period():
    import pandas as pd

    frame = pd.read_csv(DATA / "elec2.csv.gz")
    before, after = frame.iloc[:17_424], frame.iloc[17_424:17_424 + 17_520]
    # Victorian demand is a constant until row 17,424, then varies: drift on both defaults
    for sample in (1000, 10_000):
        result = column_drift("feat_5", before["feat_5"].to_numpy()[:sample],
                              after["feat_5"].to_numpy()[:sample])
        assert result.drifted, result
    # two random halves of the same year: no drift, whichever test is chosen
    year = frame.iloc[:17_520].sample(frac=1.0, random_state=1)
    half = len(year) // 2
    report = dataset_drift(year.iloc[:half], year.iloc[half:],
                           columns=["feat_1", "feat_2", "feat_3", "target"])
    assert report["number_of_drifted_columns"] == 0, report


def test_every_registered_test_runs_on_numbers_and_categories():
    for name, test in TESTS.items():
        numeric = name in ("ks", "wasserstein")
        ref = rng.normal(0, 1, 300) if numeric else rng.choice(["x", "y", "z"], 300)
        cur = rng.normal(0, 1, 300) if numeric else rng.choice(["x", "y", "z"], 300)
        result = test.run("col", ref, cur, numeric)
        assert math.isfinite(result.statistic)


def test_jensen_shannon_is_scipys_on_floored_shares():
    from scipy.spatial import distance

    from tidal.stats.binning import shares
    from tidal.stats.tests import js_counts

    ref, cur = np.array([100.0, 0, 0, 50]), np.array([0.0, 80, 70, 0])
    assert js_counts(ref, cur) == pytest.approx(
        distance.jensenshannon(shares(ref), shares(cur)), rel=1e-12)
    a, b = rng.choice(list("abcdefg"), 3000), rng.choice(list("abcdeh"), 2000)
    ours = column_drift("c", a, b, test="jensenshannon").statistic
    keys = sorted(set(a) | set(b))
    counts = lambda v: np.array([np.sum(v == k) for k in keys], dtype=float)  # noqa: E731
    assert ours == pytest.approx(distance.jensenshannon(shares(counts(a)), shares(counts(b))),
                                 rel=1e-12)


def test_infinities_are_missing_values_like_nan():
    ref, cur = rng.normal(size=2000), rng.normal(size=2000)
    with_inf = np.append(cur, [np.inf, -np.inf])
    for test in ("wasserstein", "jensenshannon", "ks"):
        assert column_drift("x", ref, with_inf, test=test).statistic == pytest.approx(
            column_drift("x", ref, cur, test=test).statistic, rel=1e-12)
