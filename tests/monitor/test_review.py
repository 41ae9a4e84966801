"""The human review queue: routing by rule in the window job, claims that never collide,
answers that become feedback, agreement between reviewers, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from monitor_harness import ELEC2_FEATURES, elec2, elec2_time, log_predictions

import tidal
from tidal.core.clock import ManualClock
from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.monitor.job import Monitor
from tidal.runtime.loaded import load_version
from tidal.store.review import NewReviewItem

DAY = 86_400.0
ROWS = range(17_424 - 2 * 48, 17_424)
SIGNATURE = {"inputs": [{"name": f, "datatype": "FP64", "nullable": True}
                        for f in ELEC2_FEATURES],
             "outputs": [{"name": "label", "datatype": "INT64"},
                         {"name": "probabilities", "datatype": "FP64"}],
             "task": "classification", "classes": [0, 1]}


@pytest.fixture
def reviewed(tmp_path: Path) -> Path:
    """Two days of Elec2 served by a logistic regression, shadowed by a model that always
    says 1, routed with every rule on."""
    from sklearn.dummy import DummyClassifier

    from tidal.train.candidates import make_candidate

    frame = elec2().iloc[ROWS.start - 2000:ROWS.start]
    (tmp_path / "tidal.toml").write_text(
        '[monitor]\nwindow = "1d"\nlateness = 0\nmin_rows = 40\n'
        '[monitor.review]\nconfidence_below = 0.6\nsample_rate = 0.05\nmax_per_window = 30\n'
        'reviewers_per_item = 2\n')
    stable = make_candidate("linear", "classification", ELEC2_FEATURES, [], seed=0)
    stable.fit(frame[ELEC2_FEATURES], frame["target"])
    always_one = DummyClassifier(strategy="constant", constant=1).fit(
        frame[ELEC2_FEATURES], frame["target"])
    served = elec2().iloc[ROWS.start:ROWS.stop]
    times = elec2_time(ROWS)
    with tidal.Project(tmp_path, clock=ManualClock(float(times[-1]) + DAY)) as project:
        project.register_model("elec2", stable, signature=SIGNATURE)
        project.register_model("elec2", always_one, signature=SIGNATURE)
        project.set_deployment("elec2", "elec2:1", shadow=2)
        folder = project.settings.serve.log_path(tmp_path)
        ids = log_predictions(folder, "elec2", load_version(
            project.artifacts, project.model_version("elec2:1")), served, times)
        log_predictions(folder, "elec2", load_version(
            project.artifacts, project.model_version("elec2:2")), served, times,
            route="shadow", request_ids=ids)
        with Monitor(project, sinks=[]) as monitor:
            monitor.run()
    return tmp_path


def test_the_window_job_routes_predictions_by_rule(reviewed: Path):
    with tidal.Project(reviewed) as project:
        items = project.review.items("elec2", limit=1000)
    reasons = {i.reason for i in items}
    assert {"low_confidence", "shadow_disagreement"} <= reasons
    assert len({(i.request_id, i.row) for i in items}) == len(items)  # each once
    for item in items:
        assert set(item.inputs) == set(ELEC2_FEATURES) and item.status == "open"
        if item.reason == "low_confidence":
            assert max(item.outputs["probabilities"]) < 0.6
        if item.reason == "shadow_disagreement":
            assert item.outputs["label"] == 0 and item.shadow_outputs["label"] == 1
        assert item.shadow_outputs is not None and item.shadow_outputs["version"] == 2
    # the least confident come first, and a window holds at most max_per_window
    assert len(items) <= 2 * 30


def test_claims_answers_feedback_and_agreement(reviewed: Path):
    from tidal.monitor.review import answer

    with tidal.Project(reviewed) as project:
        now = project.clock.now()
        first = project.review.claim_next("elec2", "ana", now=now)
        other = project.review.claim_next("elec2", "ben", now=now)
        assert first.id != other.id  # a claimed item is not handed out twice
        assert project.review.claim_next("elec2", "ana", now=now).id == first.id  # still ana's
        answer(project, first.id, "ana", label=1)
        with pytest.raises(ConflictError):
            answer(project, first.id, "ana", label=0)
        with pytest.raises(ValidationError):
            answer(project, first.id, "ben", label=1, unsure=True)
        # ben is handed back the item he holds; then ana's (two answers are wanted)
        assert project.review.claim_next("elec2", "ben", now=now).id == other.id
        answer(project, other.id, "ben", unsure=True, note="cannot tell")
        assert project.review.claim_next("elec2", "ben", now=now).id == first.id
        done = answer(project, first.id, "ben", label=0, familiar=False)
        assert (done.status, done.answers) == ("done", 2)
        # a lapsed claim goes back to the pool
        third = project.review.claim_next("elec2", "cy", now=now)
        assert project.review.claim_next("elec2", "dee", now=now + 901).id == third.id
        agreement = project.review.agreement("elec2")
        assert agreement["items"] == 1
        assert agreement["pairs"] == [{"reviewers": ["ana", "ben"], "items": 1,
                                       "agreement": 0.0}]
        assert {c["class"]: c["agreement"] for c in agreement["classes"]} == {"0": 0.0,
                                                                              "1": 0.0}
        labels = project.feedback.since("elec2")
        assert [(f.request_id, f.label, f.source, f.actor) for f in labels] == [
            (first.request_id, 1, "review", "ana"), (first.request_id, 0, "review", "ben")]


def test_predictions_in_an_alerting_slice_go_to_review(tmp_path: Path):
    """Labels show the model failing on one slice (every label there contradicts it) for
    two windows: that slice's quality_slice_drop fires, and the next window routes exactly
    that slice's predictions to people."""
    from tidal.store.feedback import FeedbackItem
    from tidal.train.candidates import make_candidate
    from tidal.train.evaluate import Slice, metrics, slice_table

    two_days = 2 * DAY
    first = ROWS.start - int((elec2_time([ROWS.start])[0] % two_days) // 1800)
    rows = range(first, first + 6 * 48)  # three whole windows of two days
    train, test = elec2().iloc[first - 3000:first - 1000], elec2().iloc[first - 1000:first]
    model = make_candidate("linear", "classification", ELEC2_FEATURES, [], seed=0)
    model.fit(train[ELEC2_FEATURES], train["target"])
    predicted = model.predict(test[ELEC2_FEATURES])
    # the version's test metrics, per slice, as a training run records them
    slices = {"feat_3": {"column": "feat_3", "bins": [0.0, 0.34, 1.0]}}
    tested = {"metric": "accuracy",
              "overall": metrics("classification", test["target"], predicted, None),
              "slices": slice_table("classification", test, test["target"], predicted,
                                    slices, np.ones(len(test), dtype=int), "accuracy")}
    (tmp_path / "tidal.toml").write_text(
        '[[pipeline.slices]]\ncolumn = "feat_3"\nbins = [0.0, 0.34, 1.0]\n'
        '[monitor]\nwindow = "2d"\nlateness = 0\nmin_rows = 20\nlabel_delay = 0\n'
        '[monitor.review]\nsample_rate = 0\nshadow_disagreement = false\n'
        'max_per_window = 1000\n')
    served = elec2().iloc[rows.start:rows.stop]
    times = elec2_time(rows)
    low = Slice.of(slices["feat_3"]).labels(served).to_numpy() == "[0, 0.34)"
    assert all(30 <= low[w * 96:(w + 1) * 96].sum() <= 66 for w in range(2)) and low[192:].any()
    clock = ManualClock(float(times[191]) + 1800)  # the first two windows are closed
    with tidal.Project(tmp_path, clock=clock) as project:
        project.register_model("elec2", model, signature=SIGNATURE, metrics=tested)
        project.set_deployment("elec2", "elec2:1")
        folder = project.settings.serve.log_path(tmp_path)
        loaded = load_version(project.artifacts, project.model_version("elec2:1"))
        ids = log_predictions(folder, "elec2", loaded, served.iloc[:192], times[:192])
        answers = loaded.predict({f: served[f].to_numpy()[:192] for f in ELEC2_FEATURES})
        # the model's answer where the slice is not low; its opposite where it is
        truth = np.where(low[:192], 1 - answers["label"], answers["label"])
        project.feedback.add([FeedbackItem("elec2", int(label), request_id=request_id)
                              for request_id, label in zip(ids, truth, strict=True)],
                             source="file", actor="t", now=clock.now())
        with Monitor(project, sinks=[]) as monitor:
            monitor.run()
            states = {(s.check, s.subject): s.state
                      for s in project.monitoring.states("elec2")}
            assert states[("quality_slice_drop", "feat_3=[0, 0.34)")] == "alert"
            assert states[("quality_slice_drop", "feat_3=[0.34, 1]")] == "ok"
            assert project.review.items("elec2") == []  # nothing alerted when they ran
            later = log_predictions(folder, "elec2", loaded, served.iloc[192:], times[192:])
            clock.set(float(times[-1]) + 1800)
            monitor.run()
        items = project.review.items("elec2", limit=1000)
    in_low = {request_id for request_id, is_low in zip(later, low[192:], strict=True)
              if is_low}
    assert {i.request_id for i in items} == in_low
    assert {i.reason for i in items} == {"alerting_slice"}


def test_items_are_queued_once(project):
    item = NewReviewItem("d", "r1", 0, 1.0, "sample", {"x": 1}, {"label": 0})
    assert project.review.add([item, item], now=1.0) == 1
    assert project.review.add([item], now=2.0) == 0
    assert len(project.review.items("d")) == 1


def test_two_monitors_queueing_the_same_items_both_succeed(project):
    items = [NewReviewItem("d", f"r{i}", 0, 1.0, "sample", {"x": i}, {"label": 0})
             for i in range(300)]
    with ThreadPoolExecutor(4) as pool:
        added = list(pool.map(lambda part: project.review.add(part, now=1.0),
                              [items, items[100:], items[:200], items]))
    assert sum(added) == 300  # each item inserted by exactly one of the writers
    assert len(project.review.items("d", limit=1000)) == 300


def test_an_answer_and_its_label_are_written_together_or_not_at_all(project):
    from tidal.store.review import answer_with_feedback

    project.review.add([NewReviewItem("d", "r1", 2, 1.0, "sample", {"x": 1}, {"label": 0}),
                        NewReviewItem("e", "r2", 0, 1.0, "sample", {"x": 1}, {"label": 0})],
                       now=1.0)
    first, other = project.review.items()
    for bad in (float("nan"), "x" * 1001, [1]):
        with pytest.raises(ValidationError, match="label"):
            answer_with_feedback(project.review, first.id, "ana", label=bad, now=2.0)
    with pytest.raises(NotFoundError):  # a server answers for its own deployments only
        answer_with_feedback(project.review, other.id, "ana", label=1, now=2.0, among=["d"])
    assert project.review.answers("d") == [] and project.feedback.count("d") == 0
    done = answer_with_feedback(project.review, first.id, "ana", label=1, now=2.0,
                                among=["d"])
    assert done.status == "done"
    assert [(f.request_id, f.row, f.label) for f in project.feedback.since("d")] == [
        ("r1", 2, 1)]
    with pytest.raises(ConflictError):  # the second answer fails whole: no second label
        answer_with_feedback(project.review, first.id, "ana", label=0, now=3.0)
    assert project.feedback.count("d") == 1


def _tidal(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDAL_PROJECT_DIR": str(folder), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "tidal", *args], env=env, text=True,
                            capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result


def test_the_review_command_line(reviewed: Path):
    listed = json.loads(_tidal(reviewed, "review", "list", "-d", "elec2", "--json").stdout)
    assert listed and listed[0]["status"] == "open"
    item = json.loads(_tidal(reviewed, "review", "next", "-d", "elec2", "-r", "ana",
                             "--json").stdout)
    shown = _tidal(reviewed, "review", "next", "-d", "elec2", "-r", "ana").stdout
    assert f"item {item['id']}" in shown and "feat_1" in shown and "shadow: label" in shown
    answered = json.loads(_tidal(reviewed, "review", "label", str(item["id"]), "1", "-r",
                                 "ana", "--unfamiliar", "--json").stdout)
    assert answered["answers"] == 1 and answered["status"] == "open"
    # the reviewed label is feedback; the unfamiliar case goes to the next test set
    out = reviewed / "labelled.parquet"
    _tidal(reviewed, "monitor", "labelled", "elec2", "--out", str(out))
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert [(r["_request_id"], r["target"], r["_set"]) for r in table] == [
        (item["request_id"], 1, "test")]
    report = json.loads(_tidal(reviewed, "review", "agreement", "-d", "elec2",
                               "--json").stdout)
    assert report == {"items": 0, "pairs": [], "classes": []}
    assert "agreement" in _tidal(reviewed, "review", "agreement", "-d", "elec2").stdout


def test_the_sample_rule_works_without_a_shadow(tmp_path: Path):
    import pyarrow as pa

    from tidal.core.config import ReviewSection
    from tidal.monitor.review import pick

    window = pa.table({"request_id": [f"r{i}" for i in range(2000)], "row": [0] * 2000,
                       "event_time": pa.array([10**12] * 2000, pa.int64()).cast(
                           pa.timestamp("us", tz="UTC")),
                       "in.x": [1.0] * 2000, "out.label": [1] * 2000})
    rules = ReviewSection(sample_rate=0.01, max_per_window=100)
    items = pick("d", window, window.select(["out.label"]), pa.table({}), rules)
    assert 5 <= len(items) <= 40 and {i.reason for i in items} == {"sample"}
    assert all(i.shadow_outputs is None for i in items)
    # chosen by request id: the same ones again
    assert [i.request_id for i in pick("d", window, window.select(["out.label"]), None,
                                       rules)] == [i.request_id for i in items]


def test_an_alerting_slice_larger_than_the_budget_gives_a_spread_of_it():
    import pyarrow as pa

    from tidal.core.config import ReviewSection
    from tidal.monitor.review import pick

    window = pa.table({"request_id": [f"r{i}" for i in range(2000)], "row": [0] * 2000,
                       "event_time": pa.array([10**12] * 2000, pa.int64()).cast(
                           pa.timestamp("us", tz="UTC")),
                       "in.x": [float(i) for i in range(2000)], "out.label": [1] * 2000})
    in_slice = np.arange(2000) >= 500
    rules = ReviewSection(sample_rate=0, max_per_window=10)
    items = pick("d", window, window.select(["out.label"]), None, rules, in_slice)
    rows = sorted(int(i.request_id[1:]) for i in items)
    assert len(rows) == 10 and all(r >= 500 for r in rows)
    assert rows[-1] - rows[0] > 500  # spread over the slice, not its first ten rows
    assert {i.reason for i in items} == {"alerting_slice"}
    off = ReviewSection(sample_rate=0, max_per_window=10, alerting_slices=False)
    assert pick("d", window, window.select(["out.label"]), None, off, in_slice) == []
