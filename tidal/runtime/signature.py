"""Model signatures: the named, typed inputs a model takes and the outputs it gives.

A signature is plain JSON so that it can be stored in the registry and served as Open
Inference Protocol metadata: ``{"inputs": [{"name", "dtype"}...], "outputs": [...]}``.
"""

from __future__ import annotations

from typing import Any

#: pandas/numpy dtype kind → Open Inference Protocol datatype
_KIND_TO_DATATYPE = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64", "O": "BYTES",
                     "U": "BYTES", "S": "BYTES", "M": "INT64"}


def signature_from_frame(
    features: Any, outputs: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """Describe the columns of a pandas DataFrame as model inputs."""
    inputs = [
        {"name": str(name), "datatype": _KIND_TO_DATATYPE.get(dtype.kind, "BYTES")}
        for name, dtype in features.dtypes.items()
    ]
    return {"inputs": inputs, "outputs": outputs or []}
