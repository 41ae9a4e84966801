"""Batch scoring against the trained project (``scoring`` in conftest.py): real Parquet
and CSV files, the real prediction log, the command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tidal.batch.job import score
from tidal.core.errors import ValidationError
from tidal.serve.compaction import read_predictions

FEATURES = [f"feat_{i}" for i in range(1, 7)]


def test_a_table_is_scored_like_the_server_would_and_logged_as_batch(scoring):
    from tidal.runtime.inputs import check_columns
    from tidal.runtime.loaded import load_version

    project, rows, tmp = scoring
    rows.to_parquet(tmp / "in.parquet")
    result = score(project, "elec2", tmp / "in.parquet", tmp / "out.parquet",
                   keys=["meter"], partition_rows=1_000, log_rows=300)
    assert (result.rows, result.scored, result.rejected) == (2_500, 2_500, 0)
    assert result.runtime == "onnx" and result.rejects is None
    out = pq.read_table(tmp / "out.parquet").to_pandas()
    # on two worker processes: the same predictions, in the same order
    parallel = score(project, "elec2", tmp / "in.parquet", tmp / "out2.parquet",
                     keys=["meter"], partition_rows=400, workers=2)
    again = pq.read_table(tmp / "out2.parquet").to_pandas()
    assert parallel.scored == 2_500 and again["meter"].tolist() == out["meter"].tolist()
    assert (again["label"] == out["label"]).all()
    assert np.allclose(again["proba_1"], out["proba_1"])
    assert list(out.columns) == ["meter", "label", "proba_0", "proba_1", "model_version",
                                 "request_id", "row"]
    assert out["meter"].tolist() == rows["meter"].tolist()  # every row, in order
    model = load_version(project.artifacts, project.model_version("elec2:1"))
    expected = model.predict(check_columns(model.signature,
                                           {f: rows[f].to_numpy() for f in FEATURES}))
    assert (out["label"].to_numpy() == expected["label"]).all()
    assert np.allclose(out[["proba_0", "proba_1"]].to_numpy(), expected["probabilities"])
    assert (out["model_version"] == 1).all()
    # the log holds each prediction once, route batch, found by its request id and row
    settings = project.settings
    logged = read_predictions(settings.monitor.compacted_path(
        settings.project_dir, settings.serve.log_path(settings.project_dir)), "elec2"
    ).to_pandas()
    logged = logged[logged["request_id"].str.startswith(result.job)]
    assert len(logged) == 2_500 and set(logged["route"]) == {"batch"}
    assert not logged.duplicated(["request_id", "row"]).any()
    assert logged["request_id"].nunique() == out["request_id"].nunique() == 4 + 4 + 2
    joined = out.merge(logged, on=["request_id", "row"], validate="one_to_one")
    assert (joined["label"] == joined["out.label"]).all()
    assert np.allclose(joined["proba_1"], [p[1] for p in joined["out.probabilities"]])
    assert np.allclose(joined["in.feat_2"], rows.set_index("meter").loc[joined["meter"],
                                                                       "feat_2"])
    assert (joined["version"] == 1).all()


def test_bad_rows_go_to_the_rejects_file_with_their_reason(scoring):
    project, rows, tmp = scoring
    rows["feat_3"] = rows["feat_3"].astype(object)
    rows.loc[[7, 1_500], "feat_3"] = "n/a"  # read as missing, where the model needs a value
    rows.loc[2_000, "feat_1"] = np.inf
    rows.to_csv(tmp / "in.csv", index=False)
    result = score(project, "elec2", tmp / "in.csv", tmp / "out.parquet",
                   keys=["meter"], partition_rows=800)
    assert (result.scored, result.rejected) == (2_497, 3)
    out = pq.read_table(tmp / "out.parquet").to_pandas()
    assert not {"m7", "m1500", "m2000"} & set(out["meter"])
    rejects = pd.read_csv(result.rejects)
    assert rejects["row"].tolist() == [7, 1_500, 2_000]
    assert all("feat_3" in reason for reason in rejects["reason"][:2])
    assert "feat_1" in rejects["reason"][2]
    assert json.loads(rejects["values"][0])["feat_3"] is None  # missing in the input
    assert json.loads(rejects["values"][0])["feat_2"] == pytest.approx(rows["feat_2"][7])


def test_one_word_in_a_numeric_csv_column_rejects_only_its_row(scoring):
    """The CSV reader makes a column with one "abc" text; its numbers still score."""
    project, rows, tmp = scoring
    rows["feat_3"] = rows["feat_3"].astype(object)
    rows.loc[1_234, "feat_3"] = "abc"
    rows.to_csv(tmp / "in.csv", index=False)
    result = score(project, "elec2", tmp / "in.csv", tmp / "out.parquet",
                   keys=["meter"], partition_rows=800)
    assert (result.scored, result.rejected) == (len(rows) - 1, 1)
    rejects = pd.read_csv(result.rejects)
    assert rejects["row"].tolist() == [1_234]
    assert "'abc'" in rejects["reason"][0] and "at row 0" not in rejects["reason"][0]
    out = pq.read_table(tmp / "out.parquet").to_pandas()
    assert set(out["meter"]) == set(rows["meter"]) - {"m1234"}


def test_inputs_and_outputs_of_the_wrong_kind_are_refused_before_anything_is_logged(
        scoring):
    from tidal.core.errors import ValidationError

    project, rows, tmp = scoring
    (tmp / "empty.csv").write_bytes(b"")
    with pytest.raises(ValidationError, match="empty.csv cannot be read as CSV"):
        score(project, "elec2", tmp / "empty.csv", tmp / "out.parquet")
    rows.to_parquet(tmp / "in.parquet")
    (tmp / "folder.parquet").mkdir()
    for output, rejects in ((tmp / "folder.parquet", None),
                            (tmp / "out.parquet", tmp / "folder.parquet")):
        with pytest.raises(ValidationError, match="is a folder"):
            score(project, "elec2", tmp / "in.parquet", output, rejects=rejects)
    settings = project.settings
    logged = settings.monitor.compacted_path(settings.project_dir,
                                             settings.serve.log_path(settings.project_dir))
    assert not logged.exists() or not any(logged.rglob("*.parquet"))


def test_a_job_that_fails_midway_leaves_no_output(scoring):
    from tidal.runtime.faults import Crashing

    project, rows, tmp = scoring
    stable = project.model_version("elec2:1")
    crashing = project.register_model("elec2", Crashing(project.load_model("elec2:1"),
                                                        "feat_2", rows["feat_2"][1_800]),
                                      signature=stable.signature)
    project.set_deployment("elec2", crashing.ref)
    rows.to_parquet(tmp / "in.parquet")
    (tmp / "out.parquet").write_bytes(b"yesterday's output")
    with pytest.raises(RuntimeError, match="injected crash"):
        score(project, "elec2", tmp / "in.parquet", tmp / "out.parquet",
              partition_rows=500)
    assert (tmp / "out.parquet").read_bytes() == b"yesterday's output"  # untouched
    assert sorted(p.name for p in tmp.iterdir()) == ["in.parquet", "out.parquet", "project"]


def test_the_command_line_scores_reports_and_says_when_rows_were_rejected(scoring):
    project, rows, tmp = scoring
    rows.loc[3, "feat_4"] = None
    rows.to_parquet(tmp / "in.parquet")

    def tidal_score(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tidal", "score", "elec2", *args, "--project",
             str(project.settings.project_dir)], capture_output=True, text=True,
            timeout=300, env={**os.environ})

    done = tidal_score("--input", str(tmp / "in.parquet"), "--output",
                       str(tmp / "out.parquet"), "--key", "meter", "--json")
    assert done.returncode == 1, done.stderr  # some rows were rejected
    summary = json.loads(done.stdout)
    assert (summary["scored"], summary["rejected"]) == (2_499, 1)
    assert "1 row(s) rejected" in done.stderr
    missing = tidal_score("--input", str(tmp / "nope.parquet"), "--output",
                          str(tmp / "x.parquet"))
    assert missing.returncode == 3 and "no input" in missing.stderr
    assert "Traceback" not in missing.stderr
    rows.drop(columns=["feat_5"]).to_parquet(tmp / "short.parquet")
    short = tidal_score("--input", str(tmp / "short.parquet"), "--output",
                        str(tmp / "x.parquet"))
    assert short.returncode == 2 and "feat_5" in short.stderr
    assert not (tmp / "x.parquet").exists()


def test_triage_keeps_the_rows_that_need_people_and_can_queue_them(scoring):
    from tidal.batch.job import Triage
    from tidal.core.errors import ValidationError

    project, rows, tmp = scoring
    rows.to_parquet(tmp / "in.parquet")
    top = Triage(by="proba_1", top=25, output=tmp / "riskiest.parquet", review=True)
    result = score(project, "elec2", tmp / "in.parquet", tmp / "out.parquet",
                   keys=["meter"], partition_rows=600, triage=top)
    everything = pq.read_table(tmp / "out.parquet").to_pandas()
    riskiest = pq.read_table(tmp / "riskiest.parquet").to_pandas()
    expected = everything.nlargest(25, "proba_1")  # across every partition
    assert result.triaged == 25 and sorted(riskiest["meter"]) == sorted(expected["meter"])
    queued = project.review.items("elec2")
    assert len(queued) == 25 and all("top 25 by proba_1" in i.reason for i in queued)
    # a reviewer sees what the model saw, and what it answered
    assert all(set(i.inputs) == set(FEATURES) for i in queued)
    assert all(set(i.outputs) == {"label", "proba_0", "proba_1"} for i in queued)
    assert {(i.request_id, i.row) for i in queued} == set(
        zip(riskiest["request_id"], riskiest["row"], strict=True))
    above = score(project, "elec2", tmp / "in.parquet", tmp / "out2.parquet",
                  triage=Triage(by="proba_1", above=0.9, output=tmp / "sure.parquet"))
    assert above.triaged == int((everything["proba_1"] >= 0.9).sum()) > 0
    for wrong in (Triage(by="proba_1", output=tmp / "x.parquet"),
                  Triage(by="nope", top=3, output=tmp / "x.parquet")):
        with pytest.raises(ValidationError):
            score(project, "elec2", tmp / "in.parquet", tmp / "out3.parquet", triage=wrong)
    assert not (tmp / "out3.parquet").exists() and not (tmp / "x.parquet").exists()
    # an input column named like an output column would make an unreadable output
    rows.rename(columns={"meter": "label"}).to_parquet(tmp / "labelled.parquet")
    with pytest.raises(ValidationError, match="'label' would clash"):
        score(project, "elec2", tmp / "labelled.parquet", tmp / "out4.parquet")


def test_triaged_rows_reach_a_webhook_and_a_failed_delivery_is_reported(
        scoring, receiver_factory):
    from tidal.batch.job import Triage

    project, rows, tmp = scoring
    rows.to_parquet(tmp / "in.parquet")
    receiver = receiver_factory()
    result = score(project, "elec2", tmp / "in.parquet", tmp / "out.parquet",
                   keys=["meter"], partition_rows=600,
                   triage=Triage(by="proba_1", top=1_500, output=tmp / "risky.parquet",
                                 webhook=receiver.url))
    assert result.triaged == 1_500 and result.webhook_error is None
    assert [(b["part"], b["parts"]) for b in receiver.bodies] == [(1, 2), (2, 2)]
    assert {b["kind"] for b in receiver.bodies} == {"batch.triage"}
    sent = [row for body in receiver.bodies for row in body["rows"]]
    risky = pq.read_table(tmp / "risky.parquet").to_pandas()
    assert sorted(r["meter"] for r in sent) == sorted(risky["meter"])
    assert set(sent[0]) >= {"meter", "label", "proba_1", "request_id", "row", *FEATURES}
    refusing = receiver_factory(failures=10, status=400)
    failed = score(project, "elec2", tmp / "in.parquet", tmp / "out2.parquet",
                   triage=Triage(by="proba_1", above=0.9, output=tmp / "sure.parquet",
                                 webhook=refusing.url))
    assert "HTTP 400" in failed.webhook_error and refusing.attempts == 1
    assert (tmp / "sure.parquet").exists() and (tmp / "out2.parquet").exists()


def test_partitions_scored_as_ray_tasks_match_this_process(scoring):
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed (optional extra: pip install 'tidal-ml[ray]')")
    project, rows, tmp = scoring
    rows.to_parquet(tmp / "in.parquet")
    here = score(project, "elec2", tmp / "in.parquet", tmp / "here.parquet", keys=["meter"],
                 partition_rows=500)
    try:
        on_ray = score(project, "elec2", tmp / "in.parquet", tmp / "ray.parquet",
                       keys=["meter"], partition_rows=500, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert (on_ray.scored, on_ray.partitions) == (here.scored, 5)
    a, b = (pq.read_table(tmp / name).to_pandas() for name in ("here.parquet", "ray.parquet"))
    assert a["meter"].tolist() == b["meter"].tolist()
    assert (a["label"] == b["label"]).all() and np.allclose(a["proba_1"], b["proba_1"])
    with pytest.raises(ValidationError, match="unknown executor"):
        score(project, "elec2", tmp / "in.parquet", tmp / "x.parquet", executor="dask",
              workers=2, partition_rows=500)


def test_the_monitors_see_a_batch_job_like_online_traffic(scoring):
    from tidal.core.clock import ManualClock
    from tidal.monitor.job import Monitor
    from tidal.project import Project

    project, rows, tmp = scoring
    folder = project.settings.project_dir
    toml = folder / "tidal.toml"
    toml.write_text(toml.read_text() + '[monitor]\nwindow = "1h"\nlateness = 0\n')
    clock = ManualClock(1_800_000_000.0 + 600)  # ten minutes into an hour
    rows.loc[:99, "feat_3"] = np.nan  # missing: rejected, never seen by the monitors
    rows.to_parquet(tmp / "in.parquet")
    with Project(folder, clock=clock) as timed:
        score(timed, "elec2", tmp / "in.parquet", tmp / "out.parquet", partition_rows=1_000)
        clock.advance(3 * 3600)
        with Monitor(timed, sinks=[]) as monitor:
            run = monitor.run(["elec2"])
        windows = [w for w in run.deployments[0].windows if w.rows]
        assert [(w.start, w.rows, w.version) for w in windows] == \
            [(1_800_000_000.0, 2_400, 1)]
        drift = timed.monitoring.series("elec2", "drift", "feat_1")
        assert [p.window_start for p in drift] == [windows[0].start]
        # labels name batch predictions by request id and row, as online ones
        from tidal.store.feedback import FeedbackItem

        out = pd.read_parquet(tmp / "out.parquet")  # keys: every column not an input
        assert len(out) == 2_400 and "target" in out.columns
        timed.feedback.add([FeedbackItem("elec2", int(t), request_id=r, row=int(n))
                            for r, n, t in zip(out["request_id"], out["row"],
                                               out["target"], strict=True)],
                           source="file", actor="t", now=clock.now())
        clock.advance(86_400)  # past the label delay
        with Monitor(timed, sinks=[]) as monitor:
            monitor.run(["elec2"])
        accuracy = timed.monitoring.series("elec2", "quality", "accuracy")
        assert [p.window_start for p in accuracy] == [windows[0].start]
        assert accuracy[0].value == pytest.approx((out["label"] == out["target"]).mean())
        labelled = timed.monitoring.series("elec2", "labelled", "")
        assert [p.value for p in labelled] == [1.0]
