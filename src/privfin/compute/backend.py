"""Compute backends behind one small interface.

``map(fn, items)`` applies ``fn`` to every item and returns the results in order. Backends:

* :class:`LocalBackend` (default): a process pool, for pure-Python heavy loops. ``fn`` and the
  items are pickled, but only between processes of the same party on the same machine: never
  across a party boundary.
* :class:`ThreadBackend`: a thread pool, for work that releases the GIL (gmpy2, numpy, libsodium).
* :class:`SerialBackend`: in the calling thread (tests, tiny inputs).

Pools are created on first use and closed by :meth:`close` (backends are context managers), so
constructing a backend has no side effect. Process-pool workers die with their parent: each runs
a watchdog (:func:`watch_parent`) that exits it when the parent process is gone, so a killed
node leaves no orphan workers. They are started from privfin's modules only
(:func:`privfin.procwatch.pool_context`): the caller's main script is never re-imported in a
worker, so a script without an ``if __name__ == "__main__":`` guard runs once; the functions
given to :meth:`LocalBackend.map` must therefore be importable (not defined in that script).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Protocol, TypeVar

from privfin.procwatch import pool_context, watch_parent

__all__ = [
    "ComputeBackend",
    "LocalBackend",
    "SerialBackend",
    "ThreadBackend",
    "chunked",
    "watch_parent",
]

A = TypeVar("A")
R = TypeVar("R")


class ComputeBackend(Protocol):
    """What bulk crypto and PSI use to spread work over cores."""

    @property
    def workers(self) -> int:
        """How many tasks run at once."""
        ...

    def map(self, fn: Callable[[A], R], items: Iterable[A]) -> list[R]:
        """``[fn(x) for x in items]``, possibly in parallel, in order."""
        ...

    def close(self) -> None:
        """Release the pool (idempotent)."""
        ...


def chunked(items: Sequence[A], parts: int) -> list[Sequence[A]]:
    """Split ``items`` into at most ``parts`` contiguous, near-equal, non-empty slices."""
    parts = max(1, min(parts, len(items)))
    step, extra = divmod(len(items), parts)
    out: list[Sequence[A]] = []
    start = 0
    for i in range(parts):
        end = start + step + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [c for c in out if len(c)]


class SerialBackend:
    """Runs everything in the calling thread."""

    workers = 1

    def map(self, fn: Callable[[A], R], items: Iterable[A]) -> list[R]:
        return [fn(x) for x in items]

    def close(self) -> None:
        return None

    def __enter__(self) -> SerialBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PoolBackend:
    def __init__(self, workers: int | None = None) -> None:
        self._workers = max(1, workers or os.cpu_count() or 1)
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    @property
    def workers(self) -> int:
        return self._workers

    def _make(self) -> Executor:
        raise NotImplementedError

    def _executor(self) -> Executor:
        with self._lock:
            if self._pool is None:
                self._pool = self._make()
            return self._pool

    def map(self, fn: Callable[[A], R], items: Iterable[A]) -> list[R]:
        items = list(items)
        if len(items) <= 1 or self._workers == 1:
            return [fn(x) for x in items]
        return list(self._executor().map(fn, items))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def __enter__(self) -> _PoolBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadBackend(_PoolBackend):
    """A thread pool: for work that releases the GIL."""

    def _make(self) -> Executor:
        return ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="privfin-compute")


class LocalBackend(_PoolBackend):
    """A process pool on this machine (the default backend)."""

    def _make(self) -> Executor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=pool_context("spawn"),
            initializer=watch_parent,
            initargs=(os.getpid(),),
        )
