"""The Open Inference Protocol v2 over HTTP/JSON, for tabular models: one tensor per column.

A V2 inference request names its inputs (``{"name", "shape", "datatype", "data"}``).
Tidal's models take a table, so each input is one column: its shape is ``[rows]`` or
``[rows, 1]`` and its data a flat (or row-major nested) list. This module turns a request
body into columns and a result into a response body, and nothing else: value checks
against the model's signature are :mod:`tidal.runtime.inputs`'s job.

Written here rather than taken from a library because the libraries that implement V2
(MLServer, KServe, Triton's Python server) are whole servers with their own runtimes and
event loops; the protocol itself is a few JSON shapes.

It also speaks the protocol's *binary data extension*, which ``tritonclient`` uses by
default: the body is the JSON header (``Inference-Header-Content-Length`` bytes) followed
by raw tensors, each input saying its ``binary_data_size``; numbers are little-endian,
``BYTES`` elements are a 4-byte little-endian length then the bytes. Outputs are returned
binary when the request asks (``binary_data_output`` or an output's ``binary_data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from tidal.runtime.inputs import InputError

HEADER_LENGTH = "inference-header-content-length"

#: V2 datatype → numpy dtype for binary tensors
_NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
_NUMERIC = frozenset(name for name in _NUMPY if name != "BOOL")
_DATATYPES = frozenset((*_NUMPY, "BYTES"))
#: which V2 datatypes a signature's datatype accepts
_ACCEPTS = {"FP64": _NUMERIC, "FP32": _NUMERIC, "INT64": _NUMERIC, "INT32": _NUMERIC,
            "UINT64": _NUMERIC, "BOOL": frozenset({"BOOL"}), "BYTES": frozenset({"BYTES"})}
_DATATYPE_OF_KIND = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL"}


@dataclass
class InferenceRequest:
    """What the server needs from a V2 request: its id, columns, wanted outputs."""

    id: str | None
    columns: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] | None = None
    binary_outputs: set[str] | bool = False


def parse_request(body: bytes, header_length: str | None,
                  input_types: dict[str, str]) -> InferenceRequest:
    """Columns from a V2 request body; ``input_types`` is the signature's name → datatype.

    Raises :class:`InputError` (a 400) for anything malformed, naming the input.
    """
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise InputError("Inference-Header-Content-Length is not a number") from None
        if not 0 < size <= len(body):
            raise InputError("Inference-Header-Content-Length is outside the body")
        header, binary = body[:size], memoryview(body)[size:]
    else:
        header, binary = body, memoryview(b"")
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InputError("the body must be a JSON object with an 'inputs' list")
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise InputError("'inputs' must be a non-empty list of tensors")
    parameters = document.get("parameters")
    if parameters is None:
        parameters = {}
    elif not isinstance(parameters, dict):
        raise InputError("'parameters' must be an object")
    columns: dict[str, Any] = {}
    offset = 0
    for tensor in tensors:
        name, values, used = _column(tensor, binary, offset, input_types)
        if name in columns:
            raise InputError(f"input {name!r} is given twice", field=name)
        columns[name] = values
        offset += used
    if offset != len(binary):
        raise InputError(f"the body has {len(binary) - offset} bytes of binary data that "
                         "no input claims")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError("'id' must be a string")
    outputs, binary_outputs = _requested_outputs(document, parameters)
    return InferenceRequest(request_id, columns, parameters, outputs, binary_outputs)


def _column(tensor: Any, binary: memoryview, offset: int,
            input_types: dict[str, str]) -> tuple[str, Any, int]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InputError("every input needs a 'name'")
    name = tensor["name"]
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if type(datatype) is not str or datatype not in _DATATYPES:
        raise InputError(f"input {name!r}: unknown datatype {datatype!r}", field=name)
    expected = input_types.get(name)
    if expected is not None and expected != datatype \
            and datatype not in _ACCEPTS.get(expected, ()):
        raise InputError(f"input {name!r}: datatype {datatype} does not match the model's "
                         f"{expected}", field=name)
    simple = type(shape) is list and len(shape) == 1 and type(shape[0]) is int \
        and shape[0] >= 0  # the common case, checked cheaply
    if not simple and (
            not isinstance(shape, list) or not 1 <= len(shape) <= 2
            or not all(isinstance(d, int) and d >= 0 for d in shape)
            or (len(shape) == 2 and shape[1] != 1)):
        raise InputError(f"input {name!r}: shape must be [rows] or [rows, 1] (one column "
                         f"per input), got {shape!r}", field=name)
    count = shape[0]
    size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
    if size is not None:
        values, used = _binary_values(name, datatype, binary, offset, size, count)
        return name, values, used
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InputError(f"input {name!r}: 'data' must be a list", field=name)
    if data and isinstance(data[0], list):
        data = [item for row in data for item in (row if isinstance(row, list) else [row])]
    if len(data) != count:
        raise InputError(f"input {name!r}: shape {shape} holds {count} values but 'data' "
                         f"has {len(data)}", field=name)
    if datatype == "BOOL" and not all(isinstance(v, bool) or v is None for v in data):
        raise InputError(f"input {name!r}: BOOL data must be true or false", field=name)
    return name, data, 0


def _binary_values(name: str, datatype: str, binary: memoryview, offset: int, size: Any,
                   count: int) -> tuple[Any, int]:
    if not isinstance(size, int) or size < 0 or offset + size > len(binary):
        raise InputError(f"input {name!r}: binary_data_size does not fit the body",
                         field=name)
    chunk = binary[offset:offset + size]
    if datatype == "BYTES":
        values: list[str] = []
        at = 0
        while at < size:
            if at + 4 > size:
                raise InputError(f"input {name!r}: truncated BYTES element", field=name)
            length = int.from_bytes(chunk[at:at + 4], "little")
            at += 4
            if at + length > size:
                raise InputError(f"input {name!r}: truncated BYTES element", field=name)
            try:
                values.append(bytes(chunk[at:at + length]).decode())
            except UnicodeDecodeError:
                raise InputError(f"input {name!r}: BYTES element is not UTF-8 text",
                                 field=name) from None
            at += length
    else:
        dtype = np.dtype(_NUMPY[datatype]).newbyteorder("<")
        if size % dtype.itemsize:
            raise InputError(f"input {name!r}: {size} bytes is not a whole number of "
                             f"{datatype} values", field=name)
        values = np.frombuffer(chunk, dtype=dtype)  # type: ignore[assignment]
    if len(values) != count:
        raise InputError(f"input {name!r}: shape holds {count} values but the binary data "
                         f"has {len(values)}", field=name)
    return values, size


def _parameters(tensor: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = tensor.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InputError(f"{what}: 'parameters' must be an object")
    return parameters


def _requested_outputs(document: dict[str, Any],
                       parameters: dict[str, Any]) -> tuple[list[str] | None, set[str] | bool]:
    wanted = document.get("outputs")
    if wanted is None:
        return None, bool(parameters.get("binary_data_output", False))
    if not isinstance(wanted, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
        raise InputError("'outputs' must be a list of objects with a 'name'")
    names = [o["name"] for o in wanted]
    if len(set(names)) != len(names):  # each copy would be encoded again: refused
        twice = sorted({name for name in names if names.count(name) > 1})
        raise InputError(f"output(s) {', '.join(map(repr, twice))} requested more than once")
    binary = {o["name"] for o in wanted
              if _parameters(o, f"output {o['name']!r}").get("binary_data")}
    return names, binary


def datatype_of(values: np.ndarray) -> str:
    """The V2 datatype of an output array (text and mixed objects are BYTES)."""
    return _DATATYPE_OF_KIND.get(values.dtype.kind, "BYTES")


def encode_response(*, model_name: str, model_version: str, request_id: str,
                    outputs: dict[str, np.ndarray], wanted: list[str] | None,
                    binary: set[str] | bool) -> tuple[bytes, dict[str, str]]:
    """The V2 response body and its extra headers (the binary header length when used)."""
    names = list(outputs) if wanted is None else wanted
    missing = [name for name in names if name not in outputs]
    if missing:
        raise InputError(f"unknown output(s) {', '.join(missing)}; this model gives "
                         f"{', '.join(outputs)}")
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in names:
        values = outputs[name]
        datatype = datatype_of(values)
        tensor: dict[str, Any] = {"name": name, "shape": list(values.shape),
                                  "datatype": datatype}
        if binary is True or (isinstance(binary, set) and name in binary):
            blob = _binary_blob(values, datatype)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_ready(values)
        tensors.append(tensor)
    header = orjson.dumps({"model_name": model_name, "model_version": model_version,
                           "id": request_id, "outputs": tensors},
                          option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def _json_ready(values: np.ndarray) -> Any:
    """A flat array orjson can write as it is (numbers; NaN becomes null), else a list."""
    flat = values.reshape(-1)
    if flat.dtype.kind in "fiub" and flat.flags.c_contiguous:
        return flat
    return json_values(values)


def json_values(values: np.ndarray) -> list[Any]:
    """A flat list for JSON: numbers as numbers (NaN as null), text as text."""
    flat = values.reshape(-1)
    if flat.dtype.kind == "f":
        listed = flat.tolist()
        if not np.isfinite(flat).all():
            return [v if math.isfinite(v) else None for v in listed]
        return listed
    if flat.dtype.kind in "iub":
        return flat.tolist()
    return [v if v is None or isinstance(v, str | int | float | bool) else str(v)
            for v in flat.tolist()]


def _binary_blob(values: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in values.reshape(-1).tolist():
            data = ("" if item is None else str(item)).encode()
            parts.append(len(data).to_bytes(4, "little") + data)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=np.dtype(_NUMPY[datatype]).newbyteorder("<"))\
        .tobytes()


def error_body(message: str) -> bytes:
    """The protocol's error shape."""
    return orjson.dumps({"error": message})
