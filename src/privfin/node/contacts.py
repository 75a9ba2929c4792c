"""When this node last heard from each peer (an authenticated request or stream frame).

Kept in memory by the node process (it starts empty at every start): the dashboard's
overview shows it next to each peer's pinned certificate. Updated from the federation
endpoints and the stream listener after the caller's certificate is matched to a party.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["PeerContacts"]


class PeerContacts:
    """Last contact time (seconds since the epoch) per peer; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def seen(self, party: str) -> None:
        """``party`` (already authenticated) reached this node now."""
        now = self._clock()
        with self._lock:
            self._last[party] = now

    def last(self, party: str) -> float | None:
        """When ``party`` last reached this node since it started (None: not yet)."""
        with self._lock:
            return self._last.get(party)
