"""POST a JSON body to a webhook, with retries: the one delivery rule for every sink.

Up to ``attempts`` tries with a back-off that doubles from 0.5 s (capped at 30 s); a
4xx other than 408 and 429 ends the tries at once (the receiver refuses this body, and
retrying will not change its mind). The standard library's ``urllib`` does the POST: one
JSON request at a time needs no HTTP client dependency.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

#: the first retry waits this long; each next one twice as long, up to the cap
BACKOFF_START = 0.5
BACKOFF_CAP = 30.0


def post_json(url: str, body: Any, *, timeout: float = 5.0, attempts: int = 5,
              user_agent: str = "tidal", sleep: Callable[[float], None] = time.sleep
              ) -> str | None:
    """Deliver ``body``; None when delivered, else the last error in a few words."""
    data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    wait, error = BACKOFF_START, ""
    for attempt in range(1, attempts + 1):
        try:
            request = urllib.request.Request(
                url, data=data, method="POST",
                headers={"content-type": "application/json", "user-agent": user_agent})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
            return None
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            error = str(getattr(exc, "reason", exc))
        except Exception as exc:  # noqa: BLE001 - a bad URL or a broken reply: a failure
            error = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            sleep(wait)
            wait = min(BACKOFF_CAP, wait * 2)
    return error
