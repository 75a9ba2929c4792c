"""Process-pool workers that end with the process that created them, and never run the
caller's ``__main__``.

Shared by :mod:`privfin.compute` and :mod:`privfin.he` (its encryption pool):

- :func:`watch_parent`, a pool initializer: a worker whose creator was killed (``SIGKILL``, out
  of memory) exits within half a second instead of living on as an orphan. It reads ``/proc``
  on Linux (no network, no storage).
- :func:`pool_context`, the multiprocessing context of privfin's pools: with ``spawn`` and
  ``forkserver`` the standard library re-imports the caller's main script in every new worker
  (and, by default, in the fork server), so a notebook-style script without an
  ``if __name__ == "__main__":`` guard ran again in each worker and crashed the pool. Workers
  of this context are started from privfin's modules only: their preparation data carries no
  main module, and the fork server preloads privfin instead of ``__main__``. Everything a
  privfin pool runs is importable from privfin, so nothing of the caller's script is needed.

The bottom layer, importable from every other.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["PARENT_POLL_SECONDS", "WORKER_PREFIX", "pool_context", "watch_parent"]


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


#: Name prefix of privfin's pool processes: their preparation data carries no main module.
WORKER_PREFIX = "privfin-worker:"

_FILTER_LOCK = threading.Lock()
#: The keys by which multiprocessing tells a new process to import the main module.
_MAIN_KEYS = ("init_main_from_path", "init_main_from_name", "main_path")


def _install_main_filter() -> None:
    """Wrap :func:`multiprocessing.spawn.get_preparation_data` (once, idempotent) so that a
    process named with :data:`WORKER_PREFIX` is not told to import the caller's main module
    (``init_main_from_path``, ``init_main_from_name``); every other process is prepared as
    before."""
    from multiprocessing import spawn

    with _FILTER_LOCK:
        original: Callable[[str], dict[str, Any]] = spawn.get_preparation_data
        if getattr(original, "privfin_main_filter", False):
            return

        def get_preparation_data(name: str) -> dict[str, Any]:
            data = original(name)
            if isinstance(name, str) and name.startswith(WORKER_PREFIX):
                for key in _MAIN_KEYS:
                    data.pop(key, None)
            return data

        get_preparation_data.__wrapped__ = original  # type: ignore[attr-defined]
        get_preparation_data.privfin_main_filter = True  # type: ignore[attr-defined]
        spawn.get_preparation_data = get_preparation_data


def _named(process: multiprocessing.process.BaseProcess) -> None:
    process.name = f"{WORKER_PREFIX}{process.name}"


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _named(self)


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


if sys.platform != "win32":  # the classes are pickled to the worker: module level

    class _ForkServerProcess(multiprocessing.context.ForkServerProcess):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _named(self)

    class _ForkServerContext(multiprocessing.context.ForkServerContext):
        Process = _ForkServerProcess


def _forkserver_context() -> multiprocessing.context.BaseContext:
    if sys.platform == "win32":
        raise ValueError("start method 'forkserver' is not available here")
    return _ForkServerContext()


def pool_context(method: str, preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for a privfin process pool started with ``method``.

    ``"fork"``: the standard context (a forked worker imports nothing). ``"spawn"`` and
    ``"forkserver"``: workers are prepared without the caller's main module, so a script
    without a ``__main__`` guard runs once, not once per worker; a fork server started here
    preloads ``preload`` (privfin modules) instead of ``__main__``. A fork server already
    running (started by the caller) is used as it is. Functions a pool runs must be importable
    from a module (not defined in the caller's script).

    Raises
    ------
    ValueError
        If ``method`` is not one of this platform's start methods.
    """
    if method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"start method {method!r} is not available here")
    if method == "fork":
        return multiprocessing.get_context("fork")
    _install_main_filter()
    if method == "spawn":
        return _SpawnContext()
    ctx = _forkserver_context()
    ctx.set_forkserver_preload(["privfin.procwatch", *preload])
    return ctx
