"""Export a fitted candidate pipeline to ONNX, and prove the export predicts like the original.

Why the equivalence check exists: an ONNX graph is a *re-implementation* of the model, not a
serialisation of it. skl2onnx rewrites every step (imputer, encoder, scaler, trees, linear
algebra) into ONNX operators that run in another runtime, usually in 32-bit floats, with its
own handling of missing values, unknown categories and tree thresholds. A converter bug, an
unsupported option or plain float32 rounding would make the served model silently disagree
with the model that passed the validation gate. So an export is only kept when onnxruntime,
run on the real test split, gives the same labels and the same probabilities (classification)
or the same values (regression) as the native ``predict`` within ``tolerance`` (1e-5 by
default, the issue's bar); otherwise the model is registered without ONNX and the reason says
why.

Inputs: one named ONNX input per column, shape ``[None, 1]``. Numeric columns are doubles when
the converted graph supports them (it then matches scikit-learn's float64 arithmetic), else
floats; string columns are strings, with a missing value (NaN/None) passed as the empty
string :data:`MISSING_STRING`, which the exported imputers treat as missing. Build the feed
with :func:`onnx_input_feed` (used by the check here; it lives in :mod:`tidal.runtime.onnx`
with the session the model server runs, and is re-exported here).

``skl2onnx`` and ``onnxruntime`` (the ``train`` extra) are imported only inside the functions.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tidal.runtime.onnx import (  # noqa: F401 - re-exported for existing callers
    MISSING_STRING,
    onnx_input_feed,
    onnx_session,
)
from tidal.runtime.onnx import is_string_column as _is_string_column


@dataclass(frozen=True)
class OnnxExport:
    """The result of :func:`export_onnx`.

    ``onnx_bytes`` is None when the model could not be converted or its ONNX outputs differ
    from the native ones; ``reason`` says what happened in either case; ``max_difference`` is
    the largest absolute difference measured on the test rows (None when nothing ran).
    ``numeric_type`` is the ONNX type of the numeric inputs (``"double"`` or ``"float"``).
    """

    onnx_bytes: bytes | None
    reason: str
    max_difference: float | None
    numeric_type: str | None = None

    @property
    def exported(self) -> bool:
        return self.onnx_bytes is not None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _convert_simple_imputer(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx's imputer converter, extended to the two cases the candidates need:

    - string columns whose missing value is NaN (scikit-learn's default on object columns):
      converted as if the missing value were :data:`MISSING_STRING` (the feed's convention);
    - double columns: ``Where(IsNaN(x), statistics, x)`` in float64 (the ``Imputer`` operator
      of onnxruntime has no double kernel, and skl2onnx would round the statistics to float32).
    """
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imputer = operator.raw_operator
    input_type = operator.inputs[0].type
    if isinstance(input_type, StringTensorType) and _is_nan(imputer.missing_values):
        proxy = copy.copy(imputer)
        proxy.missing_values = MISSING_STRING
        operator.raw_operator = proxy
        try:
            convert_sklearn_imputer(scope, operator, container)
        finally:
            operator.raw_operator = imputer
        return
    if isinstance(input_type, DoubleTensorType) and _is_nan(imputer.missing_values):
        statistics = np.asarray(imputer.statistics_, dtype=np.float64)
        if getattr(imputer, "fill_value", None) is not None and imputer.strategy == "constant":
            statistics = np.full_like(statistics, float(imputer.fill_value))
        if np.isnan(statistics).any():
            raise ValueError("a column was entirely missing in training: no median to fill")
        concatenated = concatenate_variables(scope, operator.inputs, container)
        fill = scope.get_unique_variable_name("imputer_statistics")
        container.add_initializer(
            fill, TensorProto.DOUBLE, [1, statistics.size], statistics.tolist(),
        )
        missing = scope.get_unique_variable_name("imputer_isnan")
        container.add_node("IsNaN", [concatenated], [missing])
        container.add_node("Where", [missing, fill, concatenated], [operator.outputs[0].full_name])
        return
    convert_sklearn_imputer(scope, operator, container)


def _final_estimator(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def _describe(model: Any) -> str:
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return " -> ".join(type(step).__name__ for _, step in model.steps)
    return type(model).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    line = text.splitlines()[0]
    if len(line) > 300:
        line = line[:297] + "..."
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause).strip():
        line += f" ({type(cause).__name__}: {str(cause).strip().splitlines()[0][:200]})"
    return f"{type(error).__name__}: {line}"


