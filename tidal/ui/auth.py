"""Who may change things from the dashboard, and CSRF protection for their forms.

Reading needs nothing. Changing (rollback, promote, a review label) needs the admin
token, the same one the model server's admin API takes (``[serve] admin_token_env``): a
person pastes it once at ``/login`` and gets a session cookie (HttpOnly, SameSite=Strict,
random, kept in this process's memory: a restart logs everyone out, and the token itself
is never stored in the browser). Every form that changes something carries the
session's CSRF token, checked on submit with a constant-time comparison; SameSite=Strict
already keeps the cookie off cross-site requests, the token is the second lock.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "tidal_session"
#: a session lasts this long after login (seconds)
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires: float


class Sessions:
    """Logged-in sessions of one dashboard process."""

    def __init__(self, token_env: str) -> None:
        self.token_env = token_env
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether an admin token is configured at all (else nobody can log in)."""
        return bool(os.environ.get(self.token_env))

    def login(self, given: str) -> Session | None:
        """A new session when ``given`` is the admin token."""
        expected = os.environ.get(self.token_env) or ""
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return None
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32),
                          time.time() + SESSION_SECONDS)
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of a cookie's value, if any."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires < time.time():
                del self._sessions[session_id]
                return None
        return session

    def logout(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    @staticmethod
    def csrf_ok(session: Session | None, given: str | None) -> bool:
        return session is not None and given is not None and \
            hmac.compare_digest(session.csrf.encode(), given.encode())
