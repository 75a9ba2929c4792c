"""The node's local log: private (0600), one line per record, nothing a peer sends can forge
a line.

Anything a peer supplies (an abort reason, a claimed name, a URL path) may carry newlines or
terminal escapes. :func:`escape_control` turns every control character into a visible escape,
and :class:`EscapingFormatter` applies it to every formatted message (tracebacks, which come
from this node's own code, keep their line breaks). :func:`peer_text` additionally caps and
restricts to printable ASCII what a peer sent before it is stored. :class:`LogLimiter` caps
the lines one peer can make the node write for one kind of event (refused aborts, claimed
senders, job-API attempts...): a few per window, then one summary of what was suppressed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MAX_PEER_REASON",
    "EscapingFormatter",
    "LogLimiter",
    "configure_logging",
    "escape_control",
    "open_private_log",
    "peer_text",
]

MAX_PEER_REASON = 200
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def escape_control(text: str) -> str:
    """Replace every control character (C0, DEL, C1, line and paragraph separators) by a
    visible escape, so the text stays on one line."""
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def peer_text(value: object, limit: int = MAX_PEER_REASON) -> str:
    """What a peer sent, made safe to store and log: printable ASCII only (everything else
    escaped), at most ``limit`` characters."""
    text = value if isinstance(value, str) else ""
    return text[:limit].encode("unicode_escape").decode("ascii")[:limit]


class LogLimiter:
    """Rate-limit log lines per ``(peer, kind)``: at most ``burst`` lines per ``window`` seconds
    for each pair; the lines beyond are counted, and the next line logged for any pair after
    its window ended (or :meth:`flush`) first says how many were suppressed. The number of
    pairs is bounded by the pinned peers (plus one key for unauthenticated callers) times the
    kinds, so the limiter's own memory is bounded too.

    Parameters
    ----------
    logger:
        Where the lines go.
    burst, window:
        Lines per pair and window (seconds).
    clock:
        Injected time source (tests).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        # (peer, kind) -> [window start, lines logged in it, lines suppressed in it]
        self._state: dict[tuple[str, str], list[float]] = {}

    def log(self, level: int, peer: str, kind: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``peer`` exceeded its lines of ``kind``; True if logged."""
        now = self.clock()
        with self._lock:
            summaries = self._expired(now)
            state = self._state.setdefault((peer, kind), [now, 0, 0])
            logged = state[1] < self.burst
            if logged:
                state[1] += 1
            else:
                state[2] += 1
        for line in summaries:
            self.logger.warning("%s", line)
        if logged:
            self.logger.log(level, msg, *args)
        return logged

    def flush(self) -> None:
        """Log the summaries of every ended window now."""
        with self._lock:
            summaries = self._expired(self.clock())
        for line in summaries:
            self.logger.warning("%s", line)

    def _expired(self, now: float) -> list[str]:
        out = []
        for (peer, kind), state in list(self._state.items()):
            if now - state[0] < self.window:
                continue
            if state[2]:
                out.append(
                    f"suppressed {int(state[2])} more log lines of kind {kind!r} from {peer} "
                    f"in {self.window:g} s"
                )
            del self._state[(peer, kind)]
        return out


class EscapingFormatter(logging.Formatter):
    """A formatter whose message part never spans lines (see :func:`escape_control`)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message)
        return super().formatMessage(record)


def open_private_log(path: str | Path) -> int:
    """Open (append, create) a log file readable by its owner only; returns the descriptor."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr through :class:`EscapingFormatter` (the node's log: the cluster points
    stderr at a 0600 file, see :func:`open_private_log`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter(_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
