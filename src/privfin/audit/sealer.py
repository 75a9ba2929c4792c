"""Automatic sealing: a node signs a checkpoint of its audit log when a job ends and at a fixed
interval, and keeps each signed head in a file outside the database.

Why: the hash chain alone shows no entry was edited *unless* whoever edited it recomputed every
later hash — which anyone with write access to the database can. A signed head held outside
the database (here an append-only JSON-lines file, ``state_dir/audit/heads.jsonl`` by default;
ship it to write-once storage or to peers for more) defeats that, up to the latest head, as
long as the identity key was not taken too. :meth:`AuditLog.verify` checks the log against
every head :func:`read_heads` returns (the node's ``audit verify`` and dashboard do so).

A seal is skipped when nothing was appended since the last one, so an idle node writes nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from privfin.audit.chain import SignedHead
from privfin.audit.log import AuditLog
from privfin.errors import ConfigError

__all__ = ["Sealer", "read_heads"]

#: A heads file larger than this is not read whole (a node seals at most once per job and per
#: interval; 64 MiB is hundreds of thousands of heads).
MAX_HEADS_FILE = 64 << 20


def read_heads(path: Path) -> list[SignedHead]:
    """The signed heads kept in ``path`` (none if it does not exist), oldest first.

    Raises
    ------
    ConfigError
        The file is too large or a line is not a signed head (a damaged or edited file is
        reported, never skipped: it is evidence).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    if size > MAX_HEADS_FILE:
        raise ConfigError(f"{path}: {size} bytes, more than a heads file may hold")
    heads = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            heads.append(SignedHead.from_dict(json.loads(line)))
        except ValueError as exc:
            raise ConfigError(f"{path}, line {number}: not a signed audit head ({exc})") from None
    return heads


class Sealer:
    """Seals ``log`` with ``key`` when asked (:meth:`request`, e.g. at a job's end) or once
    ``interval`` seconds passed (0: only when asked), if anything was appended since the last
    seal; appends each signed head to ``heads_path`` (created 0600, fsynced).

    :meth:`tick` does the work; call it from one housekeeping thread. ``clock`` is injectable
    for tests.
    """

    def __init__(
        self,
        log: AuditLog,
        key: Callable[[], ec.EllipticCurvePrivateKey],
        heads_path: Path,
        *,
        interval: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must be >= 0")
        self.log = log
        self._key = key
        self.heads_path = heads_path
        self.interval = interval
        self._clock = clock
        self._requested = threading.Event()
        self._last_at = clock()
        self._last_seq: int | None = None

    def request(self) -> None:
        """Ask for a seal at the next :meth:`tick` (thread-safe, cheap)."""
        self._requested.set()

    def _sealed_seq(self) -> int:
        if self._last_seq is None:
            heads = read_heads(self.heads_path)
            self._last_seq = heads[-1].seq if heads else 0
        return self._last_seq

    def tick(self) -> SignedHead | None:
        """Seal if asked or due and the log grew since the last seal; return the new head."""
        due = self.interval > 0 and self._clock() - self._last_at >= self.interval
        if not (self._requested.is_set() or due):
            return None
        self._requested.clear()
        self._last_at = self._clock()
        seq, _ = self.log.head()
        if seq <= self._sealed_seq():
            return None  # nothing new (a checkpoint is itself an entry: seq moved by one)
        head = self.log.seal(self._key(), actor="node")
        self._append(head)
        self._last_seq = head.seq
        return head

    def _append(self, head: SignedHead) -> None:
        self.heads_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = (json.dumps(head.to_dict(), sort_keys=True) + "\n").encode()
        fd = os.open(self.heads_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
