"""The main job on the real Elec2 data: a tracked run and a champion, version 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.demo import run_demo
from tidal.project import Project

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (DATA / "elec2.csv.gz").is_file(),
                    reason="shared/data is not beside the checkout")
def test_demo_trains_tracks_and_registers_the_champion(tmp_path: Path):
    project = Project(tmp_path)
    summary = run_demo(project, DATA, quiet=True)

    version = project.model_version("elec2@champion")
    assert (version.version, summary["version"]) == (1, 1)
    run = project.get_run(summary["run_id"])
    assert run.status == "FINISHED"
    assert run.metric("accuracy") > run.metric("baseline_accuracy") + 0.05
    assert version.run_id == run.id and version.dataset_hash == summary["dataset_sha256"]
    assert [a.name for a in run.artifacts] == ["data/train.parquet"]
    curve = project.tracking.metric_history(run.id, "valid_log_loss")
    assert len(curve) == 200 and curve[-1].value < curve[0].value
    assert {i["name"] for i in version.signature["inputs"]} == {f"feat_{i}" for i in range(1, 7)}

    # a second run registers version 2 and moves the champion, with the move recorded
    run_demo(project, DATA, quiet=True)
    assert project.model_version("elec2@champion").version == 2
    moves = [e for e in project.model_history("elec2") if e.kind == "alias_set"]
    assert [m.payload["previous_version"] for m in moves] == [None, 1]
