"""A registered model version, loaded for prediction: ONNX Runtime when the version has a
verified ONNX export, else the native (pickled) model.

    version = project.model_version("elec2@champion")
    model = load_version(project.artifacts, version)
    columns = check_columns(model.signature, request_columns)   # tidal.runtime.inputs
    model.predict(columns)   # {"label": [...], "probabilities": [[...]]} or {"prediction": [...]}

Which runtime
    ONNX when ``prefer_onnx`` and the training pipeline exported the model
    (``metrics["onnx"]["exported"]`` with its ``sha256``: the export was kept only because
    its outputs matched the native model's within 1e-5 on the test split) and the version
    has a signature; else native. Either way the bytes come from
    :meth:`ArtifactStore.get_bytes`, which verifies them against the hash recorded in the
    registry before anything parses or unpickles them, so an altered artifact raises
    :class:`~tidal.core.errors.IntegrityError` instead of loading. (Served from ONNX, the
    native artifact is not read at all, unless the class labels must come from it; see
    below.) ``runtime_reason`` says why the runtime was chosen.

Outputs
    Classification: ``label`` (n labels) and ``probabilities`` (float64, n × k, columns in
    the order of ``classes``). Regression: ``prediction`` (float64, n). Both runtimes give
    the same values (within the export's tolerance) on the same checked columns.

Class labels of an ONNX classifier
    From ``signature["classes"]`` when the registry has it; else read from the graph (the
    optional ``onnx`` package, see :func:`tidal.runtime.onnx.onnx_class_labels`); else from
    the native model's ``classes_`` (which unpickles it, and so needs its libraries).

Versions without a signature (registered before signatures existed) are served natively
with a signature derived from the model's ``feature_names_in_`` (every input ``FP64``,
nullable: nothing more is known); a model that does not record its input columns cannot be
served. Imports: pandas (native path), onnxruntime (ONNX path) and scikit-learn (inside the
pickle) load only when a model needs them.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tidal.core.errors import ValidationError
from tidal.runtime.native import FLAVOR, load_native

if TYPE_CHECKING:
    from tidal.artifacts.store import ArtifactStore
    from tidal.store.records import VersionRecord

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass
class LoadedModel:
    """A model version ready to predict. ``runtime`` is ``"onnx"`` or ``"native"``;
    ``classes`` are the class labels in probability-column order (None for regression);
    ``load_seconds`` is how long loading took (fetch, verification, session or unpickle)."""

    name: str
    version: int
    artifact_sha256: str
    signature: dict[str, Any]
    runtime: str
    task: str
    classes: list[Any] | None
    load_seconds: float = 0.0
    #: the sha256 of the ONNX graph being served (None on the native runtime)
    onnx_sha256: str | None = None
    #: why this runtime serves the version (e.g. why not ONNX)
    runtime_reason: str = ""
    _backend: Any = field(default=None, repr=False, compare=False)

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.signature["inputs"]]

    def predict(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict on checked columns (from :func:`~tidal.runtime.inputs.check_columns`):
        ``{"label", "probabilities"}`` for classification, ``{"prediction"}`` for
        regression."""
        return self._backend.predict(columns)


def load_version(artifacts: ArtifactStore, version: VersionRecord, *, prefer_onnx: bool = True,
                 onnx_threads: int = 1) -> LoadedModel:
    """Load ``version`` for prediction (see the module docstring for which runtime)."""
    started = time.perf_counter()
    ref = f"{version.model}:{version.version}"
    signature = version.signature if _has_inputs(version.signature) else None
    onnx = (version.metrics or {}).get("onnx") or {}
    onnx_sha256 = onnx.get("sha256") if onnx.get("exported") else None
    native: Any = None
    loaded: LoadedModel | None = None
    if not prefer_onnx:
        reason = "native model (ONNX not preferred)"
    elif not onnx_sha256:
        reason = f"native model: no ONNX export ({_short(onnx.get('reason'), 'none recorded')})"
    elif signature is None:
        reason = "native model: the version has no signature to feed its ONNX export with"
    elif importlib.util.find_spec("onnxruntime") is None:
        reason = "native model: the version has an ONNX export but onnxruntime is not installed"
    else:
        loaded, native = _load_onnx(artifacts, version, signature, onnx_sha256, onnx_threads)
        reason = f"ONNX export {onnx_sha256[:12]} ({_short(onnx.get('reason'), 'exported')})"
    if loaded is None:
        if native is None:
            native = _load_native(artifacts, version)
        if signature is None:
            signature = _derived_signature(ref, native)
        task = _task(signature, native)
        loaded = LoadedModel(
            version.model, version.version, version.artifact_sha256, signature, "native",
            task, _classes(native) if task == CLASSIFICATION else None,
            _backend=_NativeBackend(native, [s["name"] for s in signature["inputs"]], task))
    loaded.runtime_reason = reason
    loaded.load_seconds = time.perf_counter() - started
    return loaded


def _short(text: Any, default: str) -> str:
    text = str(text or default)
    return text if len(text) <= 200 else text[:197] + "..."


def _has_inputs(signature: Any) -> bool:
    return isinstance(signature, dict) and bool(signature.get("inputs"))


def _load_native(artifacts: ArtifactStore, version: VersionRecord) -> Any:
    if version.flavor != FLAVOR:
        raise ValidationError(
            f"{version.model}:{version.version} is a {version.flavor!r} model; the runtime "
            f"serves {FLAVOR!r} models and their ONNX exports")
    return load_native(artifacts.get_bytes(version.artifact_sha256))  # verified first


