"""Per-segment models in the standard pipeline, on real bike-sharing data (regression with
its real missing values in ``weekday`` and ``weathersit``), split by date."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import tidal
from tidal.core.errors import ValidationError
from tidal.train.segments import SegmentedModel
from tidal.train.standard import run_standard

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _bike_project(folder: Path, *, segments: str, extra: str = "") -> Path:
    frame = pd.read_csv(DATA / "bike_sharing_hourly.csv.gz")
    frame.drop(columns=["casual", "registered"]).to_csv(folder / "bike.csv", index=False)
    (folder / "tidal.toml").write_text(
        f'[data]\ntarget = "cnt"\ntimestamp = "dteday"\nsegments = {segments}\n'
        '[pipeline]\nsource = "bike.csv"\nmodel = "bike"\ncandidates = ["linear"]\n'
        f'slices = [{{column = "season"}}]\n{extra}')
    return folder


def test_per_hour_linear_models_beat_one_linear_model_and_route_by_segment(tmp_path: Path):
    folder = _bike_project(tmp_path, segments='["workingday", "hr"]')
    with tidal.Project(folder) as project:
        summary = run_standard(project, executor="process", progress=False)
        # rentals by hour are far from linear: one linear model per (workingday, hour)
        # must beat the global linear model by a wide margin
        assert summary["chosen"] == "segmented" and summary["status"] == "blessed"
        assert summary["candidates"]["segmented"] < 0.9 * summary["candidates"]["linear"]
        levels = summary["segments"]["levels"]
        assert levels[0] == {"columns": ["workingday"], "trained": 2, "untrained": 0}
        assert levels[1]["trained"] + levels[1]["untrained"] == 48
        assert levels[1]["trained"] >= 24  # every working-day hour has ≥ 200 rows

        version = project.model_version("bike@champion")
        assert version.metrics["chosen"]["family"] == "segmented"
        assert version.metrics["onnx"]["exported"] is False
        assert {i["name"] for i in version.signature["inputs"]} >= {"hr", "workingday",
                                                                     "temp", "weathersit"}
        model = project.load_model("bike@champion")  # hash-verified
        assert isinstance(model, SegmentedModel)
        rows = pd.read_csv(folder / "bike.csv").head(200)
        served = model.route(rows)
        assert all(key[0] == workingday for key, workingday in
                   zip(served, rows["workingday"], strict=True))
        assert model.predict(rows).shape == (200,)

        # the segmented model's lineage reaches the data snapshot through both stages
        chain = [step.step for step in project.lineage.lineage(version.artifact_sha256)]
        assert chain[0] == "snapshot_data" and chain[-1] == "assemble_segments"
        assert "plan_segment_training" in chain and "fit_segment_part" in chain

        again = run_standard(project, executor="process", progress=False)
        assert again["ran"] == []
        assert project.model_version("bike:2").artifact_sha256 == version.artifact_sha256


def test_segments_that_do_not_help_leave_the_global_model_in_place(tmp_path: Path):
    # a model per season is fitted on a quarter of the rows and gains little over one
    # model with temperature as a feature: within the tolerance (20 rentals an hour of
    # RMSE) the simpler global model is kept, and the summary says why
    folder = _bike_project(tmp_path, segments='["season"]',
                           extra="[pipeline.gate]\nsimpler_tolerance = 20.0\n")
    with tidal.Project(folder) as project:
        summary = run_standard(project, executor="inline", progress=False)
        assert summary["chosen"] == "linear"
        assert "Per-segment linear models do not beat it" in summary["why"]
        assert "segmented" in summary["candidates"]


def test_unknown_segment_columns_and_families_are_refused_before_any_work(tmp_path: Path):
    folder = _bike_project(tmp_path, segments='["store"]')
    with tidal.Project(folder) as project, pytest.raises(ValidationError, match="store"):
        run_standard(project, executor="inline", progress=False)
    folder = _bike_project(tmp_path, segments='["hr"]',
                           extra='segment_family = "deep_net"\n')
    with tidal.Project(folder) as project:
        with pytest.raises(ValidationError, match="deep_net"):
            run_standard(project, executor="inline", progress=False)
        assert project.lineage.list_pipeline_runs() == []
