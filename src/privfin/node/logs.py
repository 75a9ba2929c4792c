"""The node's local log: private (0600), one line per record, nothing a peer sends can forge
a line.

Anything a peer supplies (an abort reason, a claimed name, a URL path) may carry newlines or
terminal escapes. :func:`escape_control` turns every control character into a visible escape,
and :class:`EscapingFormatter` applies it to every formatted message (tracebacks, which come
from this node's own code, keep their line breaks). :func:`peer_text` additionally caps and
restricts to printable ASCII what a peer sent before it is stored.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = [
    "MAX_PEER_REASON",
    "EscapingFormatter",
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
