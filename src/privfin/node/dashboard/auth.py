"""Browser sessions of the dashboard: the operator token once at login, then a cookie.

The login form takes the node's operator token (the one the operator API wants as a bearer
token, compared in constant time). A correct token opens a session: a random session id in an
``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` when the operator port speaks TLS), kept
in this process's memory only (a restart logs everyone out) and expiring after
:data:`SESSION_SECONDS`. Each session has its own random CSRF token, which every form that
changes something (approve, reject, verify, logout) carries in a hidden field; a POST without
the session's token, or from another origin, is refused.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE", "SESSION_SECONDS", "Session", "Sessions"]

COOKIE = "privfin_session"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 256


@dataclass(frozen=True)
class Session:
    """One logged-in browser."""

    id: str
    csrf: str
    expires: float

    def csrf_ok(self, given: str | None) -> bool:
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """The open sessions (in memory; at most :data:`MAX_SESSIONS`, the oldest dropped)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}

    def create(self) -> Session:
        now = self._clock()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + SESSION_SECONDS)
        with self._lock:
            for sid in [k for k, v in self._open.items() if v.expires <= now]:
                del self._open[sid]
            while len(self._open) >= MAX_SESSIONS:
                del self._open[min(self._open, key=lambda k: self._open[k].expires)]
            self._open[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        """The live session of cookie value ``sid`` (None: none, or expired)."""
        if not sid:
            return None
        with self._lock:
            s = self._open.get(sid)
            if s is not None and s.expires <= self._clock():
                del self._open[sid]
                return None
            return s

    def end(self, sid: str) -> None:
        with self._lock:
            self._open.pop(sid, None)
