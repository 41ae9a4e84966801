"""The model outputs a monitor watches, derived the same way from a model's answers on the
reference data and from the prediction log.

A classifier answers a label and one probability per class; a regressor a prediction.
Drift tests want one column per quantity, so the monitored outputs are:

- ``out.label``: the predicted class (classification);
- ``out.score``: the probability of the second class (binary classification only: the
  class a threshold is usually put on, ``classes[1]``);
- ``out.confidence``: the largest class probability (classification; what confidence-based
  performance estimation and review routing look at);
- ``out.prediction``: the predicted value (regression).

Non-finite probabilities stay as they are (NaN, inf): the "output health" check counts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LABEL = "out.label"
SCORE = "out.score"
CONFIDENCE = "out.confidence"
PREDICTION = "out.prediction"


def monitored_outputs(label: Any = None, probabilities: np.ndarray | None = None,
                      prediction: Any = None) -> dict[str, Any]:
    """The monitored output columns from a model's raw outputs (any may be None)."""
    columns: dict[str, Any] = {}
    if label is not None:
        columns[LABEL] = label
    if probabilities is not None and probabilities.ndim == 2 and probabilities.shape[1]:
        with np.errstate(invalid="ignore"):
            columns[CONFIDENCE] = probabilities.max(axis=1)
        if probabilities.shape[1] == 2:
            columns[SCORE] = probabilities[:, 1]
    if prediction is not None:
        columns[PREDICTION] = np.asarray(prediction, dtype=np.float64)
    return columns


def outputs_of_model(outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The monitored outputs from :meth:`tidal.runtime.loaded.LoadedModel.predict`."""
    probabilities = outputs.get("probabilities")
    return monitored_outputs(
        outputs.get("label"),
        None if probabilities is None else np.asarray(probabilities, dtype=np.float64),
        outputs.get("prediction"))


def outputs_of_table(table: pa.Table) -> dict[str, Any]:
    """The monitored outputs from compacted prediction rows (``out.*`` columns)."""
    names = set(table.column_names)
    label = table.column("out.label") if "out.label" in names else None
    prediction = None
    if "out.prediction" in names:
        prediction = table.column("out.prediction").cast(pa.float64()).to_numpy(
            zero_copy_only=False)
    probabilities = None
    if "out.probabilities" in names:
        probabilities = probability_matrix(table.column("out.probabilities"))
    return monitored_outputs(label, probabilities, prediction)


def probability_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """A ``list<double>`` column as an (n, classes) matrix; a null row is a row of NaN.
    None when the rows do not all have one length (nothing sensible to derive)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return None
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    present = lengths[~np.isnan(lengths.astype(np.float64))] if lengths.dtype.kind == "f" \
        else lengths
    widths = np.unique(present)
    if len(widths) != 1:
        return None
    width = int(widths[0])
    if column.null_count:
        column = pc.fill_null(column, pa.scalar([float("nan")] * width, column.type))
    flat = pc.list_flatten(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), width)


def main_output(names: Sequence[str]) -> str | None:
    """The output whose drift is "prediction drift": the score of a binary classifier, the
    label of another classifier, the value of a regressor."""
    for name in (SCORE, LABEL, PREDICTION):
        if name in names:
            return name
    return None
