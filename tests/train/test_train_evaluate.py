"""Metrics and the error-analysis slice table on real data: census (categorical slices SEX
and RAC1P, binned age) and bike sharing (regression, a slice with real missing values)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tidal.train.candidates import make_candidates
from tidal.train.evaluate import ALL, MISSING, OUT_OF_RANGE, Slice, metrics, slice_table

CENSUS_SLICES = {
    "SEX": "SEX",
    "RAC1P": Slice("RAC1P"),
    "age": Slice("AGEP", bins=(0, 18, 30, 50, 65, 100)),
    "age_quartile": {"column": "AGEP", "quantiles": 4},
}


def _by_slice(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["slice"], []).append(row)
    return out


def test_classification_metrics_match_sklearn(census, census_fitted) -> None:
    y = census.test[census.target].to_numpy()
    pred, proba = census_fitted.pred["hist_gradient_boosting"], census_fitted.proba[
        "hist_gradient_boosting"]
    got = metrics("classification", y, pred, proba, labels=census_fitted.classes)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["accuracy"] > 0.8  # the README: a 2015 model scores ~0.82-0.83
    # Without probabilities there is no ROC AUC or log loss; one class present: AUC is NaN.
    assert set(metrics("classification", y, pred)) == {"accuracy", "balanced_accuracy", "f1"}
    one_class = metrics("classification", y[y == 1], pred[y == 1], proba[y == 1])
    assert math.isnan(one_class["roc_auc"])
    # Several classes: macro F1.
    race = census.test["RAC1P"].astype(str).to_numpy()
    shifted = np.roll(race, 1)
    assert metrics("classification", race, shifted)["f1"] == pytest.approx(
        skm.f1_score(race, shifted, average="macro"))


def test_regression_metrics() -> None:
    y, p = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0])
    got = metrics("regression", y, p)
    assert got["mae"] == pytest.approx(1.0)
    assert got["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert got["r2"] == pytest.approx(skm.r2_score(y, p))


def test_census_slice_table_sums_and_gaps(census, census_fitted) -> None:
    y = census.test[census.target].to_numpy()
    pred = census_fitted.pred["hist_gradient_boosting"]
    base = census_fitted.pred["baseline"]
    rows = slice_table("classification", census.test, y, pred, CENSUS_SLICES, base, "accuracy")
    groups = _by_slice(rows)
    assert list(groups) == [ALL, "SEX", "RAC1P", "age", "age_quartile"]
    overall = groups[ALL][0]
    assert overall["rows"] == len(y) and overall["share_of_data"] == 1.0
    assert overall["score"] == pytest.approx(skm.accuracy_score(y, pred))
    assert overall["baseline"] == pytest.approx(skm.accuracy_score(y, base))
    assert overall["errors"] == (y != pred).sum()
    for name, group in groups.items():
        assert sum(r["rows"] for r in group) == len(y), name
        assert sum(r["share_of_data"] for r in group) == pytest.approx(1.0), name
        assert sum(r["share_of_errors"] for r in group) == pytest.approx(1.0), name
        for r in group:
            assert r["gap_to_baseline"] == pytest.approx(r["score"] - r["baseline"])
    # Each SEX and RAC1P value, computed independently with pandas.
    frame = pd.DataFrame({
        "SEX": census.test["SEX"].astype(str), "RAC1P": census.test["RAC1P"].astype(str),
        "hit": y == pred, "base_hit": y == base, "miss": y != pred,
    })
    for column in ("SEX", "RAC1P"):
        expected = frame.groupby(column, observed=True).agg(
            rows=("hit", "size"), score=("hit", "mean"), baseline=("base_hit", "mean"),
            errors=("miss", "sum"))
        got = {r["value"]: r for r in groups[column]}
        assert set(got) == set(expected.index)
        for value, e in expected.iterrows():
            assert got[value]["rows"] == e["rows"]
            assert got[value]["score"] == pytest.approx(e["score"])
            assert got[value]["baseline"] == pytest.approx(e["baseline"])
            assert got[value]["gap_to_baseline"] == pytest.approx(e["score"] - e["baseline"])
            assert got[value]["share_of_errors"] == pytest.approx(e["errors"] / frame.miss.sum())
    assert [r["value"] for r in groups["SEX"]] == ["1", "2"]
    assert [r["value"] for r in groups["age"]] == [
        "[0, 18)", "[18, 30)", "[30, 50)", "[50, 65)", "[65, 100]"]
    ages = census.test["AGEP"]
    assert groups["age"][1]["rows"] == ((ages >= 18) & (ages < 30)).sum()
    assert len(groups["age_quartile"]) == 4
    assert all(0.2 < r["share_of_data"] < 0.3 for r in groups["age_quartile"])
    # Children are almost never employed: the baseline is as good as the model there.
    assert abs(groups["age"][0]["gap_to_baseline"]) < 0.02


def test_slice_table_with_probability_metric(census, census_fitted) -> None:
    y = census.test[census.target].to_numpy()
    rows = slice_table(
        "classification", census.test, y, census_fitted.pred["linear"], {"SEX": "SEX"},
        census_fitted.pred["baseline"], "roc_auc", y_proba=census_fitted.proba["linear"],
        baseline_proba=census_fitted.proba["baseline"], labels=census_fitted.classes,
    )
    assert rows[0]["score"] == pytest.approx(
        skm.roc_auc_score(y, census_fitted.proba["linear"][:, 1]))
    assert all(r["baseline"] == pytest.approx(0.5) for r in rows)
    with pytest.raises(ValueError, match="needs y_proba"):
        slice_table("classification", census.test, y, y, {}, y, "roc_auc")


def test_bike_regression_slice_table_with_missing_values(bike) -> None:
    columns = bike.numeric + bike.categorical
    candidates = make_candidates(
        "regression", bike.numeric, bike.categorical, include=["baseline", "linear"])
    y = bike.test[bike.target].to_numpy()
    pred = {
        name: p.fit(bike.train[columns], bike.train[bike.target]).predict(bike.test[columns])
        for name, p in candidates.items()
    }
    slices = {"weather": "weathersit", "temp": Slice("temp", bins=(0, 10, 20))}
    rows = slice_table("regression", bike.test, y, pred["linear"], slices, pred["baseline"], "mae")
    groups = _by_slice(rows)
    weather = {r["value"]: r for r in groups["weather"]}
    assert weather[MISSING]["rows"] == bike.test["weathersit"].isna().sum() > 0
    assert MISSING == [r["value"] for r in groups["weather"]][-1]
    abs_errors = np.abs(y - pred["linear"])
    for group in groups.values():
        assert sum(r["share_of_data"] for r in group) == pytest.approx(1.0)
        assert sum(r["share_of_errors"] for r in group) == pytest.approx(1.0)
    clear = (bike.test["weathersit"] == "Clear").to_numpy()
    assert weather["Clear"]["errors"] == pytest.approx(abs_errors[clear].sum())
    assert weather["Clear"]["share_of_errors"] == pytest.approx(
        abs_errors[clear].sum() / abs_errors.sum())
    assert weather["Clear"]["score"] == pytest.approx(abs_errors[clear].mean())
    # MAE: lower is better, so a model better than the baseline has a negative gap.
    assert groups[ALL][0]["gap_to_baseline"] < 0
    # Temperatures above the last edge (20 °C) fall out of range, not into a bin.
    temp = {r["value"]: r for r in groups["temp"]}
    assert set(temp) == {"[0, 10)", "[10, 20]", OUT_OF_RANGE}
    assert temp[OUT_OF_RANGE]["rows"] == ((bike.test["temp"] < 0) | (bike.test["temp"] > 20)).sum()


def test_slice_validation() -> None:
    with pytest.raises(ValueError, match="bins or quantiles"):
        Slice("a", bins=(0, 1), quantiles=3)
    with pytest.raises(ValueError, match="increasing"):
        Slice("a", bins=(1, 0))
    frame = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(ValueError, match="not in the evaluated data"):
        slice_table("regression", frame, [1, 2], [1, 2], {"b": "b"}, [1, 1], "mae")
    with pytest.raises(ValueError, match="rows differ"):
        slice_table("regression", frame, [1, 2], [1], {}, [1, 1], "mae")
    with pytest.raises(ValueError, match="unknown metric"):
        slice_table("regression", frame, [1, 2], [1, 2], {}, [1, 1], "mape")
