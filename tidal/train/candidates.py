"""Candidate models: one scikit-learn ``Pipeline`` per model family, preprocessing included.

Why one pipeline per candidate: the registered artifact must take raw rows (with their
missing values and unseen categories) and return predictions, so imputation, encoding and
scaling live inside the model, never in a notebook cell that serving would have to copy.

Families (ML Test Score, "a simpler model is not better"; the issue's candidate list):

- ``baseline``: ``DummyClassifier(most_frequent)`` / ``DummyRegressor(mean)``; the trivial
  model every candidate has to beat.
- ``linear``: ``LogisticRegression`` / ``Ridge`` on median-imputed, standardised numbers and
  one-hot categories (unknown categories become all-zero rows).
- ``random_forest``: 100 trees, ``n_jobs=1`` (parallelism belongs to the executor, and one
  thread keeps results reproducible), seeded.
- ``hist_gradient_boosting``: scikit-learn's histogram GBM; missing numbers are handled
  natively, categories are ordinal-encoded and declared categorical.
- ``xgboost`` / ``lightgbm``: only when the package is importable (``tidal-ml[boost]``).
  XGBoost's classifier takes labels coded ``0..k-1`` only, so it is wrapped in
  :class:`EncodedLabels`, which encodes any labels (text, booleans) around it.

Tree models get ordinal-encoded categories (``unknown_value=-1``: an unseen category is
treated like a missing one). Every random state is set from ``seed``, so fitting twice on the
same data gives byte-identical pickles (tested).

:func:`search` runs a budgeted ``RandomizedSearchCV`` over the small space documented in
:data:`SEARCH_SPACES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.stats import loguniform, randint, uniform
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import RandomizedSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, OrdinalEncoder, StandardScaler

from tidal.train.families import (  # noqa: F401 - re-exported
    FAMILIES,
    OPTIONAL_FAMILIES,
    available_families,
)

Task = Literal["classification", "regression"]

#: HistGradientBoosting accepts at most 255 categories per feature (one bin is for missing);
#: rarer categories beyond that are grouped by the ordinal encoder.
_HGB_MAX_CATEGORIES = 255

#: Hyperparameter spaces for :func:`search`, per family, on the ``model`` step. Small on
#: purpose: a budget of 5–20 draws should cover them reasonably. Scipy distributions are
#: sampled with the search's seed, so a search is reproducible.
SEARCH_SPACES: dict[str, dict[str, Any]] = {
    "baseline": {},
    # Regularisation strength is the one knob that matters for a linear model.
    "linear": {"model__C": loguniform(1e-3, 1e2)},  # classification; Ridge uses alpha below
    "linear_regression": {"model__alpha": loguniform(1e-3, 1e3)},
    "random_forest": {
        "model__max_depth": [None, 8, 16, 32],
        "model__min_samples_leaf": randint(1, 20),
        "model__max_features": ["sqrt", 0.5, 1.0],
    },
    "hist_gradient_boosting": {
        "model__learning_rate": loguniform(0.02, 0.3),
        "model__max_leaf_nodes": randint(15, 128),
        "model__min_samples_leaf": randint(5, 100),
        "model__l2_regularization": loguniform(1e-6, 1.0),
    },
    "xgboost": {
        "model__learning_rate": loguniform(0.02, 0.3),
        "model__max_depth": randint(3, 10),
        "model__subsample": uniform(0.6, 0.4),
        "model__colsample_bytree": uniform(0.6, 0.4),
    },
    "lightgbm": {
        "model__learning_rate": loguniform(0.02, 0.3),
        "model__num_leaves": randint(15, 128),
        "model__min_child_samples": randint(5, 100),
        "model__subsample": uniform(0.6, 0.4),
    },
}


def _check_task(task: str) -> None:
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")


def _linear_preprocessing(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    numeric_steps = Pipeline([
        ("impute", SimpleImputer(strategy="median")),
        ("scale", StandardScaler()),
    ])
    categorical_steps = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("encode", OneHotEncoder(handle_unknown="ignore")),
    ])
    return _columns(numeric, categorical, numeric_steps, categorical_steps)


def _tree_preprocessing(
    numeric: list[str], categorical: list[str], *, impute_numeric: bool,
    max_categories: int | None = None,
) -> ColumnTransformer:
    numeric_steps: Any = (
        SimpleImputer(strategy="median") if impute_numeric else "passthrough"
    )
    categorical_steps = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("encode", OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1,
            max_categories=max_categories,
        )),
    ])
    return _columns(numeric, categorical, numeric_steps, categorical_steps)


def _columns(
    numeric: list[str], categorical: list[str], numeric_steps: Any, categorical_steps: Any,
) -> ColumnTransformer:
    # Numbers first, then categories: tree models rely on this order to know which output
    # columns are categorical.
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", numeric_steps, list(numeric)))
    if categorical:
        transformers.append(("categorical", categorical_steps, list(categorical)))
    if not transformers:
        raise ValueError("a candidate needs at least one numeric or categorical feature")
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def _categorical_mask(numeric: list[str], categorical: list[str]) -> list[bool] | None:
    if not categorical:
        return None
    return [False] * len(numeric) + [True] * len(categorical)


def make_candidate(
    name: str, task: Task, numeric: list[str], categorical: list[str], *, seed: int = 0,
) -> Pipeline:
    """One unfitted candidate pipeline ``[("preprocess", ...), ("model", ...)]``."""
    _check_task(task)
    numeric, categorical = list(numeric), list(categorical)
    classification = task == "classification"
    if name == "baseline":
        model: Any = (
            DummyClassifier(strategy="most_frequent") if classification
            else DummyRegressor(strategy="mean")
        )
        pre = _tree_preprocessing(numeric, categorical, impute_numeric=True)
    elif name == "linear":
        model = (
            LogisticRegression(max_iter=1000, random_state=seed) if classification
            else Ridge(alpha=1.0, random_state=seed)
        )
        pre = _linear_preprocessing(numeric, categorical)
    elif name == "random_forest":
        cls = RandomForestClassifier if classification else RandomForestRegressor
        model = cls(n_estimators=100, n_jobs=1, random_state=seed)
        pre = _tree_preprocessing(numeric, categorical, impute_numeric=True)
    elif name == "hist_gradient_boosting":
        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        model = cls(
            random_state=seed, categorical_features=_categorical_mask(numeric, categorical),
        )
        pre = _tree_preprocessing(
            numeric, categorical, impute_numeric=False, max_categories=_HGB_MAX_CATEGORIES,
        )
    elif name == "xgboost":
        import xgboost

        settings = {"n_estimators": 300, "tree_method": "hist", "n_jobs": 1,
                    "random_state": seed}
        model = (EncodedLabels(xgboost.XGBClassifier(**settings)) if classification
                 else xgboost.XGBRegressor(**settings))
        pre = _tree_preprocessing(numeric, categorical, impute_numeric=False)
    elif name == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if classification else lightgbm.LGBMRegressor
        model = cls(
            n_estimators=300, n_jobs=1, random_state=seed, deterministic=True,
            force_row_wise=True, verbose=-1,
        )
        pre = _tree_preprocessing(numeric, categorical, impute_numeric=False)
    else:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return Pipeline([("preprocess", pre), ("model", model)])


def make_candidates(
    task: Task, numeric: list[str], categorical: list[str], *, seed: int = 0,
    include: Iterable[str] | None = None,
) -> dict[str, Pipeline]:
    """The unfitted candidate pipelines, by family name, simplest first.

    ``include`` restricts the families; an optional family that is not installed is skipped
    silently when ``include`` is None and is an error when asked for by name.
    """
    _check_task(task)
    available = available_families()
    if include is None:
        names = available
    else:
        wanted = list(include)
        unknown = [name for name in wanted if name not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown model families {unknown}; known: {', '.join(FAMILIES)}")
        missing = [name for name in wanted if name not in available]
        if missing:
            raise ValueError(
                f"model families {missing} are not installed "
                f"(pip install {' '.join(OPTIONAL_FAMILIES[m] for m in missing)})"
            )
        names = [name for name in FAMILIES if name in wanted]
    return {
        name: make_candidate(name, task, numeric, categorical, seed=seed) for name in names
    }


def search_space(candidate_name: str, pipeline: Pipeline) -> dict[str, Any]:
    """The documented search space of a family (Ridge uses ``alpha``, not ``C``; a
    wrapped model's parameters are one level deeper)."""
    model = pipeline.named_steps["model"]
    if candidate_name == "linear" and isinstance(model, Ridge):
        return dict(SEARCH_SPACES["linear_regression"])
    space = dict(SEARCH_SPACES.get(candidate_name, {}))
    if isinstance(model, EncodedLabels):
        space = {key.replace("model__", "model__estimator__", 1): value
                 for key, value in space.items()}
    return space


class EncodedLabels(ClassifierMixin, BaseEstimator):
    """A classifier that only takes labels ``0..k-1`` (XGBoost's), given any labels.

    ``classes_`` and ``predict`` speak the original labels; ``predict_proba``'s columns
    follow ``classes_``, as scikit-learn's classifiers do.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> EncodedLabels:  # noqa: N803
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.encoder_.transform(y),
                                                    **fit_params)
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.encoder_.inverse_transform(np.asarray(self.estimator_.predict(X)))

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.estimator_.predict_proba(X)


@dataclass
class SearchResult:
    """The refitted best pipeline of a search, its parameters and cross-validated score."""

    name: str
    pipeline: Pipeline
    params: dict[str, Any]
    score: float | None
    n_iter: int
    scores: list[float] = field(default_factory=list)


def search(
    candidate_name: str, pipeline: Pipeline, X: Any, y: Any, *, budget: int, seed: int = 0,
    scoring: str | None = None, cv: Any = 3, space: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Budgeted random search (``n_iter=budget``, 3-fold CV) over the family's space.

    The best parameters are refitted on all of ``X, y``. A family without a space (the
    baseline) or a budget below 1 is simply fitted as it is. Pass a splitter as ``cv``
    (e.g. ``TimeSeriesSplit``) when rows are in time order.
    """
    grid = dict(space) if space is not None else search_space(candidate_name, pipeline)
    if budget < 1 or not grid:
        fitted = pipeline.fit(X, y)
        return SearchResult(candidate_name, fitted, {}, None, 0)
    searcher = RandomizedSearchCV(
        pipeline, grid, n_iter=budget, cv=cv, scoring=scoring, random_state=seed, n_jobs=1,
        refit=True, error_score="raise",
    )
    searcher.fit(X, y)
    means = [float(v) for v in np.asarray(searcher.cv_results_["mean_test_score"])]
    return SearchResult(
        candidate_name, searcher.best_estimator_, dict(searcher.best_params_),
        float(searcher.best_score_), budget, means,
    )