def _load_onnx(artifacts: ArtifactStore, version: VersionRecord, signature: dict[str, Any],
               onnx_sha256: str, threads: int) -> tuple[LoadedModel, Any]:
    from tidal.runtime.onnx import OnnxModel, onnx_class_labels

    ref = f"{version.model}:{version.version}"
    onnx_bytes = artifacts.get_bytes(onnx_sha256)  # verified against the recorded sha256
    model = OnnxModel(onnx_bytes, intra_op_num_threads=threads)
    names = {spec["name"] for spec in signature["inputs"]}
    unknown = [name for name in model.input_names if name not in names]
    if unknown:
        raise ValidationError(f"the ONNX export of {ref} takes input(s) its signature does "
                              f"not list: {', '.join(unknown)}")
    task = signature.get("task") or (CLASSIFICATION if len(model.output_names) >= 2
                                     else REGRESSION)
    native = None
    classes = None
    if task == CLASSIFICATION:
        if len(model.output_names) < 2:
            raise ValidationError(f"the ONNX export of {ref} has no probabilities output")
        classes = signature.get("classes") or onnx_class_labels(onnx_bytes,
                                                                model.output_names[0])
        if classes is None:
            native = _load_native(artifacts, version)
            classes = _classes(native)
        width = model.output_shapes[model.output_names[1]]
        if isinstance(width, list) and len(width) == 2 and isinstance(width[1], int) \
                and width[1] != len(classes):
            raise ValidationError(f"the ONNX export of {ref} gives {width[1]} probabilities "
                                  f"but the model has {len(classes)} classes")
    loaded = LoadedModel(version.model, version.version, version.artifact_sha256, signature,
                         "onnx", task, None if classes is None else list(classes),
                         onnx_sha256=onnx_sha256, _backend=_OnnxBackend(model, task, classes))
    return loaded, native


def _task(signature: dict[str, Any], native: Any) -> str:
    task = signature.get("task")
    if task in (CLASSIFICATION, REGRESSION):
        return task
    is_classifier = hasattr(native, "predict_proba") and hasattr(native, "classes_")
    return CLASSIFICATION if is_classifier else REGRESSION


def _classes(native: Any) -> list[Any]:
    return np.asarray(native.classes_).tolist()


def _datatype(values: np.ndarray) -> str:
    return {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64"}.get(values.dtype.kind,
                                                                       "BYTES")


def _derived_signature(ref: str, native: Any) -> dict[str, Any]:
    names = getattr(native, "feature_names_in_", None)
    if names is None or len(names) == 0:
        raise ValidationError(
            f"{ref} has no signature and its model does not record its input columns "
            "(feature_names_in_), so it cannot be served without a signature: register it "
            "again with one")
    task = _task({}, native)
    if task == CLASSIFICATION:
        outputs = [{"name": "label", "datatype": _datatype(np.asarray(native.classes_))},
                   {"name": "probabilities", "datatype": "FP64"}]
    else:
        outputs = [{"name": "prediction", "datatype": "FP64"}]
    return {"inputs": [{"name": str(name), "datatype": "FP64", "nullable": True}
                       for name in names],
            "outputs": outputs, "task": task, "derived": True}


def _rows(columns: dict[str, np.ndarray]) -> int:
    return len(next(iter(columns.values())))


class _OnnxBackend:
    def __init__(self, model: Any, task: str, classes: list[Any] | None) -> None:
        self.model = model
        self.task = task
        self.classes = classes

    def predict(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.model.run(columns)
        n = _rows(columns)
        if self.task == REGRESSION:
            return {"prediction": np.asarray(outputs[0], dtype=np.float64).reshape(n)}
        probabilities = outputs[1]
        if isinstance(probabilities, list):  # a ZipMap output: one {class: p} per row
            probabilities = [[row[c] for c in self.classes or []] for row in probabilities]
        probabilities = np.asarray(probabilities, dtype=np.float64).reshape(n, -1)
        # float32 graphs can give -1e-7 or 1 + 1e-7; a probability stays within [0, 1]
        np.clip(probabilities, 0.0, 1.0, out=probabilities)
        return {"label": np.asarray(outputs[0]).reshape(n), "probabilities": probabilities}


class _NativeBackend:
    def __init__(self, model: Any, names: list[str], task: str) -> None:
        self.model = model
        self.names = names
        self.task = task

    def frame(self, columns: dict[str, np.ndarray]) -> Any:
        """A DataFrame like the ones the model was trained on: the inputs in signature
        order, a missing string or boolean as NaN (what pandas and scikit-learn expect)."""
        import pandas as pd

        data = {}
        for name in self.names:
            values = np.asarray(columns[name])
            if values.dtype.kind == "O":
                values = np.array([np.nan if v is None else v for v in values], dtype=object)
            data[name] = values
        return pd.DataFrame(data)

    def predict(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frame = self.frame(columns)
        n = len(frame)
        if self.task == REGRESSION:
            return {"prediction": np.asarray(self.model.predict(frame),
                                             dtype=np.float64).reshape(n)}
        return {"label": np.asarray(self.model.predict(frame)).reshape(n),
                "probabilities": np.asarray(self.model.predict_proba(frame),
                                            dtype=np.float64).reshape(n, -1)}
