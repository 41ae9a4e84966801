"""Webhooks: delivered with retries and back-off, failures recorded, the monitor never
waits. A real HTTP server on 127.0.0.1 plays the receiver."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from tidal.monitor.sinks import WebhookSink
from tidal.store.monitoring import AlertStateRecord, StateChange


class Receiver:
    """An HTTP server that answers the first ``failures`` POSTs with ``status``."""

    def __init__(self, failures: int = 0, status: int = 500, delay: float = 0.0) -> None:
        self.failures, self.status, self.delay = failures, status, delay
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                time.sleep(receiver.delay)
                if receiver.attempts <= receiver.failures:
                    self.send_response(receiver.status)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


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
