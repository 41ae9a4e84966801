"""The main job on the real Elec2 data: a demo project, the standard pipeline, a champion,
and a second run served from the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

import tidal
from tidal.demo import run_demo

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (DATA / "elec2.csv.gz").is_file(),
                    reason="shared/data is not beside the checkout")
def test_demo_runs_the_standard_pipeline_and_a_rerun_is_cached(tmp_path: Path):
    folder = tmp_path / "demo"
    first = run_demo(folder, DATA, quiet=True)
    assert (folder / "tidal.toml").is_file() and (folder / "schema.yaml").is_file()
    assert first["model"] == "elec2:1" and first["status"] == "blessed"
    assert first["score"] > first["baseline"] + 0.05  # time-split accuracy vs majority
    assert set(first["candidates"]) >= {"baseline", "linear", "random_forest",
                                        "hist_gradient_boosting"}

    with tidal.Project(folder) as project:
        champion = project.model_version("elec2@champion")
        assert champion.version == 1 and champion.dataset_hash == first["snapshot"]
        slices = {(row["slice"], row["value"]) for row in champion.metrics["slices"]}
        assert ("weekday", "Sun") in slices and ("feat_1", "[0.75, 1]") in slices
        # the weekday is a slice, not a feature; the time orders the split
        assert {i["name"] for i in champion.signature["inputs"]} == {
            f"feat_{i}" for i in range(1, 7)}
        run = project.get_run(champion.run_id)
        assert run.status == "FINISHED"
        assert run.metric(f"{first['chosen']}.accuracy") == pytest.approx(first["score"])

    # the champion was served one production day through the real HTTP server
    served = first["served"]
    assert served["requests"] == 48 and served["logged"] == 48
    assert served["accuracy"] > 0.5

    second = run_demo(folder, DATA, quiet=True, serve=False)
    assert second["ran"] == [] and second["model"] == "elec2:2"
    with tidal.Project(folder) as project:
        assert (project.model_version("elec2:2").artifact_sha256
                == project.model_version("elec2:1").artifact_sha256)
