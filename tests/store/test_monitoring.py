"""The monitoring repository on SQLite and PostgreSQL: a window, its points, the alert
states it moves and their events land together, once."""

from __future__ import annotations

import pytest

from tidal.monitor.alerts import Rules, evaluate
from tidal.store.events import list_events
from tidal.store.monitoring import CheckPoint, NewWindow


def _points(start: float, value: float, rules: Rules) -> list[CheckPoint]:
    return [CheckPoint("elec2", "drift", "feat_4", start, start + 60, value,
                       rules.judge("drift", "feat_4", value)),
            CheckPoint("elec2", "rows", "", start, start + 60, 500.0, "none")]


def _record(project, start: float, value: float):
    rules = Rules()
    return project.monitoring.record_window(
        NewWindow("elec2", start, start + 60, 500, 480, 1, None), _points(start, value, rules),
        lambda points, before: evaluate(points, before, rules, now=start + 60),
        now=start + 60, actor="monitor")


def test_a_window_its_points_states_and_events_are_written_together(project):
    record, changes = _record(project, 0.0, 0.2)
    assert (record.rows, record.requests, record.version) == (500, 480, 1) and changes == []
    _, changes = _record(project, 60.0, 4.0)
    assert [(c.previous, c.state.state) for c in changes] == [("ok", "alert")]
    states = project.monitoring.states("elec2")
    assert [(s.check, s.subject, s.state, s.since) for s in states] == \
        [("drift", "feat_4", "alert", 120.0)]
    events = list_events(project.db, entity_type="deployment", entity_id="elec2")
    assert [e.kind for e in events] == ["monitor.alert"]
    assert events[0].payload["value"] == 4.0 and "feat_4" in events[0].reason
    assert [p.value for p in project.monitoring.series("elec2", "drift", "feat_4")] == \
        [0.2, 4.0]
    latest = {(p.check, p.subject): p for p in project.monitoring.latest_points("elec2")}
    assert latest[("drift", "feat_4")].window_end == 120.0
    assert latest[("rows", "")].level == "none"
    assert project.monitoring.last_window_end("elec2") == 120.0
    assert project.monitoring.last_window_end("other") is None
    assert project.monitoring.latest_window("elec2").start == 60.0  # the newest of two
    assert project.monitoring.latest_window("other") is None


def test_a_window_is_written_once(project):
    assert _record(project, 0.0, 4.0) is not None
    assert _record(project, 0.0, 4.0) is None  # a second monitor lost the race: no-op
    assert len(project.monitoring.windows("elec2")) == 1
    assert len(project.monitoring.series("elec2", "drift", "feat_4")) == 1
    events = list_events(project.db, entity_type="deployment", entity_id="elec2")
    assert len(events) == 1


def test_a_reference_is_set_and_replaced(project):
    import sklearn.dummy

    version = project.register_model("m", sklearn.dummy.DummyClassifier().fit([[0]], [0]))
    assert project.monitoring.get_reference(version.id) is None
    sha = "a" * 64
    project.monitoring.set_reference(version.id, artifact_sha256=sha, rows=10, source="x",
                                     now=1.0)
    project.monitoring.set_reference(version.id, artifact_sha256="b" * 64, rows=20,
                                     source="y", now=2.0)
    stored = project.monitoring.get_reference(version.id)
    assert (stored.artifact_sha256, stored.rows, stored.source) == ("b" * 64, 20, "y")


