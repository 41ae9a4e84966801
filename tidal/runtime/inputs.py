"""Request inputs checked against a model signature, before anything reaches a model.

A signature (see :mod:`tidal.train.registration`) lists the inputs a model takes::

    {"inputs": [{"name": "feat_2", "datatype": "FP64", "nullable": false}, ...],
     "outputs": [...], "task": "classification"}

:func:`check_columns` takes named columns (the Open Inference Protocol's tensors, flat
lists or numpy arrays) and :func:`columns_from_records` takes JSON records (``[{"feat_2":
0.1, ...}, ...]``); both return one 1-D numpy array per input, in signature order, or
raise :class:`InputError` naming the input and saying what was wrong, e.g.
``input 'feat_2': expected a number, got 'abc' at row 3`` (rows count from 0). A server
turns that error into a 400 response: bad input never reaches a model.

Rules
    Every input of the signature must be given and nothing else; columns all have the same
    length, at least one row (and at most ``max_rows``). ``FP*`` accepts integers and
    floats (not booleans), ``INT*``/``UINT*`` integers and integral floats such as ``3.0``
    (not ``2.5``), ``BOOL`` true/false, ``BYTES`` strings. A missing value (``null``/None,
    or NaN) is accepted only when the input is nullable (a signature without ``nullable``
    is treated as nullable, as older versions were registered without it); ±inf never.

Output arrays
    ``FP*`` → float64 (missing = NaN); ``INT*`` → int64, or float64 with NaN when a value
    is missing; ``BOOL`` → bool, or an object array of True/False/None when a value is
    missing; ``BYTES`` → an object array of ``str`` and None.

Speed: a request of a few rows (the server's hot path) is checked by a plain Python loop
over the values, with no pandas and one small numpy array per column; large columns are
checked with vectorised numpy operations, and only when those find a problem does the
loop run again to name the first offending row. A signature is compiled once (cached by
identity: treat a signature dict as immutable once it is used).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from tidal.core.errors import ValidationError

#: columns up to this many rows are checked by the Python loop directly
_LOOP_ROWS = 32
_INT64_MAX = 2**63 - 1
#: the largest magnitude a float input may have: float32's, which scikit-learn's trees
#: and ONNX Runtime's tree ensembles cast inputs to (beyond it they fail or answer NaN)
FLOAT_LIMIT = float(np.finfo(np.float32).max)

#: signature datatype → how its values are checked ("f"loat, "i"nt, "u"nsigned, "b"ool,
#: "s"tring)
_KINDS = {"FP64": "f", "FP32": "f", "FP16": "f",
          "INT64": "i", "INT32": "i", "INT16": "i", "INT8": "i",
          "UINT64": "u", "UINT32": "u", "UINT16": "u", "UINT8": "u",
          "BOOL": "b", "BYTES": "s"}
_EXPECTED = {"f": "a number", "i": "an integer", "u": "a non-negative integer",
             "b": "true or false", "s": "a string"}


class InputError(ValidationError):
    """Bad request input; ``field`` names the offending input (None when the problem is
    not about one input, e.g. too many rows)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _Input(NamedTuple):
    name: str
    kind: str
    nullable: bool


class _Plan(NamedTuple):
    inputs: tuple[_Input, ...]
    names: frozenset[str]
    listing: str


_PLANS: dict[int, tuple[Any, _Plan]] = {}


def _plan(signature: Any) -> _Plan:
    cached = _PLANS.get(id(signature))
    if cached is not None and cached[0] is signature:
        return cached[1]
    plan = _compile(signature)
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[id(signature)] = (signature, plan)  # holding it keeps its id from being reused
    return plan


def _compile(signature: Any) -> _Plan:
    specs = signature.get("inputs") if isinstance(signature, Mapping) else None
    if not specs:
        raise ValidationError("the model signature lists no inputs, so requests cannot be "
                              "checked against it")
    inputs = []
    for spec in specs:
        name = str(spec["name"])
        datatype = str(spec.get("datatype") or spec.get("dtype") or "").upper()
        kind = _KINDS.get(datatype)
        if kind is None:
            raise ValidationError(f"the model signature gives input {name!r} the datatype "
                                  f"{datatype or 'nothing'!r}; known: {', '.join(_KINDS)}")
        inputs.append(_Input(name, kind, bool(spec.get("nullable", True))))
    names = [i.name for i in inputs]
    listing = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20
                                       else "")
    return _Plan(tuple(inputs), frozenset(names), listing)


