"""Real data for the training tests (../shared/data), loaded once per session and split as
its README suggests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"

ELEC2_FEATURES = [f"feat_{i}" for i in range(1, 7)]
BIKE_NUMERIC = ["temp", "atemp", "hum", "windspeed"]
BIKE_CATEGORICAL = ["season", "hr", "holiday", "weekday", "workingday", "weathersit"]
CENSUS_CATEGORICAL = [
    "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY",
    "DEAR", "DEYE", "DREM", "SEX", "RAC1P",
]


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    target: str
    numeric: list[str]
    categorical: list[str]


@pytest.fixture(scope="session")
def elec2() -> Split:
    """Elec2 by time: the first 365 days (17,520 rows) train, the next 5,000 rows test."""
    frame = pd.read_csv(DATA_DIR / "elec2.csv.gz")
    return Split(
        frame.iloc[:17_520], frame.iloc[17_520:22_520], "target", ELEC2_FEATURES, [],
    )


@pytest.fixture(scope="session")
def bike() -> Split:
    """Bike sharing, the README's no-drift variant: train Jan–Sep 2011, test Oct–Dec 2011.

    ``casual`` and ``registered`` add up to ``cnt`` (leakage): they are dropped.
    """
    frame = pd.read_csv(DATA_DIR / "bike_sharing_hourly.csv.gz")
    frame = frame.drop(columns=["casual", "registered"])
    day = pd.to_datetime(frame["dteday"])
    train = frame[day < "2011-10-01"].reset_index(drop=True)
    test = frame[(day >= "2011-10-01") & (day < "2012-01-01")].reset_index(drop=True)
    return Split(train, test, "cnt", BIKE_NUMERIC, BIKE_CATEGORICAL)


@pytest.fixture(scope="session")
def census() -> Split:
    """Census 2015, subsampled for speed: 15,000 rows train, the next 10,000 test."""
    frame = pd.read_parquet(DATA_DIR / "us_census_ma_employment_2015_reference.parquet")
    frame = frame.drop(columns=["prediction", "predicted_probability"])
    return Split(
        frame.iloc[:15_000], frame.iloc[15_000:25_000].reset_index(drop=True), "employed",
        ["AGEP"], CENSUS_CATEGORICAL,
    )


@dataclass
class Fitted:
    """Predictions of fitted census candidates on the test rows."""

    pred: dict[str, object]
    proba: dict[str, object]
    classes: list[int]


@pytest.fixture(scope="session")
def census_fitted(census: Split) -> Fitted:
    """Baseline, linear model and HGB trained on the census split (shared by the
    evaluation and gate tests)."""
    from tidal.train.candidates import make_candidates

    columns = census.numeric + census.categorical
    candidates = make_candidates(
        "classification", census.numeric, census.categorical, seed=0,
        include=["baseline", "linear", "hist_gradient_boosting"],
    )
    pred, proba = {}, {}
    for name, pipeline in candidates.items():
        pipeline.fit(census.train[columns], census.train[census.target])
        pred[name] = pipeline.predict(census.test[columns])
        proba[name] = pipeline.predict_proba(census.test[columns])
    return Fitted(pred, proba, [int(c) for c in candidates["baseline"].classes_])


@pytest.fixture(scope="session", autouse=True)
def _one_native_thread():
    """One OpenMP/BLAS thread: HGB's OpenMP threads spin-wait and slow down badly when the
    test machine is busy, and results do not depend on the thread count."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
