"""Candidate pipelines on real data: the families beat the baseline where they should,
missing values and unseen categories are handled inside the pipeline, training is
reproducible to the byte, and the budgeted search stays inside its documented space."""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tidal.train.candidates import (
    FAMILIES,
    SEARCH_SPACES,
    available_families,
    make_candidate,
    make_candidates,
    search,
)
from tidal.train.evaluate import metrics

HAS_XGBOOST = importlib.util.find_spec("xgboost") is not None
HAS_LIGHTGBM = importlib.util.find_spec("lightgbm") is not None
#: the tree families installed here (the boost extra adds XGBoost and LightGBM; make test
#: installs it)
TREES = ("random_forest", "hist_gradient_boosting", *(["xgboost"] if HAS_XGBOOST else []),
         *(["lightgbm"] if HAS_LIGHTGBM else []))


def test_import_tidal_stays_light() -> None:
    code = (
        "import sys, tidal, tidal.train, tidal.train.gate; "
        "assert 'sklearn' not in sys.modules, 'sklearn imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_families_and_optional_ones() -> None:
    families = available_families()
    assert families[:4] == ["baseline", "linear", "random_forest", "hist_gradient_boosting"]
    assert ("xgboost" in families) == HAS_XGBOOST
    assert ("lightgbm" in families) == HAS_LIGHTGBM
    built = make_candidates("classification", ["a"], ["b"])
    assert list(built) == families
    assert all(isinstance(p, Pipeline) for p in built.values())
    assert list(make_candidates("regression", ["a"], [], include=["linear", "baseline"])) == [
        "baseline", "linear",
    ]
    with pytest.raises(ValueError, match="unknown model families"):
        make_candidates("regression", ["a"], [], include=["svm"])
    with pytest.raises(ValueError, match="task must be"):
        make_candidates("ranking", ["a"], [])  # type: ignore[arg-type]
    if not HAS_XGBOOST:
        with pytest.raises(ValueError, match="not installed"):
            make_candidates("classification", ["a"], [], include=["xgboost"])


@pytest.fixture(scope="module")
def elec2_results(elec2):
    X_train, y_train = elec2.train[elec2.numeric], elec2.train[elec2.target]
    X_test, y_test = elec2.test[elec2.numeric], elec2.test[elec2.target]
    out = {}
    for name, pipeline in make_candidates("classification", elec2.numeric, [], seed=0).items():
        pipeline.fit(X_train, y_train)
        out[name] = metrics(
            "classification", y_test, pipeline.predict(X_test), pipeline.predict_proba(X_test),
            labels=list(pipeline.classes_),
        )
    return out


def test_elec2_trees_beat_the_baseline(elec2_results) -> None:
    base = elec2_results["baseline"]
    # The majority class of the next 5,000 rows is DOWN: the baseline gets ~0.60.
    assert 0.55 < base["accuracy"] < 0.65
    assert base["balanced_accuracy"] == pytest.approx(0.5)
    assert base["roc_auc"] == pytest.approx(0.5)
    for name in TREES:
        assert elec2_results[name]["accuracy"] > base["accuracy"] + 0.1, name
        assert elec2_results[name]["roc_auc"] > 0.75, name
    # The linear model does not: feat_4..feat_6 are constant for the first 17,424 training
    # rows and only vary afterwards (the README's covariate shift), so it extrapolates badly
    # on the test rows. This is what the gate's "beats the baseline" check is for.
    assert elec2_results["linear"]["accuracy"] < base["accuracy"]


def test_bike_pipelines_handle_real_missing_values(bike) -> None:
    columns = bike.numeric + bike.categorical
    assert bike.train["weathersit"].isna().any() and bike.train["weekday"].isna().any()
    assert bike.test["weathersit"].isna().any()
    test = bike.test.copy()
    # A category never seen in training must not break prediction.
    test.loc[test.index[:5], "weathersit"] = "Snowstorm"
    results = {}
    for name, pipeline in make_candidates(
        "regression", bike.numeric, bike.categorical, seed=0,
    ).items():
        pipeline.fit(bike.train[columns], bike.train[bike.target])
        predictions = pipeline.predict(test[columns])
        assert np.isfinite(predictions).all(), name
        results[name] = metrics("regression", test[bike.target], predictions)
    base = results["baseline"]
    for name in ("linear", *TREES):
        assert results[name]["mae"] < base["mae"], name
        assert results[name]["r2"] > 0.5, name
    # README: MAE about 33 on the within-2011 hold-out.
    assert results["hist_gradient_boosting"]["mae"] < 45


def _fingerprint(pipeline: Pipeline) -> str:
    return hashlib.sha256(pickle.dumps(pipeline)).hexdigest()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_training_twice_gives_byte_identical_models(task, census, bike) -> None:
    data = census if task == "classification" else bike
    train = data.train.iloc[:1_500]
    X, y = train[data.numeric + data.categorical], train[data.target]
    for name in make_candidates(task, data.numeric, data.categorical, seed=7):
        first = make_candidate(name, task, data.numeric, data.categorical, seed=7).fit(X, y)
        second = make_candidate(name, task, data.numeric, data.categorical, seed=7).fit(X, y)
        assert _fingerprint(first) == _fingerprint(second), name
    # A different seed changes the seeded families.
    forest = make_candidate("random_forest", task, data.numeric, data.categorical, seed=7)
    other = make_candidate("random_forest", task, data.numeric, data.categorical, seed=8)
    assert _fingerprint(forest.fit(X, y)) != _fingerprint(other.fit(X, y))


def test_hgb_with_early_stopping_is_reproducible(elec2) -> None:
    # Above 10,000 rows HGB holds out a random validation split for early stopping.
    X, y = elec2.train[elec2.numeric], elec2.train[elec2.target]
    first = make_candidate("hist_gradient_boosting", "classification", elec2.numeric, [])
    second = make_candidate("hist_gradient_boosting", "classification", elec2.numeric, [])
    assert _fingerprint(first.fit(X, y)) == _fingerprint(second.fit(X, y))
    assert first.named_steps["model"].do_early_stopping_  # the held-out split was used


def test_search_within_budget_and_space(census) -> None:
    train = census.train.iloc[:2_000]
    X, y = train[census.numeric + census.categorical], train[census.target]
    pipeline = make_candidate("linear", "classification", census.numeric, census.categorical)
    result = search("linear", clone(pipeline), X, y, budget=3, seed=0, scoring="accuracy")
    assert result.n_iter == 3 and len(result.scores) == 3
    assert set(result.params) == set(SEARCH_SPACES["linear"])
    assert 1e-3 <= result.params["model__C"] <= 1e2
    assert result.score == max(result.scores)
    assert result.pipeline.named_steps["model"].C == result.params["model__C"]
    again = search("linear", clone(pipeline), X, y, budget=3, seed=0, scoring="accuracy")
    assert again.params == result.params
    assert _fingerprint(again.pipeline) == _fingerprint(result.pipeline)
    # Ridge searches alpha; the baseline has no space and is fitted as is.
    ridge = make_candidate("linear", "regression", ["AGEP"], [])
    assert set(search("linear", ridge, X, y, budget=2).params) == {"model__alpha"}
    baseline = make_candidate("baseline", "classification", census.numeric, [])
    plain = search("baseline", baseline, X, y, budget=5)
    assert plain.params == {} and plain.n_iter == 0 and plain.score is None
    assert set(SEARCH_SPACES) >= set(FAMILIES)


@pytest.mark.skipif(not (HAS_XGBOOST and HAS_LIGHTGBM), reason="pip install 'tidal-ml[boost]'")
@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_boosting_families_take_text_labels_and_search_their_space(family, elec2) -> None:
    # XGBoost's own classifier refuses labels other than 0..k-1; the candidate must not
    train = elec2.train.iloc[:4_000]
    X, y = train[elec2.numeric], train[elec2.target].map({0: "down", 1: "up"})
    fitted = make_candidate(family, "classification", elec2.numeric, []).fit(X, y)
    assert list(fitted.classes_) == ["down", "up"]
    assert set(fitted.predict(elec2.test[elec2.numeric])) <= {"down", "up"}
    proba = fitted.predict_proba(elec2.test[elec2.numeric])
    assert proba.shape == (len(elec2.test), 2) and np.allclose(proba.sum(axis=1), 1)
    searched = search(family, make_candidate(family, "classification", elec2.numeric, []),
                      X, y, budget=2, scoring="accuracy")
    assert searched.n_iter == 2 and len(searched.scores) == 2
    assert all(key.startswith("model__") for key in searched.params)
