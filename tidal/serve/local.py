"""The real model server in a thread of this process, on a free port of 127.0.0.1.

For the demo and the replay, which drive the server over HTTP as a client would, without
a second process to start and clean up. One kept-alive client connection without
Nagle's delay: a new connection per request would cost a replay a third of its time, and
the server never times it out (it sits idle while a controller trains).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from types import TracebackType
from typing import Any

from tidal.core.errors import TidalError

HOST = "127.0.0.1"


class LocalServer:
    """``create_app(project)`` (or another ASGI ``app``, e.g. the dashboard) served by
    uvicorn in a daemon thread until :meth:`stop`."""

    def __init__(self, project: Any, token: str | None = None, *,
                 start_timeout: float = 60.0, app: Any = None) -> None:
        import uvicorn

        from tidal.serve.app import create_app

        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port: int = sock.getsockname()[1]
        self.token = token
        self.url = f"http://{HOST}:{self.port}"
        self._connection: http.client.HTTPConnection | None = None
        self.server = uvicorn.Server(uvicorn.Config(
            app if app is not None else create_app(project), host=HOST, port=self.port,
            log_level="error", timeout_keep_alive=24 * 3600))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise TidalError("the model server did not start")
            time.sleep(0.02)

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        """One JSON request; the answer's JSON body (a non-2xx answer raises)."""
        status, payload = self.request(method, path, body, headers)
        if status >= 300:
            raise TidalError(f"the model server answered {status} to {method} {path}: "
                             f"{payload[:300].decode(errors='replace')}")
        return json.loads(payload)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request (a JSON ``body``); the status and the raw body."""
        data = None if body is None else json.dumps(body).encode()
        if self._connection is None:
            self._connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
            self._connection.connect()
            self._connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = {"content-type": "application/json", **(headers or {})}
        if self.token:
            sent["authorization"] = f"Bearer {self.token}"
        try:
            self._connection.request(method, path, body=data, headers=sent)
            answer = self._connection.getresponse()
            return answer.status, answer.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # a broken connection is not reused: the next
            self._connection = None   # call opens a fresh one
            raise

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
