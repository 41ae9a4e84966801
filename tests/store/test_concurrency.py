"""Several processes writing to one store at once: nothing lost, no "database is locked".

The writers are real operating-system processes, started together, each logging runs,
params and metric points and registering versions of one shared model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

WORKERS = 4
RUNS_PER_WORKER = 15
POINTS_PER_RUN = 200

WORKER = textwrap.dedent(
    """
    import json, sys
    from tidal.project import Project

    url, artifacts, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    project = Project(artifacts, store_url=url, artifact_root=artifacts, actor="w" + str(worker))
    versions = []
    for index in range({runs}):
        with project.start_run("concurrent", params={{"worker": worker, "index": index}}) as run:
            for step in range({points}):
                run.log_metric("loss", step / {points}, step=step)
                if step % 50 == 0:
                    run.flush()  # many small transactions, to maximise contention
        if index % 5 == 0:
            versions.append(project.register_model("shared", {{"w": worker}}).version)
    print(json.dumps({{"worker": worker, "versions": versions}}))
    """
).format(runs=RUNS_PER_WORKER, points=POINTS_PER_RUN)


def test_concurrent_writers_lose_nothing(store_url, tmp_path: Path):
    from tidal.project import Project

    # the store is brand new: the workers also race to create its schema
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), store_url, str(tmp_path / "artifacts"), str(worker)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for worker in range(WORKERS)
    ]
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "locked" not in err.lower()

    project = Project(tmp_path, store_url=store_url, artifact_root=str(tmp_path / "artifacts"))
    runs = project.search_runs(experiments=["concurrent"], max_results=1000)
    assert len(runs) == WORKERS * RUNS_PER_WORKER
    assert {run.status for run in runs} == {"FINISHED"}
    pairs = {(run.params["worker"], run.params["index"]) for run in runs}
    assert len(pairs) == WORKERS * RUNS_PER_WORKER
    for run in runs[:5]:
        assert len(project.tracking.metric_history(run.id, "loss")) == POINTS_PER_RUN

    versions = sorted(v for out, _ in outputs for v in json.loads(out)["versions"])
    expected = WORKERS * len(range(0, RUNS_PER_WORKER, 5))
    assert versions == list(range(1, expected + 1)), "version numbers must be unique and dense"
    assert len(project.model_history("shared")) == expected
    project.close()
