"""The candidate model families and which of them can be built here.

Kept apart from :mod:`tidal.train.candidates` (which imports scikit-learn) so that
checking a ``tidal.toml`` and re-running a fully cached pipeline import no ML library.
"""

from __future__ import annotations

import importlib.util

#: Families in order of increasing complexity (the order
#: :func:`tidal.train.candidates.make_candidates` returns).
FAMILIES: tuple[str, ...] = (
    "baseline", "linear", "random_forest", "hist_gradient_boosting", "xgboost", "lightgbm",
)
OPTIONAL_FAMILIES: dict[str, str] = {"xgboost": "xgboost", "lightgbm": "lightgbm"}


def available_families() -> list[str]:
    """The families that can be built here (optional ones only when importable)."""
    return [
        name for name in FAMILIES
        if name not in OPTIONAL_FAMILIES
        or importlib.util.find_spec(OPTIONAL_FAMILIES[name]) is not None
    ]
