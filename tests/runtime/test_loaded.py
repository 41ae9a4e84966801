"""Loading registered versions for prediction, on models trained by the real pipeline:
ONNX and native agree, nullable strings reach a native regressor, altered bytes are
refused, and a version without a signature still loads when its model knows its columns."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tidal
from tidal.core.errors import IntegrityError, ValidationError
from tidal.runtime.inputs import InputError, check_columns, columns_from_records
from tidal.runtime.loaded import LoadedModel, load_version
from tidal.runtime.onnx import (
    MISSING_STRING,
    OnnxModel,
    onnx_class_labels,
    onnx_input_feed,
)
from tidal.train.standard import run_standard

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ELEC2_FEATURES = [f"feat_{i}" for i in range(1, 7)]
TOLERANCE = 1e-5


def _toml(target: str, source: str, model: str, candidates: str) -> str:
    return (f'[data]\ntarget = "{target}"\n[pipeline]\nsource = "{source}"\n'
            f'model = "{model}"\ncandidates = {candidates}\n')


@pytest.fixture(scope="module")
def elec2(tmp_path_factory: pytest.TempPathFactory):
    """elec2:1, a logistic regression exported to ONNX, trained on 3,000 rows; yields the
    open project and 1,000 later rows it never saw."""
    folder = tmp_path_factory.mktemp("elec2")
    frame = pd.read_csv(DATA / "elec2.csv.gz").iloc[:4_000]
    frame.iloc[:3_000].to_csv(folder / "elec2.csv", index=False)
    (folder / "tidal.toml").write_text(_toml("target", "elec2.csv", "elec2", '["linear"]'))
    with tidal.Project(folder) as project:
        summary = run_standard(project, executor="inline", progress=False)
        assert summary["chosen"] == "linear" and summary["onnx"]["exported"]
        yield project, frame.iloc[3_000:].reset_index(drop=True)


@pytest.fixture(scope="module")
def bike(tmp_path_factory: pytest.TempPathFactory):
    """bike:1 a histogram GBM (no ONNX converter: served natively), bike:2 a ridge
    regression (exported to ONNX), both on 3,000 rows with real missing values in
    ``weekday`` and ``weathersit``; yields the open project and 1,000 unseen rows."""
    folder = tmp_path_factory.mktemp("bike")
    frame = pd.read_csv(DATA / "bike_sharing_hourly.csv.gz")
    frame = frame.drop(columns=["casual", "registered", "dteday"]).iloc[:4_000]
    frame.iloc[:3_000].to_csv(folder / "bike.csv", index=False)
    toml = folder / "tidal.toml"
    toml.write_text(_toml("cnt", "bike.csv", "bike", '["hist_gradient_boosting"]'))
    with tidal.Project(folder) as project:
        first = run_standard(project, executor="inline", progress=False)
        assert first["model"] == "bike:1" and not first["onnx"]["exported"]
    # the ridge is worse than the forest on these rows: let the gate bless it anyway (a
    # vetoed model is not exported)
    toml.write_text(_toml("cnt", "bike.csv", "bike", '["linear"]')
                    + "[pipeline.gate]\nchampion_tolerance = 1000.0\n")
    with tidal.Project(folder) as project:  # settings are read when a project opens
        second = run_standard(project, executor="inline", progress=False)
        assert second["model"] == "bike:2" and second["onnx"]["exported"]
        yield project, frame.iloc[3_000:].reset_index(drop=True)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client sends them: missing values as null."""
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def test_onnx_and_native_agree_on_a_classifier(elec2) -> None:
    project, unseen = elec2
    version = project.model_version("elec2:1")
    onnx = load_version(project.artifacts, version)
    native = load_version(project.artifacts, version, prefer_onnx=False)
    assert isinstance(onnx, LoadedModel)
    assert (onnx.runtime, native.runtime) == ("onnx", "native")
    assert onnx.onnx_sha256 == version.metrics["onnx"]["sha256"] and native.onnx_sha256 is None
    assert "ONNX export" in onnx.runtime_reason and "not preferred" in native.runtime_reason
    for model in (onnx, native):
        assert (model.name, model.version, model.artifact_sha256) == (
            "elec2", 1, version.artifact_sha256)
        assert model.task == "classification" and model.classes == [0, 1]
        assert model.signature == version.signature
        assert model.input_names == ELEC2_FEATURES
        assert model.load_seconds > 0

    columns = check_columns(version.signature, {c: unseen[c].to_numpy() for c in
                                                ELEC2_FEATURES})
    a, b = onnx.predict(columns), native.predict(columns)
    assert set(a) == set(b) == {"label", "probabilities"}
    assert a["probabilities"].shape == b["probabilities"].shape == (1_000, 2)
    assert a["probabilities"].dtype == b["probabilities"].dtype == np.float64
    np.testing.assert_array_equal(a["label"], b["label"])
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=TOLERANCE)
    np.testing.assert_allclose(a["probabilities"].sum(axis=1), 1.0)
    # ... and both are the registered model's own predictions
    model = project.load_model("elec2:1")
    np.testing.assert_array_equal(b["label"], model.predict(unseen[ELEC2_FEATURES]))
    np.testing.assert_allclose(b["probabilities"], model.predict_proba(unseen[ELEC2_FEATURES]))
    # the probability columns follow `classes`: the label is the most probable class
    np.testing.assert_array_equal(
        np.asarray(onnx.classes)[a["probabilities"].argmax(axis=1)], a["label"])

    # one record at a time, the server's hot path
    for i, record in enumerate(_records(unseen[ELEC2_FEATURES].iloc[:20])):
        row = columns_from_records(onnx.signature, [record])
        one = onnx.predict(row)
        assert one["label"].shape == (1,) and one["probabilities"].shape == (1, 2)
        assert one["label"][0] == a["label"][i]
        np.testing.assert_allclose(one["probabilities"][0], a["probabilities"][i], atol=1e-12)
        np.testing.assert_allclose(native.predict(row)["probabilities"][0],
                                   one["probabilities"][0], atol=TOLERANCE)


