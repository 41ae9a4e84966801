"""Webhooks: delivered with retries and back-off, failures recorded, the monitor never
waits. A real HTTP server on 127.0.0.1 plays the receiver (``receiver_factory`` in
conftest.py)."""

from __future__ import annotations

import time

from tidal.monitor.sinks import WebhookSink
from tidal.store.monitoring import AlertStateRecord, StateChange


def _change(state: str = "alert") -> StateChange:
    record = AlertStateRecord("elec2", "drift", "feat_4", state, 100.0, 1, 1, 0, 3.5, 100.0,
                              100.0)
    return StateChange(record, "ok", "drift of feat_4 = 3.5 (alert >= 1)")


def test_a_change_is_posted_as_json_after_transient_failures(receiver_factory):
    receiver = receiver_factory(failures=2, status=503)
    waits: list[float] = []
    sink = WebhookSink(receiver.url, attempts=5, sleep=waits.append)
    sink.send(_change())
    assert sink.close(timeout=10) == 0
    assert receiver.attempts == 3 and sink.delivered == 1 and sink.failed == 0
    assert waits == [0.5, 1.0]  # back-off doubles
    body = receiver.bodies[0]
    assert body["kind"] == "monitor.alert" and body["deployment"] == "elec2"
    assert (body["check"], body["subject"], body["previous"], body["value"]) == \
        ("drift", "feat_4", "ok", 3.5)


def test_a_failure_for_good_is_reported_not_retried_forever(receiver_factory):
    receiver = receiver_factory(failures=100, status=500)
    failures: list[tuple[str, dict, str]] = []
    sink = WebhookSink(receiver.url, attempts=3, sleep=lambda _: None,
                       on_failure=lambda url, body, error: failures.append((url, body, error)))
    sink.send(_change())
    sink.close(timeout=10)
    assert receiver.attempts == 3 and sink.failed == 1
    assert failures[0][0] == receiver.url and failures[0][2] == "HTTP 500"


def test_a_refused_body_is_not_retried(receiver_factory):
    receiver = receiver_factory(failures=100, status=400)
    sink = WebhookSink(receiver.url, attempts=5, sleep=lambda _: None)
    sink.send(_change())
    sink.close(timeout=10)
    assert receiver.attempts == 1 and sink.failed == 1


def test_an_unreachable_receiver_is_a_recorded_failure():
    failures: list[str] = []
    sink = WebhookSink("http://127.0.0.1:9/hook", attempts=2, sleep=lambda _: None,
                       timeout=1.0, on_failure=lambda url, body, error: failures.append(error))
    sink.send(_change())
    sink.close(timeout=10)
    assert sink.failed == 1 and failures and "refused" in failures[0].lower()


def test_sending_never_waits_for_a_slow_receiver(receiver_factory):
    receiver = receiver_factory(delay=0.5)
    sink = WebhookSink(receiver.url)
    began = time.perf_counter()
    for _ in range(5):
        sink.send(_change())
    assert time.perf_counter() - began < 0.1
    # closing waits only as long as it is told to; what is left is counted as failed
    left = sink.close(timeout=0.2)
    assert left >= 3 and sink.failed >= 3
