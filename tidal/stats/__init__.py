"""Statistical tests and distances for drift (imports nothing else of tidal).

``column_drift`` compares one column of a reference sample with the same column of a
current sample, picking the test as Evidently does by default unless told otherwise;
``dataset_drift`` applies it to every column and gives the dataset-level verdict.
"""

from .defaults import choose_test, column_drift, dataset_drift
from .tests import TESTS, DriftResult

__all__ = ["TESTS", "DriftResult", "choose_test", "column_drift", "dataset_drift"]