# -- the public checks ---------------------------------------------------------------------

def check_columns(signature: dict[str, Any], columns: Mapping[str, Any], *,
                  max_rows: int | None = None) -> dict[str, np.ndarray]:
    """Check named columns against ``signature``; one 1-D array per input, in signature
    order. Column values are lists (or tuples) or numpy arrays (1-D, or ``[n, 1]``)."""
    plan = _plan(signature)
    if not isinstance(columns, Mapping):
        raise InputError(f"inputs must be an object of named columns, got {_what(columns)}")
    for spec in plan.inputs:
        if spec.name not in columns:
            raise InputError(f"missing input {spec.name!r} (the model takes {plan.listing})",
                             field=spec.name)
    if len(columns) != len(plan.inputs):
        _unexpected(plan, columns)
    rows = -1
    first = ""
    sequences = []
    for spec in plan.inputs:
        values = _sequence(spec.name, columns[spec.name])
        n = len(values)
        if n == 0:
            raise InputError(f"input {spec.name!r} has no values", field=spec.name)
        if rows < 0:
            rows, first = n, spec.name
            if max_rows is not None and n > max_rows:
                raise InputError(f"the request has {n} rows; at most {max_rows} are accepted")
        elif n != rows:
            raise InputError(f"input {spec.name!r} has {n} values but {first!r} has {rows}: "
                             "every input needs one value per row", field=spec.name)
        sequences.append(values)
    return {spec.name: _convert(spec, values) for spec, values in zip(plan.inputs, sequences,
                                                                      strict=True)}


def columns_from_records(signature: dict[str, Any], records: Any, *,
                         max_rows: int | None = None) -> dict[str, np.ndarray]:
    """Check JSON records (a non-empty list of objects, one per row, each with every input
    of ``signature`` and nothing else) and return them as columns, like
    :func:`check_columns`. A missing value is sent as ``null``."""
    plan = _plan(signature)
    if not isinstance(records, list | tuple):
        raise InputError(f"records must be a list of JSON objects, got {_what(records)}")
    if not records:
        raise InputError("records is empty: send at least one record")
    if max_rows is not None and len(records) > max_rows:
        raise InputError(f"the request has {len(records)} records; at most {max_rows} are "
                         "accepted")
    count = len(plan.inputs)
    for row, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InputError(f"record {row} is not a JSON object (got {_what(record)})")
        if len(record) != count:
            _record_keys(plan, record, row)
    columns = {}
    for spec in plan.inputs:
        try:
            values = [record[spec.name] for record in records]
        except KeyError:
            row = next(r for r, record in enumerate(records) if spec.name not in record)
            _record_keys(plan, records[row], row)
            raise  # pragma: no cover - _record_keys raised
        columns[spec.name] = _convert(spec, values)
    return columns


def _unexpected(plan: _Plan, given: Mapping[str, Any], where: str = "") -> None:
    extra = next(str(key) for key in given if key not in plan.names)
    raise InputError(f"unexpected input {extra!r}{where} (the model takes {plan.listing})",
                     field=extra)


def _record_keys(plan: _Plan, record: Mapping[str, Any], row: int) -> None:
    for spec in plan.inputs:
        if spec.name not in record:
            raise InputError(f"record {row} has no {spec.name!r} (missing input; send null "
                             "for a missing value)", field=spec.name)
    _unexpected(plan, record, f" in record {row}")


# -- one column ----------------------------------------------------------------------------