def _convert(model: Any, frame: Any, task: str, numeric_type: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        StringTensorType,
    )
    from sklearn.impute import SimpleImputer

    numeric_cls = DoubleTensorType if numeric_type == "double" else FloatTensorType
    initial_types = [
        (str(name), StringTensorType([None, 1]) if _is_string_column(frame[name])
         else numeric_cls([None, 1]))
        for name in frame.columns
    ]
    options = None
    if task == "classification":
        options = {id(_final_estimator(model)): {"zipmap": False}}
    onx = convert_sklearn(
        model, initial_types=initial_types, options=options,
        custom_conversion_functions={SimpleImputer: _convert_simple_imputer},
    )
    return onx.SerializeToString()


@dataclass
class _Comparison:
    max_difference: float
    n_differ: int
    n_labels_differ: int


def _compare(
    model: Any, frame: Any, onnx_bytes: bytes, task: str, numeric_type: str, tolerance: float,
) -> _Comparison:
    session = onnx_session(onnx_bytes)
    outputs = session.run(None, onnx_input_feed(frame, numeric_type=numeric_type))
    native = np.asarray(model.predict(frame))
    if task == "regression":
        ours = np.asarray(outputs[0], dtype=np.float64).reshape(native.shape)
        diff = np.abs(ours - native.astype(np.float64))
        diff = np.where(np.isnan(ours) & np.isnan(native), 0.0, diff)
        diff = np.nan_to_num(diff, nan=np.inf)
        row_diff = diff.reshape(len(frame), -1).max(axis=1)
        return _Comparison(float(row_diff.max(initial=0.0)), int((row_diff > tolerance).sum()), 0)
    labels = np.asarray(outputs[0]).reshape(-1)
    labels_differ = labels.astype(str) != native.reshape(-1).astype(str)
    proba_native = np.asarray(model.predict_proba(frame), dtype=np.float64)
    proba_onnx = np.asarray(outputs[1], dtype=np.float64).reshape(proba_native.shape)
    row_diff = np.nan_to_num(np.abs(proba_onnx - proba_native), nan=np.inf).max(axis=1)
    differ = labels_differ | (row_diff > tolerance)
    return _Comparison(
        float(row_diff.max(initial=0.0)), int(differ.sum()), int(labels_differ.sum()),
    )


def export_onnx(
    model: Any, X_test: Any, *, task: str, tolerance: float = 1e-5,
) -> OnnxExport:
    """Convert a fitted model to ONNX and keep it only if it predicts like the native model.

    ``X_test`` (a DataFrame of raw feature columns, e.g. the test split) defines the ONNX
    inputs (one per column, in order) and is the data the outputs are compared on.
    Regression: ``max |onnx - predict| <= tolerance``. Classification: identical labels and
    ``max |onnx proba - predict_proba| <= tolerance``.

    Numeric inputs are tried as doubles first, then as floats; the first conversion whose
    outputs match wins. When none does, ``onnx_bytes`` is None and ``reason`` gives the
    converter's error or the size of the difference. The check exists because ONNX is a
    re-implementation of the model (see the module docstring): an export that disagrees with
    the validated model must not be served.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
    if len(X_test) == 0:
        raise ValueError("export_onnx needs test rows to compare ONNX and native outputs on")
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError as error:
        return OnnxExport(
            None, f"ONNX export needs skl2onnx and onnxruntime (pip install 'tidal-ml[train]'): "
            f"{error}", None,
        )
    what = _describe(model)
    has_numeric = any(not _is_string_column(X_test[name]) for name in X_test.columns)
    numeric_types = ["double", "float"] if has_numeric else ["double"]
    failures: list[str] = []
    best: tuple[float, str] | None = None
    for numeric_type in numeric_types:
        label = f"{numeric_type} inputs"
        try:
            onnx_bytes = _convert(model, X_test, task, numeric_type)
        except Exception as error:  # noqa: BLE001 - any converter failure means "no ONNX"
            failures.append(f"skl2onnx cannot convert {what} with {label}: {_first_line(error)}")
            continue
        try:
            result = _compare(model, X_test, onnx_bytes, task, numeric_type, tolerance)
        except Exception as error:  # noqa: BLE001 - onnxruntime refusing the graph
            failures.append(
                f"onnxruntime cannot run the ONNX graph of {what} with {label}: "
                f"{_first_line(error)}"
            )
            continue
        if result.n_differ == 0:
            return OnnxExport(
                onnx_bytes,
                f"exported {what} with {label}; ONNX outputs match native within "
                f"{tolerance:g} on {len(X_test)} rows (max difference {result.max_difference:.3g})",
                result.max_difference,
                numeric_type,
            )
        labels = (
            f", {result.n_labels_differ} labels differ" if result.n_labels_differ else ""
        )
        message = (
            f"ONNX outputs differ from native by {result.max_difference:.3g} > {tolerance:g} "
            f"on {result.n_differ} of {len(X_test)} rows{labels} ({label})"
        )
        failures.append(message)
        if best is None or result.max_difference < best[0]:
            best = (result.max_difference, message)
    return OnnxExport(
        None, "; ".join(failures), None if best is None else best[0],
    )
