"""The standard pipeline from tidal.toml alone, on real Elec2 data split by time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import tidal
from tidal.pipeline import StepFailedError
from tidal.train.standard import run_standard

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def elec2_project(tmp_path: Path) -> Path:
    frame = pd.read_csv(DATA / "elec2.csv.gz").iloc[:6_000]
    frame["t"] = pd.Timestamp("1996-05-07") + pd.to_timedelta(
        [30 * i for i in range(len(frame))], unit="min")
    frame.to_csv(tmp_path / "elec2.csv", index=False)
    (tmp_path / "tidal.toml").write_text(
        '[data]\ntarget = "target"\ntimestamp = "t"\n'
        '[pipeline]\nsource = "elec2.csv"\nmodel = "elec2"\n'
        'candidates = ["linear", "hist_gradient_boosting"]\n'
        'slices = [{column = "feat_1", bins = [0, 0.5, 1.0]}]\n')
    return tmp_path


def test_train_gate_register_then_everything_cached(elec2_project: Path):
    with tidal.Project(elec2_project) as project:
        first = run_standard(project, executor="inline", progress=False)
        assert first["status"] == "blessed" and first["model"] == "elec2:1"
        assert first["score"] > first["baseline"]
        version = project.model_version("elec2@champion")
        assert version.version == 1 and version.dataset_hash == first["snapshot"]
        assert version.metrics["gate"]["blessed"] is True
        assert {row["slice"] for row in version.metrics["slices"]} == {"(all)", "feat_1"}
        assert set(version.metrics["candidates"]) == {"baseline", "linear",
                                                      "hist_gradient_boosting"}

        onnx = version.metrics["onnx"]
        assert onnx["reason"]  # exported, or why not (e.g. no converter for the family)
        exporting = project.lineage.list_pipeline_runs(name="elec2-export")[0].steps[0]
        assert {"name": "model", "sha256": version.artifact_sha256} in exporting.inputs

        second = run_standard(project, executor="inline", progress=False)
        assert second["ran"] == [] and "train_candidate" in second["cached"]
        # same data, code, parameters and seed: the same model bytes
        assert project.model_version("elec2:2").artifact_sha256 == version.artifact_sha256
        # lineage: the registered bytes are the training step's output, so the model
        # walks back to its split, validation and data snapshot
        chain = project.lineage.lineage(version.artifact_sha256)
        assert [step.step for step in chain] == ["snapshot_data", "validate_data",
                                                 "split_data", "train_candidate"]


def test_a_batch_with_anomalies_stops_before_training(elec2_project: Path):
    from tidal.data import infer_schema, save_schema

    schema = infer_schema(elec2_project / "elec2.csv", target="target")
    save_schema(schema, elec2_project / "schema.yaml")
    frame = pd.read_csv(elec2_project / "elec2.csv")
    frame.loc[:9, "feat_2"] = 7.5  # far outside the reviewed range [0, 1]
    frame.to_csv(elec2_project / "elec2.csv", index=False)
    with tidal.Project(elec2_project) as project:
        with pytest.raises(StepFailedError, match="out_of_range.*feat_2"):
            run_standard(project, executor="inline", progress=False)
        assert project.list_models() == []


def test_a_misspelt_allowed_anomaly_is_refused_before_training(elec2_project: Path):
    from tidal.core.errors import ConfigError

    config = (elec2_project / "tidal.toml").read_text()
    (elec2_project / "tidal.toml").write_text(
        config.replace("[pipeline]", '[pipeline]\nallow_anomalies = ["out_of_rnage"]', 1))
    with tidal.Project(elec2_project) as project:
        with pytest.raises(ConfigError, match="'out_of_rnage'.*known: empty_batch"):
            run_standard(project, executor="inline", progress=False)
        assert project.list_models() == []


def test_a_changed_target_under_a_champion_is_refused_before_training(elec2_project: Path):
    from tidal.core.errors import ValidationError

    with tidal.Project(elec2_project) as project:
        project.register_model("elec2", {"w": 1}, metrics={"overall": {"accuracy": 0.8}})
        project.set_alias("elec2", "champion", 1)
    config = (elec2_project / "tidal.toml").read_text()
    (elec2_project / "tidal.toml").write_text(  # a regression on another column now
        config.replace('target = "target"', 'target = "feat_2"'))
    with tidal.Project(elec2_project) as project:
        with pytest.raises(ValidationError, match="without 'rmse'.*target or the task"):
            run_standard(project, executor="inline", progress=False)
        assert project.model_version("elec2:latest").version == 1  # nothing trained


def only_linear(project_dir: Path) -> str:
    """Make the linear model the only candidate; returns the new tidal.toml text."""
    config = (project_dir / "tidal.toml").read_text().replace(
        'candidates = ["linear", "hist_gradient_boosting"]', 'candidates = ["linear"]')
    (project_dir / "tidal.toml").write_text(config)
    return config


def test_a_linear_model_is_exported_to_onnx_and_traced(elec2_project: Path):
    only_linear(elec2_project)
    with tidal.Project(elec2_project) as project:
        summary = run_standard(project, executor="inline", progress=False)
        assert summary["chosen"] == "linear"
        onnx = summary["onnx"]
        assert onnx["exported"] and onnx["max_difference"] <= 1e-5
        assert len(project.artifacts.get_bytes(onnx["sha256"])) == onnx["size"]
        # the export step consumed the registered model's bytes: traced to the data
        exporting = project.lineage.list_pipeline_runs(name="elec2-export")[0].steps[0]
        model = next(i["sha256"] for i in exporting.inputs if i["name"] == "model")
        assert model == project.model_version("elec2:1").artifact_sha256
        assert project.lineage.lineage(model)[0].step == "snapshot_data"

    # export_onnx = false: no export stage, the model is served natively
    (elec2_project / "tidal.toml").write_text(
        (elec2_project / "tidal.toml").read_text().replace(
            "[pipeline]\n", "[pipeline]\nexport_onnx = false\nseed = 1\n"))
    with tidal.Project(elec2_project) as project:
        summary = run_standard(project, executor="inline", progress=False)
        assert not summary["onnx"]["exported"] and "export_onnx" in summary["onnx"]["reason"]
        assert len(project.lineage.list_pipeline_runs(name="elec2-export")) == 1
        assert project.model_version(summary["model"]).metrics["onnx"] == summary["onnx"]


def test_a_search_budget_tunes_the_candidate_and_changes_only_training(elec2_project: Path):
    config = only_linear(elec2_project)
    with tidal.Project(elec2_project) as project:
        plain = run_standard(project, executor="inline", progress=False)
        assert project.load_model("elec2:1").named_steps["model"].C == 1.0

    (elec2_project / "tidal.toml").write_text(config + "search_budget = 4\n")
    with tidal.Project(elec2_project) as project:
        tuned = run_standard(project, executor="inline", progress=False)
        # the data steps are reused; the linear candidate is searched, the baseline is not
        assert {"snapshot_data", "validate_data", "split_data",
                "train_candidate"} <= set(tuned["cached"])
        assert "train_candidate#2" in tuned["ran"]
        searched = project.load_model("elec2:2").named_steps["model"].C
        assert searched != 1.0  # a draw from the search space, refitted on all rows
        assert tuned["pipeline_run"] != plain["pipeline_run"]


def test_a_moved_project_keeps_its_cache(elec2_project: Path, tmp_path: Path):
    import shutil

    with tidal.Project(elec2_project) as project:
        run_standard(project, executor="inline", progress=False)
    moved = shutil.move(elec2_project, tmp_path.parent / f"{tmp_path.name}-moved")
    with tidal.Project(moved) as project:
        again = run_standard(project, executor="inline", progress=False)
        assert again["ran"] == [] and "snapshot_data" in again["cached"]


def test_the_gate_scores_the_champion_on_the_candidates_test_rows(elec2_project: Path):
    """Under drift the champion's own test score is stale: the gate scores it on the new
    test rows it never trained on, and compares the candidate's score on the same rows."""
    from tidal.data.splits import split
    from tidal.runtime.native import load_native

    with tidal.Project(elec2_project) as project:
        run_standard(project, executor="inline", progress=False)
        champion = project.model_version("elec2@champion")
        later = pd.read_csv(DATA / "elec2.csv.gz").iloc[20_000:26_000].reset_index(drop=True)
        later["t"] = pd.Timestamp("1997-06-01") + pd.to_timedelta(
            [30 * i for i in range(len(later))], unit="min")
        later.to_csv(elec2_project / "later.csv", index=False)
        second = run_standard(project, executor="inline", progress=False, source="later.csv")

        gate = project.model_version(second["model"]).metrics["gate"]
        check = next(c for c in gate["checks"] if c["check"] == "champion_overall")
        model = load_native(project.artifacts.get_bytes(champion.artifact_sha256))
        test = later.iloc[split(later, target="target", time_column="t",
                                task="classification").test_index]
        features = [f"feat_{i}" for i in range(1, 7)]
        expected = float((model.predict(test[features]) == test["target"]).mean())
        assert check["champion"] == pytest.approx(expected)
        assert check["champion"] != pytest.approx(champion.metrics["overall"]["accuracy"])
        assert f"both on the {len(test)} test rows the champion never saw" in check["message"]
        assert check["value"] == pytest.approx(project.model_version(second["model"])
                                               .metrics["overall"]["accuracy"])


def test_a_vetoed_model_is_registered_but_not_exported(elec2_project: Path):
    config = elec2_project / "tidal.toml"
    config.write_text(config.read_text().replace(  # no model reaches 0.99 on each half
        "bins = [0, 0.5, 1.0]}", "bins = [0, 0.5, 1.0], min = 0.99}"))
    with tidal.Project(elec2_project) as project:
        summary = run_standard(project, executor="inline", progress=False)
        assert summary["status"] == "vetoed"
        assert not summary["onnx"]["exported"] and "vetoed" in summary["onnx"]["reason"]
        assert project.lineage.list_pipeline_runs(name="elec2-export") == []