def _sequence(name: str, values: Any) -> Any:
    """The values of a column as a list or a 1-D array."""
    if isinstance(values, list):
        return values
    if isinstance(values, np.ndarray):
        if values.ndim == 1:
            return values
        if values.ndim == 2 and values.shape[1] == 1:
            return values.reshape(-1)
        raise InputError(f"input {name!r} must be a flat list of values, got an array of "
                         f"shape {list(values.shape)}", field=name)
    if isinstance(values, tuple):
        return list(values)
    if isinstance(values, str | bytes | Mapping) or not hasattr(values, "__len__"):
        raise InputError(f"input {name!r} must be a list of values, got {_what(values)}",
                         field=name)
    return _sequence(name, np.asarray(values))  # pandas Series, pyarrow arrays...


def _convert(spec: _Input, values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        done = _vector_array(spec, values)
        if done is not None:
            return done
        values = values.tolist()  # e.g. an object array: Python values, checked below
    if len(values) > _LOOP_ROWS:
        done = _vector_list(spec, values)
        if done is not None:
            return done
    return _LOOPS[spec.kind](spec, values)


def _vector_array(spec: _Input, array: np.ndarray) -> np.ndarray | None:
    """A numpy column checked with vectorised operations; None when the loop must look
    (a problem to report, or a dtype that needs value-by-value conversion)."""
    kind, have = spec.kind, array.dtype.kind
    if kind == "f":
        if have in "iu":
            return array.astype(np.float64)
        if have == "f":
            return _finite_floats(spec, array.astype(np.float64, copy=False))
    elif kind in "iu":
        if have in "iu":
            if have == "u" and array.size and int(array.max()) > _INT64_MAX:
                return None
            result = array.astype(np.int64, copy=False)
            if kind == "u" and (result < 0).any():
                return None
            return result
        if have == "f":
            return _integral_floats(spec, array.astype(np.float64, copy=False))
    elif kind == "b":
        if have == "b":
            return array
    elif have == "U":
        return array.astype(object)
    return None


def _vector_list(spec: _Input, values: list[Any]) -> np.ndarray | None:
    """A long list checked with vectorised operations when its element types allow it."""
    types = set(map(type, values))
    kind = spec.kind
    if kind == "s":
        if types == {str} or (spec.nullable and types == {str, type(None)}):
            return np.array(values, dtype=object)
        return None
    if kind == "b":
        return np.array(values, dtype=bool) if types == {bool} else None
    if not types <= {int, float, type(None)}:
        return None
    if type(None) in types and not spec.nullable:
        return None
    try:
        if kind in "iu" and types == {int}:
            result = np.array(values, dtype=np.int64)
            return None if kind == "u" and (result < 0).any() else result
        floats = np.array(values, dtype=np.float64)
    except OverflowError:
        return None
    return _finite_floats(spec, floats) if kind == "f" else _integral_floats(spec, floats)


def _finite_floats(spec: _Input, array: np.ndarray) -> np.ndarray | None:
    if not np.isfinite(array).all() and (not spec.nullable or np.isinf(array).any()):
        return None
    if (np.abs(array) > FLOAT_LIMIT).any():  # NaN compares false: a missing value
        return None
    return array


def _integral_floats(spec: _Input, array: np.ndarray) -> np.ndarray | None:
    finite = np.isfinite(array)
    values = array[finite]
    if (values != np.trunc(values)).any() or (np.abs(values) > _INT64_MAX).any():
        return None
    if spec.kind == "u" and (values < 0).any():
        return None
    if finite.all():
        return array.astype(np.int64)
    if not spec.nullable or np.isinf(array).any():
        return None
    return array


# -- the value-by-value checks: they convert, and name the first bad value -----------------

def _missing(spec: _Input, value: Any, row: int) -> None:
    if not spec.nullable:
        raise InputError(f"input {spec.name!r}: got {_show(value)} at row {row}, but the "
                         "input is not nullable (a value is required)", field=spec.name)


def _wrong(spec: _Input, value: Any, row: int) -> InputError:
    return InputError(f"input {spec.name!r}: expected {_EXPECTED[spec.kind]}, got "
                      f"{_show(value)} at row {row}", field=spec.name)


def _not_finite(spec: _Input, value: Any, row: int) -> InputError:
    return InputError(f"input {spec.name!r}: got {_show(value)} at row {row}, which is not "
                      "finite", field=spec.name)


def _beyond_float32(spec: _Input, value: Any, row: int) -> InputError:
    return InputError(f"input {spec.name!r}: {_show(value)} at row {row} is beyond "
                      f"±{FLOAT_LIMIT:.4g}, the range of the 32-bit floats that tree models "
                      "and ONNX Runtime compute in", field=spec.name)


def _loop_floats(spec: _Input, values: Any) -> np.ndarray:
    out: list[Any] = []
    append = out.append
    for row, value in enumerate(values):
        kind = type(value)
        if kind is float or kind is int:
            pass
        elif value is None:
            _missing(spec, value, row)
            append(math.nan)
            continue
        elif isinstance(value, bool | np.bool_) or not isinstance(
                value, int | float | np.integer | np.floating):
            raise _wrong(spec, value, row)
        if value != value:
            _missing(spec, value, row)
        elif value in (math.inf, -math.inf):
            raise _not_finite(spec, value, row)
        elif value > FLOAT_LIMIT or value < -FLOAT_LIMIT:
            raise _beyond_float32(spec, value, row)
        append(value)
    return np.array(out, dtype=np.float64)


def _loop_ints(spec: _Input, values: Any) -> np.ndarray:
    out: list[Any] = []
    append = out.append
    missing = False
    for row, value in enumerate(values):
        kind = type(value)
        if kind is int:
            pass
        elif value is None:
            _missing(spec, value, row)
            missing = True
            append(math.nan)
            continue
        elif isinstance(value, bool | np.bool_):
            raise _wrong(spec, value, row)
        elif isinstance(value, int | np.integer):
            value = int(value)
        elif isinstance(value, float | np.floating):
            number = float(value)
            if number != number:
                _missing(spec, value, row)
                missing = True
                append(math.nan)
                continue
            if math.isinf(number):
                raise _not_finite(spec, value, row)
            if not number.is_integer():
                raise _wrong(spec, value, row)
            value = int(number)
        else:
            raise _wrong(spec, value, row)
        if value < 0 and spec.kind == "u":
            raise _wrong(spec, value, row)
        if value > _INT64_MAX or value < -_INT64_MAX - 1:
            raise InputError(f"input {spec.name!r}: {_show(value)} at row {row} is out of "
                             "range for a 64-bit integer", field=spec.name)
        append(value)
    return np.array(out, dtype=np.float64 if missing else np.int64)


def _loop_bools(spec: _Input, values: Any) -> np.ndarray:
    out: list[Any] = []
    append = out.append
    missing = False
    for row, value in enumerate(values):
        if value is True or value is False:
            append(value)
        elif isinstance(value, np.bool_):
            append(bool(value))
        elif value is None or (isinstance(value, float) and value != value):
            _missing(spec, value, row)
            missing = True
            append(None)
        else:
            raise _wrong(spec, value, row)
    if not missing:
        return np.array(out, dtype=bool)
    return _objects(out)


def _loop_strings(spec: _Input, values: Any) -> np.ndarray:
    out: list[Any] = []
    append = out.append
    for row, value in enumerate(values):
        if type(value) is str:
            append(value)
        elif value is None or (isinstance(value, float) and value != value):
            _missing(spec, value, row)
            append(None)
        elif isinstance(value, str):
            append(str(value))
        elif isinstance(value, bytes):
            try:
                append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise InputError(f"input {spec.name!r}: the bytes at row {row} are not "
                                 "valid UTF-8", field=spec.name) from None
        else:
            raise _wrong(spec, value, row)
    return _objects(out)


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


_LOOPS = {"f": _loop_floats, "i": _loop_ints, "u": _loop_ints, "b": _loop_bools,
          "s": _loop_strings}


# -- describing values in messages --------------------------------------------------------

def _show(value: Any) -> str:
    """A value as the client sent it (JSON spelling where there is one)."""
    if value is None:
        return "null"
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return repr(number)
    if isinstance(value, int | np.integer):
        text = str(int(value))
        return text if len(text) <= 40 else text[:37] + "..."
    return _what(value)


def _what(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple | np.ndarray):
        return "a list"
    if isinstance(value, bytes):
        return "bytes"
    if value is None or isinstance(value, bool | str | int | float | np.generic):
        return _show(value)
    return f"a {type(value).__name__}"
