"""The feedback repository on SQLite and PostgreSQL: labels kept, corrections counted, the
latest label per prediction found by request id or by key and time."""

from __future__ import annotations

import pytest

from tidal.core.errors import ValidationError
from tidal.store.feedback import FeedbackItem, check_item


def test_labels_corrections_and_lookups(project):
    feedback = project.feedback
    assert feedback.latest_id("elec2") == 0
    first = feedback.add([FeedbackItem("elec2", 1, request_id="a"),
                          FeedbackItem("elec2", 0, request_id="a", row=1),
                          FeedbackItem("elec2", "yes", entity_key="k", event_time=10.5)],
                         source="api", actor="x", now=1.0)
    assert first == {"added": 3, "superseded": 0}
    second = feedback.add([FeedbackItem("elec2", 0, request_id="a"),  # a correction
                           FeedbackItem("elec2", 1, request_id="a"),  # and another
                           FeedbackItem("elec2", "no", entity_key="k", event_time=10.5),
                           FeedbackItem("other", 1, request_id="a")],  # other deployment
                          source="file", actor="x", now=2.0)
    assert second == {"added": 4, "superseded": 3}
    found = feedback.labels_for("elec2", ["a", "unknown"], ["k"])
    assert {k: label for k, (_, label) in found.by_request.items()} == {("a", 0): 1,
                                                                        ("a", 1): 0}
    assert {k: label for k, (_, label) in found.by_key.items()} == {("k", 10.5, 0): "no"}
    assert found.corrections == 3
    # keyed labels are looked up within a window's event times only
    assert feedback.labels_for("elec2", keys=["k"], start=11.0, end=20.0).by_key == {}
    assert feedback.count("elec2") == 6 and feedback.count("other") == 1
    assert feedback.latest_id("elec2") > 0
    assert [r.label for r in feedback.since("elec2", after_id=3)] == [0, 1, "no"]


def test_items_are_checked_at_the_boundary():
    assert check_item({"request_id": "r", "label": True}, deployment="d").label is True
    for bad in ({"request_id": "r"}, {"request_id": 5, "label": 1},
                {"key": "k", "event_time": float("nan"), "label": 1},
                {"request_id": "r", "label": float("inf")}, "label"):
        with pytest.raises(ValidationError):
            check_item(bad, deployment="d")
    with pytest.raises(ValidationError, match="deployment"):
        check_item({"request_id": "r", "label": 1})


@pytest.mark.parametrize(("item", "message"), [
    ({"request_id": "r1", "label": "spam\u0000"}, "NUL"),
    ({"request_id": "r1", "label": 1, "deployment": "d" * 65}, "'deployment'"),
    ({"request_id": "r1", "label": 1, "deployment": "d\u0000"}, "'deployment'"),
])
def test_text_a_backend_cannot_hold_is_refused_on_every_backend(project, item, message):
    """PostgreSQL refuses NUL characters and over-long names (SQLite keeps them): the
    check refuses them first, the same on both, as a 400 over HTTP."""
    with pytest.raises(ValidationError, match=message):
        project.feedback.add([check_item(item, deployment="d")], source="api", actor="t",
                             now=1.0)

