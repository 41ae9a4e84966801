"""Drift between two tables read column by column: same answers as the raw-sample tests,
missing values, skipped columns, overrides and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as scipy_stats

from tidal.core.errors import ValidationError
from tidal.data.drift import compare
from tidal.data.sources import DataReadError
from tidal.stats import dataset_drift

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def elec2() -> pd.DataFrame:
    return pd.read_csv(DATA / "elec2.csv.gz")


def test_same_verdicts_and_statistics_as_the_raw_sample_tests(elec2, tmp_path):
    reference, current = elec2.iloc[:17_520], elec2.iloc[30_000:40_000]
    raw = dataset_drift({c: reference[c].to_numpy() for c in elec2.columns},
                        {c: current[c].to_numpy() for c in elec2.columns})
    ours = compare(reference, current)
    assert [c["column"] for c in ours["columns"]] == list(elec2.columns)
    for mine, theirs in zip(ours["columns"], raw["columns"], strict=True):
        assert mine["test"] == theirs["test"]
        assert mine["statistic"] == pytest.approx(theirs["statistic"], rel=1e-9)
        assert mine["drifted"] == theirs["drifted"]
    # the year-one artefact: Victoria's columns were constant, then start to vary
    assert {c["column"] for c in ours["columns"] if c["drifted"]} >= {"feat_4", "feat_5",
                                                                      "feat_6"}
    assert ours["dataset_drift"] is raw["dataset_drift"] is True

    # read from Parquet one column at a time: the same result
    pq.write_table(pa.Table.from_pandas(reference), tmp_path / "ref.parquet")
    pq.write_table(pa.Table.from_pandas(current), tmp_path / "cur.parquet")
    from_files = compare(tmp_path / "ref.parquet", tmp_path / "cur.parquet", workers=1)
    assert [c["statistic"] for c in from_files["columns"]] == \
        [c["statistic"] for c in ours["columns"]]
    assert from_files["reference"] == {"name": str(tmp_path / "ref.parquet"), "rows": 17_520}


def test_small_samples_get_exact_p_values(elec2):
    reference, current = elec2.iloc[17_520:18_320], elec2.iloc[40_000:40_700]
    result = {c["column"]: c for c in compare(reference, current)["columns"]}
    for name in ("feat_2", "feat_3"):
        scipy_ks = scipy_stats.ks_2samp(reference[name], current[name])
        assert result[name]["test"] == "ks"
        assert result[name]["p_value"] == pytest.approx(scipy_ks.pvalue, abs=1e-9)
    table = pd.crosstab(np.r_[np.zeros(800), np.ones(700)],
                        np.r_[reference["target"], current["target"]])
    chi2, p_value, *_ = scipy_stats.chi2_contingency(table, correction=False)
    assert result["target"]["test"] == "z"
    assert result["target"]["p_value"] == pytest.approx(p_value, abs=1e-9)


def test_no_drift_between_random_halves_of_the_same_period(elec2):
    year = elec2.iloc[17_520:35_040].sample(frac=1.0, random_state=3)
    result = compare(year.iloc[:8_000], year.iloc[8_000:])
    assert result["number_of_drifted_columns"] == 0 and not result["dataset_drift"]


def test_a_rise_in_missing_values_is_drift_even_when_the_rest_looks_the_same():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.normal(size=5_000), "y": rng.normal(size=5_000)})
    current = pd.DataFrame({"x": rng.normal(size=5_000), "y": rng.normal(size=5_000)})
    current.loc[current.sample(frac=0.2, random_state=1).index, "x"] = np.nan
    result = {c["column"]: c for c in compare(reference, current)["columns"]}
    assert result["x"]["drifted"] and result["x"]["statistic"] < result["x"]["threshold"]
    assert result["x"]["reason"] == "missing" and result["y"]["reason"] is None
    assert result["x"]["missing"]["current"] == pytest.approx(0.2)
    assert result["x"]["missing"]["drifted"]
    assert not result["y"]["drifted"] and result["y"]["missing"]["p_value"] is None


def test_a_column_that_became_entirely_missing_is_reported():
    reference = pd.DataFrame({"x": np.arange(100.0), "k": ["a", "b"] * 50})
    current = pd.DataFrame({"x": [np.nan] * 80, "k": ["a", "b"] * 40})
    result = {c["column"]: c for c in compare(reference, current)["columns"]}
    assert result["x"]["test"] == "missing" and result["x"]["drifted"]


def test_columns_that_cannot_be_compared_are_skipped_with_a_reason():
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 10, "when": pd.date_range("2026", periods=30),
                              "gone": ["a"] * 30})
    current = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 10, "when": pd.date_range("2027", periods=30)})
    result = compare(reference, current)
    assert [c["column"] for c in result["columns"]] == ["x"]
    reasons = {s["column"]: s["reason"] for s in result["skipped"]}
    assert "not in" in reasons["gone"] and "timestamp" in reasons["when"]


def test_integer_codes_can_be_declared_categorical_and_tests_overridden():
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"code": rng.integers(0, 30, 3_000)})
    current = pd.DataFrame({"code": rng.integers(0, 30, 3_000)})
    default = compare(reference, current)["columns"][0]
    assert default["test"] == "wasserstein" and default["kind"] == "numeric"
    as_category = compare(reference, current, kinds={"code": "categorical"})["columns"][0]
    assert as_category["test"] == "jensenshannon"
    assert as_category["distribution"]["kind"] == "categorical"
    psi = compare(reference, current, tests={"code": "psi"}, thresholds={"code": 0.5})
    assert psi["columns"][0]["test"] == "psi" and psi["columns"][0]["threshold"] == 0.5


def test_bonferroni_divides_p_value_thresholds_only():
    rng = np.random.default_rng(4)
    frame = lambda: pd.DataFrame({f"x{i}": rng.normal(size=300) for i in range(4)})  # noqa: E731
    result = compare(frame(), frame(), correction="bonferroni")
    assert {c["threshold"] for c in result["columns"]} == {0.05 / 4}


def test_distributions_share_bins_and_the_result_is_plain_json(elec2):
    result = compare(elec2.iloc[:17_520], elec2.iloc[30_000:40_000])
    feat_2 = result["columns"][1]["distribution"]
    assert feat_2["kind"] == "numeric"
    assert len(feat_2["edges"]) == len(feat_2["reference"]) + 1 == len(feat_2["current"]) + 1
    assert sum(feat_2["reference"]) == 17_520 and sum(feat_2["current"]) == 10_000
    target = result["columns"][-1]["distribution"]
    assert target["labels"] == ["0", "1"]
    json.loads(json.dumps(result, allow_nan=False))


def test_many_categories_are_cut_to_the_most_frequent_in_the_plot():
    reference = pd.DataFrame({"id": [f"u{i}" for i in range(500)]})
    current = pd.DataFrame({"id": [f"u{i}" for i in range(250, 750)]})
    column = compare(reference, current)["columns"][0]
    assert len(column["distribution"]["labels"]) == 51
    assert column["distribution"]["labels"][-1] == "(other)"
    assert sum(column["distribution"]["current"]) == 500
    assert math.isfinite(column["statistic"])


def test_bad_requests_are_clear_errors(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0], "k": ["a", "b"]})
    with pytest.raises(ValidationError, match="unknown drift test 'kss'"):
        compare(frame, frame, tests={"x": "kss"})
    with pytest.raises(ValidationError, match="needs numbers"):
        compare(frame, frame, tests={"k": "ks"})
    # z compares one value's share: a vanished "b" and a new "z" would go unseen
    three = pd.DataFrame({"k": ["a"] * 100 + ["z"] * 100})
    with pytest.raises(ValidationError, match="z test compares two values.*has 3"):
        compare(pd.DataFrame({"k": ["a"] * 100 + ["b"] * 100}), three, tests={"k": "z"})
    with pytest.raises(ValidationError, match="no column 'nope'"):
        compare(frame, frame, columns=["nope"])
    with pytest.raises(ValidationError, match="drift_share"):
        compare(frame, frame, drift_share=0)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataReadError, match="broken.parquet"):
        compare(broken, frame)


def test_a_column_whose_values_changed_type_is_drift_without_comparing_values(tmp_path):
    (tmp_path / "ref.csv").write_text("c,x\n" + "".join(f"{i},{i}\n" for i in range(50)))
    (tmp_path / "cur.csv").write_text("c,x\n" + "".join(f"v{i},{i}\n" for i in range(50)))
    for first, second in (("ref.csv", "cur.csv"), ("cur.csv", "ref.csv")):
        result = {c["column"]: c for c in compare(tmp_path / first, tmp_path / second)["columns"]}
        assert result["c"]["test"] == "type" and result["c"]["drifted"]
        assert result["c"]["reason"].startswith("type changed")
        assert not result["x"]["drifted"]
    # told that the column holds categories, both sides are compared as text
    forced = compare(tmp_path / "ref.csv", tmp_path / "cur.csv", kinds={"c": "categorical"})
    assert forced["columns"][0]["test"] == "z" or forced["columns"][0]["test"] == "chisquare"
    with pytest.raises(ValidationError, match="cannot be read as numeric"):
        compare(tmp_path / "cur.csv", tmp_path / "ref.csv", kinds={"c": "numeric"})


def test_all_missing_columns_on_either_side(tmp_path):
    filled = pa.table({"z": pa.array([1.0, 2.0, 3.0] * 20), "k": pa.array(["a"] * 60)})
    empty = pa.table({"z": pa.nulls(60), "k": pa.nulls(60)})
    for reference, current in ((empty, filled), (filled, empty)):
        result = {c["column"]: c for c in compare(reference, current)["columns"]}
        assert result["z"]["test"] == result["k"]["test"] == "missing"
        assert result["z"]["drifted"] and result["z"]["statistic"] == 1.0
    with pytest.raises(ValidationError, match="no values in either table"):
        compare(empty, empty)


def test_overrides_must_name_real_columns():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValidationError, match="'nope'"):
        compare(frame, frame, thresholds={"nope": 0.2})
