"""ONNX Runtime: the input convention of Tidal's exported graphs, and a session to run them.

The convention (set by :mod:`tidal.train.onnx_export`, which builds the graphs): one named
input per feature column, shape ``[None, 1]``. Numeric (and boolean) columns are doubles,
or floats when the converted graph only worked in 32 bits; string columns are strings,
with a missing value passed as the empty string :data:`MISSING_STRING` (string tensors
cannot hold NaN, and the exported imputers treat ``""`` as missing). The session's own
input types say which is which, so :class:`OnnxModel` builds the feed from the graph
alone, without the training code.

:func:`onnx_input_feed` builds a feed from a pandas DataFrame (the export check, which
compares ONNX with the native model on the test split) or from a mapping of 1-D arrays
(the serving path, which must not need pandas).

``onnxruntime`` is imported only when a session is made, ``pandas`` only for a DataFrame
and ``onnx`` only to read the class labels out of a graph (optional, see
:func:`onnx_class_labels`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

#: How a missing string value travels through ONNX (string tensors cannot hold NaN).
MISSING_STRING = ""

_NUMERIC_DTYPES = {"double": np.float64, "float": np.float32}
_ONNX_TYPE_TO_DTYPE = {"tensor(double)": "double", "tensor(float)": "float"}


def is_string_column(values: Any) -> bool:
    """Whether a pandas column travels as an ONNX string (anything not numeric or bool)."""
    import pandas as pd

    return not (
        pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
    )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _strings(values: Any) -> np.ndarray:
    """An ``[n, 1]`` object array of ``str``; None/NaN (and pandas' NA) become ``""``."""
    out = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif _is_missing(value) or _is_na(value):
            out.append(MISSING_STRING)
        else:
            out.append(str(value))
    return np.array(out, dtype=object).reshape(-1, 1)


def _is_na(value: Any) -> bool:
    """pandas' NA/NaT and numpy NaN scalars, without importing pandas."""
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True  # pd.NA: its comparison is ambiguous


def _numbers(values: Any, dtype: Any) -> np.ndarray:
    """An ``[n, 1]`` numeric array; None (in an object array) becomes NaN."""
    array = np.asarray(values)
    if array.dtype.kind == "O":
        array = np.array([np.nan if _is_missing(v) or _is_na(v) else float(v) for v in array],
                         dtype=np.float64)
    return array.astype(dtype, copy=False).reshape(-1, 1)


def onnx_input_feed(
    frame: Any, *, numeric_type: str | Mapping[str, str] = "double",
) -> dict[str, np.ndarray]:
    """The onnxruntime feed for a DataFrame or a mapping of columns: one ``[n, 1]`` array
    per column.

    Numeric (and boolean) columns become float64 (``numeric_type="double"``) or float32
    (``"float"``); NaN stays NaN. Other columns become object arrays of ``str`` with missing
    values as :data:`MISSING_STRING`. ``numeric_type`` may also map input names to ONNX type
    strings as given by ``session.get_inputs()`` (``"tensor(double)"``, ``"tensor(float)"``,
    ``"tensor(string)"``), so a server can build the feed from the model alone; columns the
    mapping does not name are left out.

    ``frame`` is a pandas DataFrame, or a mapping of names to 1-D arrays or lists (then
    pandas is not imported; a column is a string column when its numpy dtype is not
    numeric or boolean).
    """
    if isinstance(frame, Mapping):
        names = list(frame)

        def column_of(name: Any) -> Any:
            return np.asarray(frame[name])

        def is_string(column: Any) -> bool:
            return column.dtype.kind not in "biuf"
    else:
        names = list(frame.columns)

        def column_of(name: Any) -> Any:
            return frame[name]

        is_string = is_string_column
    feed: dict[str, np.ndarray] = {}
    for name in names:
        column = column_of(name)
        if isinstance(numeric_type, Mapping):
            kind = numeric_type.get(str(name))
            if kind is None:
                continue  # a column the model does not take
            kind = _ONNX_TYPE_TO_DTYPE.get(kind, "string")
        else:
            kind = "string" if is_string(column) else numeric_type
        if kind == "string":
            feed[str(name)] = _strings(column.tolist())
        elif isinstance(frame, Mapping):
            feed[str(name)] = _numbers(column, _NUMERIC_DTYPES[kind])
        else:
            array = column.to_numpy(dtype=np.float64, na_value=np.nan)
            feed[str(name)] = array.astype(_NUMERIC_DTYPES[kind]).reshape(-1, 1)
    return feed


def onnx_session(onnx_bytes: bytes, *, intra_op_num_threads: int = 1) -> Any:
    """An onnxruntime CPU session: sequential execution, one inter-op thread and
    ``intra_op_num_threads`` (default 1: deterministic, and parallelism belongs to the
    server's workers and batcher)."""
    import onnxruntime as ort

    if intra_op_num_threads < 1:
        raise ValueError(f"intra_op_num_threads must be at least 1, not {intra_op_num_threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _feeder(onnx_type: str) -> Any:
    """How a validated column becomes an ``[n, 1]`` tensor of an ONNX input type."""
    if onnx_type == "tensor(string)":
        return _strings
    dtype = {"tensor(double)": np.float64, "tensor(float)": np.float32,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32,
             "tensor(bool)": np.bool_}.get(onnx_type)
    if dtype is None:
        raise ValueError(f"unsupported ONNX input type {onnx_type}")
    if dtype in (np.float64, np.float32):
        return lambda values: _numbers(values, dtype)
    return lambda values: np.asarray(values).astype(dtype, copy=False).reshape(-1, 1)


class OnnxModel:
    """An ONNX graph in an onnxruntime session, fed with columns.

    ``predict(columns)`` takes a mapping of input name → 1-D array (e.g. from
    :func:`tidal.runtime.inputs.check_columns`) and returns the graph's outputs by name.
    The feed is built from the session's input types (see the module docstring).
    """

    def __init__(self, onnx_bytes: bytes, *, intra_op_num_threads: int = 1) -> None:
        self.session = onnx_session(onnx_bytes, intra_op_num_threads=intra_op_num_threads)
        self.input_types = {i.name: i.type for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_shapes = {o.name: o.shape for o in self.session.get_outputs()}
        self._feeders = [(name, _feeder(kind)) for name, kind in self.input_types.items()]

    @property
    def input_names(self) -> list[str]:
        return list(self.input_types)

    def feed(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        missing = [name for name, _ in self._feeders if name not in columns]
        if missing:
            raise KeyError(f"the ONNX graph needs input(s) {', '.join(missing)}")
        return {name: convert(columns[name]) for name, convert in self._feeders}

    def run(self, columns: Mapping[str, Any]) -> list[Any]:
        return self.session.run(self.output_names, self.feed(columns))

    def predict(self, columns: Mapping[str, Any]) -> dict[str, Any]:
        return dict(zip(self.output_names, self.run(columns), strict=True))


#: nodes a label passes through unchanged on its way to the graph output
_PASS_THROUGH = {"Reshape", "Identity", "Squeeze", "Flatten", "Unsqueeze"}
_CLASSIFIERS = {"LinearClassifier", "TreeEnsembleClassifier", "SVMClassifier",
                "TreeEnsemble"}


def onnx_class_labels(onnx_bytes: bytes, label_output: str = "label") -> list[Any] | None:
    """The class labels of an exported classifier, in probability-column order, read from
    the graph; None when they cannot be read (the ``onnx`` package is not installed, or
    the graph does not have one of the shapes below).

    The labels are where the graph's ``label`` output comes from, following only nodes
    that change shapes or cast: the ``classlabels_*`` attribute of an ``ai.onnx.ml``
    classifier node (tree ensembles), or the constant table an ``ArrayFeatureExtractor``
    picks the label from by the argmax index (skl2onnx's double-precision linear models).
    Anything else (a ``ZipMap``, arithmetic...) gives None, and the caller asks the native
    model.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        graph = onnx.load_model_from_string(onnx_bytes).graph
    except Exception:  # noqa: BLE001 - unreadable here means "ask the native model"
        return None
    producers = {output: node for node in graph.node for output in node.output}
    constants = {init.name: init for init in graph.initializer}
    name = label_output
    cast: Any = None  # the cast nearest the output decides the labels' type
    for _ in range(len(graph.node) + 1):
        node = producers.get(name)
        if node is None:
            return None
        labels: list[Any] | None = None
        if node.op_type in _PASS_THROUGH or node.op_type == "Cast":
            if node.op_type == "Cast" and cast is None:
                cast = _cast_function(node)
                if cast is None:
                    return None
            name = node.input[0]
            continue
        if node.op_type in _CLASSIFIERS:
            for attribute in node.attribute:
                if attribute.name == "classlabels_int64s" and attribute.ints:
                    labels = [int(v) for v in attribute.ints]
                elif attribute.name == "classlabels_strings" and attribute.strings:
                    labels = [v.decode("utf-8") for v in attribute.strings]
        elif node.op_type == "ArrayFeatureExtractor" and node.input[0] in constants:
            table = numpy_helper.to_array(constants[node.input[0]]).reshape(-1)
            labels = [v.decode("utf-8") if isinstance(v, bytes) else v
                      for v in table.tolist()]
        if labels is None:
            return None
        return labels if cast is None else [cast(v) for v in labels]
    return None


def _cast_function(node: Any) -> Any:
    """The Python conversion a ``Cast`` node applies to one label, for the types labels
    have (integers, strings, booleans); None for others."""
    from onnx import TensorProto

    to = next((a.i for a in node.attribute if a.name == "to"), None)
    if to in (TensorProto.INT64, TensorProto.INT32, TensorProto.INT16, TensorProto.INT8,
              TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64):
        return int
    if to == TensorProto.STRING:
        return str
    if to == TensorProto.BOOL:
        return bool
    return None
