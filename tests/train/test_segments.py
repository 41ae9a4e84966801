"""Per-segment models: training rules, routing and fallback, pickling, census."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from tidal.core.errors import ValidationError
from tidal.train.segments import SegmentedModel, fit_segments

FEATURES = ["x0", "x1"]


def _segmented_frame(seed: int = 0) -> pd.DataFrame:
    """Two industries × regions; each (industry, region) has its own coefficients.

    ("a", "north") and ("a", "south") have 300 rows each, ("b", "east") 300, and
    ("b", "west") only 40: below min_rows=100, so it must fall back to industry "b".
    """
    rng = np.random.default_rng(seed)
    parts = []
    for (industry, region, rows), coef in zip(
            [("a", "north", 300), ("a", "south", 300), ("b", "east", 300), ("b", "west", 40)],
            [(3.0, -1.0), (-2.0, 4.0), (1.0, 1.0), (1.5, 0.5)], strict=True):
        x = rng.normal(size=(rows, 2))
        y = x @ np.array(coef) + (10 if industry == "b" else -10) + rng.normal(0, 0.1, rows)
        parts.append(pd.DataFrame({"industry": industry, "region": region,
                                   "x0": x[:, 0], "x1": x[:, 1], "y": y}))
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _segmented_frame()


@pytest.fixture
def fitted(frame: pd.DataFrame, sqlite_project) -> SegmentedModel:
    return fit_segments(frame, target="y", features=FEATURES,
                        segment_columns=["industry", "region"], make_model=LinearRegression,
                        min_rows=100, project=sqlite_project, executor="inline")


def test_trains_segments_with_enough_rows_at_each_level(fitted: SegmentedModel) -> None:
    assert set(fitted.models_[0]) == {("a",), ("b",)}
    assert set(fitted.models_[1]) == {("a", "north"), ("a", "south"), ("b", "east")}
    assert fitted.untrained_[1] == {("b", "west"): "40 rows < min_rows 100"}
    assert fitted.global_model_ is not None
    assert fitted.training_["steps"] >= 2  # the global model and at least one batch


def test_routing_prefers_the_most_specific_model(fitted: SegmentedModel,
                                                 frame: pd.DataFrame) -> None:
    rows = pd.DataFrame({"industry": ["a", "b", "b", "c", None],
                         "region": ["north", "west", "mars", "north", "north"],
                         "x0": 0.0, "x1": 0.0})
    assert fitted.route(rows) == [("a", "north"), ("b",), ("b",), (), ()]


def test_segment_model_beats_global_on_its_rows(fitted: SegmentedModel,
                                                frame: pd.DataFrame) -> None:
    for key in [("a", "north"), ("a", "south"), ("b", "east")]:
        rows = frame[(frame["industry"] == key[0]) & (frame["region"] == key[1])]
        segment_mse = np.mean((fitted.predict(rows) - rows["y"]) ** 2)
        global_mse = np.mean((fitted.global_model_.predict(rows[FEATURES]) - rows["y"]) ** 2)
        assert segment_mse < 0.05 < global_mse


def test_small_segment_uses_its_parent_and_unseen_uses_global(fitted: SegmentedModel,
                                                              frame: pd.DataFrame) -> None:
    west = frame[frame["region"] == "west"]
    parent = fitted.models_[0][("b",)]
    np.testing.assert_allclose(fitted.predict(west), parent.predict(west[FEATURES]))
    unseen = west.assign(industry="zzz")
    np.testing.assert_allclose(fitted.predict(unseen),
                               fitted.global_model_.predict(west[FEATURES]))


def test_pickle_round_trip(fitted: SegmentedModel, frame: pd.DataFrame) -> None:
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict(frame), fitted.predict(frame))
    assert loaded.route(frame.iloc[:5]) == fitted.route(frame.iloc[:5])


def test_process_executor_matches_in_process_fit(frame: pd.DataFrame, sqlite_project,
                                                 fitted: SegmentedModel) -> None:
    parallel = fit_segments(frame, target="y", features=FEATURES,
                            segment_columns=["industry", "region"],
                            make_model=LinearRegression, min_rows=100,
                            project=sqlite_project, executor="process", max_workers=2,
                            segments_per_batch=1)
    local = SegmentedModel(["industry", "region"], FEATURES, min_rows=100,
                           make_model=LinearRegression).fit(frame, frame["y"])
    np.testing.assert_allclose(parallel.predict(frame), local.predict(frame))
    np.testing.assert_allclose(parallel.predict(frame), fitted.predict(frame))
    assert parallel.training_["steps"] == 1 + 2 + 3  # global, two parents, three segments


def test_rerun_is_served_from_the_cache(frame: pd.DataFrame, sqlite_project) -> None:
    kwargs = dict(target="y", features=FEATURES, segment_columns=["industry"],
                  make_model=LinearRegression, min_rows=100, project=sqlite_project,
                  executor="inline")
    first = fit_segments(frame, **kwargs)
    again = fit_segments(frame, **kwargs)
    assert again.training_["cached_steps"] == again.training_["steps"]
    np.testing.assert_allclose(first.predict(frame), again.predict(frame))


def test_bad_input_is_refused(frame: pd.DataFrame, sqlite_project) -> None:
    with pytest.raises(ValidationError, match="lack"):
        fit_segments(frame, target="y", features=["nope"], segment_columns=["industry"],
                     make_model=LinearRegression, project=sqlite_project, executor="inline")
    with pytest.raises(ValidationError, match="not fitted"):
        SegmentedModel(["industry"], FEATURES).predict(frame)


def test_census_by_race_with_a_classifier(census, sqlite_project) -> None:
    """RAC1P: the common races get their own model, the rare ones fall back to global."""
    features = ["AGEP", "SCHL", "MAR", "DIS", "SEX"]
    numeric = {column: lambda f, c=column: f[c].astype(float) for column in features}
    train, test = census.train.assign(**numeric), census.test.assign(**numeric)
    counts = train["RAC1P"].value_counts()  # a categorical column, unobserved races too
    model = fit_segments(train, target=census.target, features=features,
                         segment_columns=["RAC1P"],
                         make_model=lambda: LogisticRegression(max_iter=1000),
                         min_rows=200, project=sqlite_project, executor="inline")
    trained = {key[0] for key in model.models_[0]}
    assert trained == set(counts[counts >= 200].index)
    rare = set(counts[counts < 200].index)
    assert rare, "the sample should hold rare races"
    served = model.route(test)
    for race, key in zip(test["RAC1P"], served, strict=True):
        assert key == ((race,) if race in trained else ())
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    accuracy = np.mean(model.predict(test) == test[census.target].to_numpy())
    assert accuracy > 0.7
    assert pickle.loads(pickle.dumps(model)).predict(test.iloc[:100]).shape == (100,)