def test_session_settings_and_class_labels(elec2) -> None:
    project, unseen = elec2
    version = project.model_version("elec2:1")
    onnx_bytes = project.artifacts.get_bytes(version.metrics["onnx"]["sha256"])
    model = OnnxModel(onnx_bytes)
    options = model.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert str(options.execution_mode).endswith("ORT_SEQUENTIAL")
    assert OnnxModel(onnx_bytes, intra_op_num_threads=2).session.get_session_options() \
        .intra_op_num_threads == 2
    loaded = load_version(project.artifacts, version, onnx_threads=2)
    assert loaded._backend.model.session.get_session_options().intra_op_num_threads == 2
    assert model.input_names == ELEC2_FEATURES
    assert model.output_names == ["label", "probabilities"]
    assert onnx_class_labels(onnx_bytes) == [0, 1]
    outputs = model.predict({c: unseen[c].to_numpy()[:5] for c in ELEC2_FEATURES})
    assert outputs["label"].shape == (5,) and outputs["probabilities"].shape == (5, 2)
    with pytest.raises(KeyError, match="feat_6"):
        model.predict({c: unseen[c].to_numpy()[:5] for c in ELEC2_FEATURES[:5]})


def test_class_labels_of_a_tree_ensemble_with_text_labels(elec2) -> None:
    """Tree ensembles keep their labels in the classifier node (not a constant table)."""
    from tidal.train.candidates import make_candidate
    from tidal.train.onnx_export import export_onnx

    _, unseen = elec2
    X = unseen[ELEC2_FEATURES]
    y = unseen["target"].map({0: "down", 1: "up"})
    forest = make_candidate("random_forest", "classification", ELEC2_FEATURES, [], seed=0)
    forest.set_params(model__n_estimators=5).fit(X.iloc[:600], y.iloc[:600])
    exported = export_onnx(forest, X.iloc[600:], task="classification")
    assert exported.exported, exported.reason
    assert onnx_class_labels(exported.onnx_bytes) == ["down", "up"] == forest.classes_.tolist()
    assert onnx_class_labels(b"not an onnx graph") is None


def test_native_regression_with_nullable_strings(bike) -> None:
    project, unseen = bike
    version = project.model_version("bike:1")
    model = load_version(project.artifacts, version)
    assert model.runtime == "native" and model.task == "regression" and model.classes is None
    assert "no ONNX export" in model.runtime_reason
    nullable = {s["name"]: s["nullable"] for s in model.signature["inputs"]}
    assert nullable["weekday"] and nullable["weathersit"] and not nullable["season"]
    X = unseen[model.input_names]
    assert X["weekday"].isna().any() and X["weathersit"].isna().any()

    columns = columns_from_records(model.signature, _records(X))
    assert columns["weathersit"].dtype == object and None in columns["weathersit"].tolist()
    out = model.predict(columns)
    assert list(out) == ["prediction"] and out["prediction"].dtype == np.float64
    np.testing.assert_array_equal(out["prediction"], project.load_model("bike:1").predict(X))

    # a missing value where the schema allows none, and a number where a label belongs
    records = _records(X.iloc[:3])
    records[2]["season"] = None
    with pytest.raises(InputError, match="input 'season': got null at row 2, but the input is "
                                         "not nullable") as error:
        columns_from_records(model.signature, records)
    assert error.value.field == "season"
    records[2]["season"] = "winter"
    records[1]["hr"] = 6
    with pytest.raises(InputError, match="input 'hr': expected a string, got 6 at row 1"):
        columns_from_records(model.signature, records)


