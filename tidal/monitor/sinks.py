"""Where alert state changes go besides the event table: the log and webhooks.

The event table is written in the same transaction as the window (see
:mod:`tidal.store.monitoring`); that is the record the controller reads. The sinks here
only tell people:

- :class:`LogSink` logs each change (a warning when it escalates, info when it clears);
- :class:`WebhookSink` POSTs each change as JSON to a URL from a background thread, with
  up to ``attempts`` tries and a back-off that doubles from 0.5 s (capped at 30 s; see
  :mod:`tidal.core.webhooks`). The monitor never waits for it:
  :meth:`WebhookSink.send` only queues. A delivery that fails for good is logged and
  recorded as a ``monitor.webhook_failed`` event, so a silent webhook is visible in
  ``tidal monitor`` and the event timeline.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from tidal.core.webhooks import post_json
from tidal.store.monitoring import StateChange

log = logging.getLogger("tidal.monitor")


def change_body(change: StateChange, *, project: str | None = None) -> dict[str, Any]:
    """The JSON a sink sends for one state change."""
    state = change.state
    return {"kind": f"monitor.{state.state}", "deployment": state.deployment,
            "check": state.check, "subject": state.subject, "state": state.state,
            "previous": change.previous, "value": state.last_value,
            "window_end": state.last_window_end, "since": state.since,
            "reason": change.reason, "project": project}


class LogSink:
    def send(self, change: StateChange) -> None:
        level = logging.INFO if change.state.state == "ok" else logging.WARNING
        log.log(level, "%s: %s", change.state.deployment, change.reason)

    def close(self, timeout: float = 0.0) -> None:
        return None


class WebhookSink:
    """POST each change to ``url`` off the caller's thread (see the module docstring).

    ``on_failure(url, body, error)`` is called (from the delivery thread) for a change that
    could not be delivered in ``attempts`` tries.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, attempts: int = 5,
                 on_failure: Callable[[str, dict[str, Any], str], None] | None = None,
                 project: str | None = None, sleep: Callable[[float], None] = time.sleep,
                 ) -> None:
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.on_failure = on_failure
        self.project = project
        self.delivered = 0
        self.failed = 0
        self._sleep = sleep
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tidal-webhook", daemon=True)
        self._thread.start()

    def send(self, change: StateChange) -> None:
        self._queue.put(change_body(change, project=self.project))

    def close(self, timeout: float = 30.0) -> int:
        """Stop after delivering what is queued, waiting at most ``timeout`` seconds;
        returns how many changes were left undelivered (they are recorded as failures)."""
        self._queue.put(None)
        self._thread.join(timeout)
        left = 0
        while True:
            try:
                body = self._queue.get_nowait()
            except queue.Empty:
                break
            if body is not None:
                left += 1
                self._failed(body, f"not delivered within {timeout:g} s of shutting down")
        self._queue.put(None)  # the drain took the stop marker: the thread still needs one
        return left

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            try:
                self._deliver(body)
            except Exception:  # noqa: BLE001 - the thread must outlive any one delivery
                log.exception("webhook %s: delivery failed unexpectedly", self.url)

    def _deliver(self, body: dict[str, Any]) -> None:
        error = post_json(self.url, body, timeout=self.timeout, attempts=self.attempts,
                          user_agent="tidal-monitor", sleep=self._sleep)
        if error is None:
            self.delivered += 1
        else:
            self._failed(body, error)

    def _failed(self, body: dict[str, Any], error: str) -> None:
        self.failed += 1
        log.error("webhook %s: could not deliver %s of %s: %s", self.url, body["kind"],
                  body["deployment"], error)
        if self.on_failure is not None:
            try:
                self.on_failure(self.url, body, error)
            except Exception:  # noqa: BLE001 - recording the failure must not kill delivery
                log.exception("could not record the webhook failure")