def test_a_label_committed_late_with_a_lower_id_still_gets_its_window_rejudged(
        tmp_path, postgres_url, clock):
    """On PostgreSQL ids are handed out before commit: a big label upload may commit after
    a later single label with a higher id. The window's quality cursor counts labels, so
    the late commit still makes the window due again (a newest-id cursor would skip it)."""
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    import tidal
    from tidal.store.feedback import FeedbackItem
    from tidal.store.models import Feedback

    project = tidal.Project(tmp_path, store_url=postgres_url, clock=clock)
    try:
        window, _ = project.monitoring.record_window(
            NewWindow("elec2", 0.0, 60.0, 500, 480, 1, None, "a" * 64), [],
            lambda points, before: ([], []), now=60.0, actor="monitor")
        with Session(project.db.engine) as slow:  # the upload, still running
            slow.execute(insert(Feedback), [{"deployment": "elec2", "request_id": "early",
                                             "row": 0, "label": 1, "source": "file",
                                             "received_at": 61.0}])
            slow.flush()
            project.feedback.add([FeedbackItem("elec2", 0, request_id="later")],
                                 source="api", actor="t", now=62.0)
            counted = project.feedback.count("elec2")
            assert counted == 1
            (due,) = project.monitoring.quality_due("elec2", ready_before=100.0,
                                                    horizon_start=0.0, labels=counted)
            project.monitoring.record_quality(due, [], None, cursor=counted, now=63.0,
                                              actor="monitor")
            assert project.monitoring.quality_due("elec2", ready_before=100.0,
                                                  horizon_start=0.0, labels=counted) == []
            slow.commit()  # the upload's label, with the lower id, lands now
        ids = {f.request_id: f.id for f in project.feedback.since("elec2")}
        assert ids["early"] < ids["later"] == project.feedback.latest_id("elec2")
        again = project.monitoring.quality_due("elec2", ready_before=100.0, horizon_start=0.0,
                                               labels=project.feedback.count("elec2"))
        assert [w.id for w in again] == [window.id]
    finally:
        project.close()



def test_a_long_span_is_grouped_into_buckets_in_the_database(project):
    """Twelve one-minute windows in four buckets of three: each bucket's lowest, highest
    and mean value and its last window's end, per check and subject."""
    values = [0.1, 0.9, 0.2, 0.3, 0.3, 0.3, 2.0, 0.1, 0.1, 0.5, 0.6, 0.7]
    for i, value in enumerate(values):
        _record(project, 60.0 * i, value)
    buckets = project.monitoring.bucketed("elec2", 0.0, 720.0, 4)
    drift = sorted(b for b in buckets if b[0] == "drift")
    assert [b[2] for b in drift] == [0, 1, 2, 3]
    for (_, subject, bucket, low, high, mean, end), chunk in zip(
            drift, [values[i:i + 3] for i in range(0, 12, 3)], strict=True):
        assert subject == "feat_4" and end == 60.0 * (3 * bucket + 3)
        assert (low, high) == (min(chunk), max(chunk))
        assert mean == pytest.approx(sum(chunk) / 3)
    rows = [b for b in buckets if b[0] == "rows"]
    assert len(rows) == 4 and all(b[3] == b[4] == 500.0 for b in rows)
    # windows ending at or before the start are left out, and so is a later one
    assert {b[2] for b in project.monitoring.bucketed("elec2", 360.0, 600.0, 2)
            if b[0] == "drift"} == {0, 1}


def test_a_timeline_page_is_found_by_kind_family_and_entity_in_the_database(project):
    from tidal.store.events import event_kinds, record_event, search_events

    kinds = ["monitor.alert", "monitor.ok", "monitors", "rollout.started", "deploy_x",
             "monitor.alert"]
    project.db.transact(lambda session: [record_event(
        session, at=float(i), kind=kind, entity_type="deployment",
        entity_id="a" if i % 2 else "b", actor=None, reason=None, payload=None)
        for i, kind in enumerate(kinds)])
    found, total = search_events(project.db, kind="monitor", limit=2)
    assert total == 3 and [e.kind for e in found] == ["monitor.alert", "monitor.ok"]
    assert found[0].at == 5.0  # newest first
    assert search_events(project.db, kind="monitor", entity_id="b")[1] == 1
    assert search_events(project.db, kind="deploy")[1] == 1  # deploy_x
    assert search_events(project.db, kind="%")[1] == 0  # literal, not a pattern
    assert search_events(project.db)[1] == 6
    assert event_kinds(project.db) == sorted(set(kinds))