def test_onnx_and_native_agree_with_missing_strings(bike) -> None:
    """The ridge regression's ONNX graph takes missing categories as "" (MISSING_STRING)."""
    project, unseen = bike
    version = project.model_version("bike:2")
    onnx = load_version(project.artifacts, version)
    native = load_version(project.artifacts, version, prefer_onnx=False)
    assert (onnx.runtime, native.runtime) == ("onnx", "native")
    assert onnx.task == native.task == "regression"
    X = unseen[onnx.input_names]
    columns = columns_from_records(onnx.signature, _records(X))
    a, b = onnx.predict(columns)["prediction"], native.predict(columns)["prediction"]
    np.testing.assert_allclose(a, b, atol=TOLERANCE)
    np.testing.assert_allclose(b, project.load_model("bike:2").predict(X))
    missing = X["weathersit"].isna().to_numpy()
    assert missing.any()
    np.testing.assert_allclose(a[missing], b[missing], atol=TOLERANCE)
    # the feed the session gets: strings with "" for missing, doubles
    feed = onnx._backend.model.feed(columns)
    assert feed["weathersit"].shape == (1_000, 1)
    assert MISSING_STRING in feed["weathersit"][:, 0].tolist()
    assert feed["temp"].dtype == np.float64


def test_feed_from_columns_needs_no_dataframe() -> None:
    columns = {"x": np.array([1.5, np.nan]), "n": np.array([1, 2]),
               "flag": np.array([True, False]), "s": np.array(["a", None], dtype=object),
               "b": np.array([True, None], dtype=object)}
    feed = onnx_input_feed(columns)
    assert feed["x"].dtype == np.float64 and feed["x"].shape == (2, 1)
    assert feed["n"][:, 0].tolist() == [1.0, 2.0] and feed["flag"][:, 0].tolist() == [1.0, 0.0]
    assert feed["s"][:, 0].tolist() == ["a", MISSING_STRING]
    typed = onnx_input_feed(columns, numeric_type={"x": "tensor(float)", "b": "tensor(double)",
                                                   "s": "tensor(string)"})
    assert list(typed) == ["x", "s", "b"] and typed["x"].dtype == np.float32
    assert typed["b"][0, 0] == 1.0 and np.isnan(typed["b"][1, 0])
    # the frame path (the export check) builds the same feed
    frame = pd.DataFrame({"x": [1.5, np.nan], "s": ["a", None]})
    by_frame = onnx_input_feed(frame)
    np.testing.assert_array_equal(by_frame["s"], feed["s"])
    np.testing.assert_array_equal(by_frame["x"], feed["x"])


def _tamper(path: str) -> bytes:
    original = Path(path).read_bytes()
    Path(path).chmod(0o644)
    Path(path).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    return original


def test_altered_artifacts_are_refused(elec2) -> None:
    project, _ = elec2
    version = project.model_version("elec2:1")
    for sha256, prefer_onnx, other in [(version.metrics["onnx"]["sha256"], True, False),
                                       (version.artifact_sha256, False, True)]:
        path = project.artifacts.path_of(sha256)
        original = _tamper(path)
        try:
            with pytest.raises(IntegrityError, match="failed verification"):
                load_version(project.artifacts, version, prefer_onnx=prefer_onnx)
            # the other runtime does not read the altered file
            assert load_version(project.artifacts, version, prefer_onnx=other).runtime == (
                "onnx" if other else "native")
        finally:
            Path(path).write_bytes(original)
    assert load_version(project.artifacts, version).runtime == "onnx"


def test_a_version_without_a_signature(elec2) -> None:
    from sklearn.linear_model import LogisticRegression

    project, unseen = elec2
    fitted = project.load_model("elec2:1")
    old = project.register_model("elec2-old", fitted)  # no signature, no metrics
    assert old.signature is None
    model = load_version(project.artifacts, old)
    assert model.runtime == "native" and model.task == "classification"
    assert model.classes == [0, 1]
    assert model.signature["inputs"] == [{"name": name, "datatype": "FP64", "nullable": True}
                                         for name in ELEC2_FEATURES]
    columns = check_columns(model.signature, {c: unseen[c].to_numpy() for c in ELEC2_FEATURES})
    np.testing.assert_allclose(model.predict(columns)["probabilities"],
                               fitted.predict_proba(unseen[ELEC2_FEATURES]))

    X = unseen[ELEC2_FEATURES].to_numpy()
    anonymous = LogisticRegression().fit(X, unseen["target"])  # fitted without column names
    nameless = project.register_model("nameless", anonymous)
    with pytest.raises(ValidationError, match="nameless:1 has no signature .* cannot be "
                                              "served without a signature"):
        load_version(project.artifacts, nameless)


def test_a_flavor_the_runtime_cannot_serve(elec2, tmp_path: Path) -> None:
    project, _ = elec2
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00\x01 not a model")
    other = project.register_model("foreign", path=path, flavor="torchscript",
                                   signature={"inputs": [{"name": "x", "datatype": "FP64"}]})
    with pytest.raises(ValidationError, match="foreign:1 is a 'torchscript' model; the runtime "
                                              "serves 'python-pickle' models"):
        load_version(project.artifacts, other)
    shutil.rmtree(tmp_path)
