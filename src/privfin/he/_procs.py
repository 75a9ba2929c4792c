"""Process-pool path for bulk encryption (pure math: no I/O of its own).

Table-based encryption is a long chain of small gmpy2 multiplications: threads do not overlap
them (2048-bit OU operands are too small for releasing the GIL to pay off), processes do. The
pool is a :class:`concurrent.futures.ProcessPoolExecutor`:

- each task carries the engine's :data:`~privfin.he._engine.Spec` (public values, a few
  hundred bytes), a chunk of plaintexts and the chunk's short exponents as one byte string;
- each worker keeps the engines it knows (at most :data:`MAX_WORKER_ENGINES` keys): a pool
  created by a key installs the key's engine in its initializer (inherited with its tables
  when forked, rebuilt from the spec otherwise); a worker of a pool injected by the caller
  builds the tables of a key the first time it sees that key's spec;
- ciphertexts come back as one fixed-width big-endian byte string per chunk.

Randomness never enters a worker: the calling process draws every exponent from its source (the
OS CSPRNG, or an injected seeded source for test vectors) before splitting the work, so workers
share no RNG state and the ciphertexts are bit-for-bit those of the single-process path. The
private key never leaves the calling process (decryption uses threads: ``powmod_base_list``
releases the GIL for a whole chunk).

Pool objects cross process boundaries on this machine only, through :mod:`pickle` of ints and
bytes: never between parties.

Workers die with their parent: the initializer starts a watchdog thread
(:func:`privfin.procwatch.watch_parent`) that exits the worker within half a second once the
process that created the pool is gone (a killed node leaves no orphan workers, with a fork
server too). ``PR_SET_PDEATHSIG`` is not used: it
fires when the *thread* that forked the worker ends, and pools are created from job threads.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import gmpy2

from privfin.he._engine import Engine, Spec, engine_from_spec
from privfin.procwatch import pool_context, watch_parent

__all__ = ["MAX_WORKER_ENGINES", "make_pool", "run_encrypt", "warm_up"]

#: Engines (keys) a worker keeps; each holds its fixed-base tables (tens of MiB at 2048 bits).
MAX_WORKER_ENGINES = 2
#: Fewer items than this per task are not worth the inter-process round trip.
MIN_PROCESS_CHUNK = 32

# Engines built by *this* process while it serves as a pool worker, by spec. Only the worker
# functions below touch it; the calling process never runs them, so it stays empty there.
_WORKER_ENGINES: dict[Spec, Engine] = {}


def _engine_for(spec: Spec) -> Engine:
    engine = _WORKER_ENGINES.get(spec)
    if engine is None:
        while len(_WORKER_ENGINES) >= MAX_WORKER_ENGINES:
            del _WORKER_ENGINES[next(iter(_WORKER_ENGINES))]
        engine = engine_from_spec(spec)
        engine.prepare()
        _WORKER_ENGINES[spec] = engine
    return engine


def _init_worker(engine: Engine, owner: int | None = None) -> None:
    """Pool initializer: register the key's engine. A forked worker receives the caller's
    engine with its tables already built (copy-on-write); a spawned one receives its spec
    (see :meth:`Engine.__reduce__`) and builds the tables here, before the first task. Starts
    the watchdog that ends the worker with its parent (:func:`watch_parent`)."""
    watch_parent(owner)
    while len(_WORKER_ENGINES) >= MAX_WORKER_ENGINES:
        del _WORKER_ENGINES[next(iter(_WORKER_ENGINES))]
    engine.prepare()
    for table in engine.tables():
        table.touch()
    _WORKER_ENGINES[engine.spec] = engine


def _ping(_: int) -> int:
    return os.getpid()


def _encrypt_task(spec: Spec, ms: Sequence[int] | None, blob: bytes, width: int) -> bytes:
    """Worker: encrypt ``ms`` (or make encryptions of zero if ``None``) with the exponents in
    ``blob`` (little-endian, ``width`` bytes each); return fixed-width big-endian ciphertexts."""
    engine = _engine_for(spec)
    exps = [int.from_bytes(blob[i : i + width], "little") for i in range(0, len(blob), width)]
    if ms is None:
        cts = engine.randomizers(exps)
    else:
        engine.prepare(ms)
        cts = engine.encrypt(ms, exps)
    size = engine.ciphertext_bytes
    return b"".join(c.to_bytes(size, "big") for c in cts)


def make_pool(engine: Engine, workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes whose initializer installs ``engine``.

    Start method: ``fork`` when the caller runs a single thread on a platform that has it
    (the workers then inherit the built tables and start in milliseconds); otherwise a fork
    server (a clean single-threaded process), so a multi-threaded caller, whose other threads
    may hold locks, is never forked; ``spawn`` where neither exists. In no case is the
    caller's ``__main__`` re-imported in a worker or the fork server
    (:func:`privfin.procwatch.pool_context`): a script without a main guard runs once. Build
    the tables (``engine.prepare()``) first.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=pool_context(method, preload=("privfin.he._procs",)),
        initializer=_init_worker,
        initargs=(engine, os.getpid()),
    )


def warm_up(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start the workers (each runs the initializer) and wait until they answer."""
    seen: set[int] = set()
    for _ in range(4):
        seen.update(pool.map(_ping, range(workers * 2)))
        if len(seen) >= workers:
            return


def run_encrypt(
    pool: ProcessPoolExecutor,
    spec: Spec,
    ms: Sequence[int] | None,
    blob: bytes,
    width: int,
    jobs: int,
    ciphertext_bytes: int,
) -> list[Any]:
    """Encrypt in ``pool``: ``ms`` with the exponents of ``blob`` (see :func:`_encrypt_task`).

    The work is cut into about four chunks per worker (so a busy core does not hold the batch
    back); the result order is the input order.
    """
    count = len(blob) // width
    if count == 0:
        return []
    n_chunks = max(1, min(jobs * 4, count // MIN_PROCESS_CHUNK))
    bounds = [count * i // n_chunks for i in range(n_chunks + 1)]
    futures = [
        pool.submit(
            _encrypt_task,
            spec,
            None if ms is None else list(ms[lo:hi]),
            blob[lo * width : hi * width],
            width,
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    out: list[Any] = []
    from_bytes = gmpy2.mpz.from_bytes
    size = ciphertext_bytes
    for future in futures:
        data = future.result()
        out.extend(from_bytes(data[i : i + size], "big") for i in range(0, len(data), size))
    return out
