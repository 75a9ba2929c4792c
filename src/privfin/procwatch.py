"""Process-pool workers that end with the process that created them.

A pool initializer, :func:`watch_parent`, shared by :mod:`privfin.compute` and
:mod:`privfin.he` (its encryption pool): a worker whose creator was killed (``SIGKILL``, out of
memory) exits within half a second instead of living on as an orphan. It reads ``/proc`` on
Linux (no network, no storage); the bottom layer, importable from every other.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["PARENT_POLL_SECONDS", "watch_parent"]


#: How often a worker checks that its parent process is still alive.
PARENT_POLL_SECONDS = 0.5


def watch_parent(owner: int | None = None, interval: float = PARENT_POLL_SECONDS) -> None:
    """Pool initializer: exit this worker (``os._exit``) as soon as the process that created
    the pool is gone.

    A daemon thread polls, every ``interval`` seconds, the parent pid (a dead parent's
    children are re-parented, so it changes) and the ``owner`` pid (the pool's creator: with a
    fork server the parent is the server, which stays alive as long as any worker does). On
    Linux the owner's ``/proc`` start time guards against pid reuse and a zombie owner counts
    as gone; elsewhere ``kill(pid, 0)`` is the fallback. ``PR_SET_PDEATHSIG`` is not used: it
    fires when the *thread* that forked the worker ends, and pools are created from job threads.
    """
    parent = os.getppid()
    birth = _start_time(owner) if owner is not None else None

    def gone() -> bool:
        return os.getppid() != parent or (owner is not None and not _alive(owner, birth))

    if gone():
        os._exit(0)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if gone():
                os._exit(0)

    threading.Thread(target=watch, name="privfin-parent-watch", daemon=True).start()


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].decode().split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def _alive(pid: int, birth: str | None) -> bool:
    if birth is not None:  # Linux: /proc tells zombies and reused pids apart
        fields = _stat(pid)
        return fields is not None and fields[0] not in ("Z", "X") and fields[19] == birth
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
