"""Shared helpers of :mod:`privfin.he`: randomness sources, primes, fixed-base tables, threads.

Pure math: no I/O, no module-level mutable state. gmpy2 arithmetic runs with
``allow_release_gil=True`` inside worker threads (a thread-local gmpy2 context), so large
multiplications and modular exponentiations of different threads overlap on several cores.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

import gmpy2

from privfin.errors import ConfigError, InsecureModeError

__all__ = [
    "FixedBaseTable",
    "RandomSource",
    "default_jobs",
    "default_rng",
    "parallel_map",
    "random_prime",
    "random_unit",
    "rsa_security_bits",
]

T = TypeVar("T")
R = TypeVar("R")

#: Below this many items per job a batch runs in the calling thread.
MIN_CHUNK = 16


@runtime_checkable
class RandomSource(Protocol):
    """A source of random bits: :class:`secrets.SystemRandom` (the production default) or, for
    deterministic test vectors only, a seeded :class:`random.Random`."""

    def getrandbits(self, k: int, /) -> int:  # pragma: no cover - protocol
        """Return a uniformly random non-negative integer below ``2**k``."""
        ...


def default_rng() -> RandomSource:
    """The production randomness source: the operating system CSPRNG."""
    return secrets.SystemRandom()


class ByteSource(Protocol):
    """A source of random bytes (:mod:`privfin.crypto.random`, a protocol's ``ctx.random``)."""

    def bytes(self, n: int, /) -> bytes: ...


def bits_from(source: ByteSource) -> RandomSource:
    """``source`` with the ``getrandbits`` interface of this package (big-endian bits of its
    bytes: a seeded source gives the same keys and randomisers every run)."""
    return _ByteSourceBits(source)


class _ByteSourceBits:
    """A byte source (``bytes(n)``, e.g. a protocol context's ``ctx.random``) with the
    ``getrandbits`` interface of this package."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def getrandbits(self, k: int, /) -> int:
        if k <= 0:
            return 0
        nbytes = (k + 7) // 8
        return int.from_bytes(self._source.bytes(nbytes), "big") >> (8 * nbytes - k)


def check_rng(rng: object) -> RandomSource:
    """Return ``rng`` if it is a :class:`RandomSource`, the system CSPRNG if it is ``None``
    (a byte source such as ``ctx.random`` goes through :func:`bits_from` first)."""
    if rng is None:
        return default_rng()
    if not isinstance(rng, RandomSource):
        raise ConfigError(
            "rng must provide getrandbits(k) (random.Random, secrets.SystemRandom, or "
            f"bits_from(a byte source)), got {type(rng).__name__}"
        )
    return rng


def random_bytes(rng: RandomSource, count: int) -> bytes:
    """``count`` random bytes from one call to ``rng`` (so seeded sources are reproducible)."""
    if count == 0:
        return b""
    return rng.getrandbits(8 * count).to_bytes(count, "little")


def random_below(rng: RandomSource, bound: int) -> int:
    """A uniform integer in ``[0, bound)`` by rejection sampling."""
    k = bound.bit_length()
    while True:
        x = rng.getrandbits(k)
        if x < bound:
            return x


def random_unit(rng: RandomSource, n: int) -> Any:
    """A uniform element of Z*_n (as an mpz)."""
    while True:
        x = gmpy2.mpz(random_below(rng, n))
        if x > 1 and gmpy2.gcd(x, n) == 1:
            return x


def random_prime(rng: RandomSource, bits: int) -> Any:
    """A random prime of exactly ``bits`` bits with its two top bits set (so a product of two
    such primes has exactly twice as many bits). Probabilistic test: BPSW plus 40 Miller–Rabin
    rounds (error probability far below 2^-80)."""
    if bits < 16:
        raise ConfigError("primes must have at least 16 bits")
    top = gmpy2.mpz(3) << (bits - 2)
    while True:
        x = gmpy2.mpz(rng.getrandbits(bits)) | top | 1
        if gmpy2.is_prime(x, 40):
            return x


def rsa_security_bits(n_bits: int) -> int:
    """Symmetric-equivalent security of factoring an ``n_bits`` modulus.

    NIST SP 800-57 Part 1 Table 2 for the standard sizes (2048 → 112, 3072 → 128, 7680 → 192,
    15360 → 256), and the GNFS heuristic (as used by NIST/ECRYPT) in between and below.
    """
    table = ((15360, 256), (7680, 192), (3072, 128), (2048, 112))
    for size, sec in table:
        if n_bits >= size:
            return sec
    x = n_bits * math.log(2)
    gnfs = 1.923 * (x ** (1 / 3)) * (math.log(x) ** (2 / 3)) / math.log(2) - 4.69
    return max(1, int(gnfs))


def default_jobs() -> int:
    """Number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _released(
    fn: Callable[[Sequence[T]], list[R]], chunk: Sequence[T], release: bool = True
) -> list[R]:
    # Thread-local gmpy2 context: other threads and the caller's context are untouched.
    with gmpy2.context(allow_release_gil=release):
        return fn(chunk)


def parallel_map(
    fn: Callable[[Sequence[T]], list[R]],
    items: Sequence[T],
    *,
    executor: Executor | None = None,
    n_jobs: int | None = None,
    release_gil: bool = True,
) -> list[R]:
    """Apply the batch function ``fn`` to chunks of ``items`` and concatenate the results.

    ``executor`` (any :class:`concurrent.futures.Executor` running in this process, normally a
    :class:`ThreadPoolExecutor`; a :class:`ProcessPoolExecutor` is replaced by threads here) is
    used if given; otherwise a thread pool of ``n_jobs`` threads
    (default: all available cores) is created for the call. Small batches run inline. Order is
    preserved, so results are deterministic whatever the number of threads. ``release_gil``
    lets gmpy2 release the GIL during each operation: worth it for large operands (4096-bit
    Paillier ciphertexts), counter-productive for small ones where the hand-offs dominate.
    """
    count = len(items)
    if isinstance(executor, ProcessPoolExecutor):
        # ``fn`` is a closure over in-process state: it cannot be shipped to other processes.
        # Operations with a process path (encryption) dispatch before reaching this point.
        executor = None
    if executor is None:
        jobs = default_jobs() if n_jobs is None else n_jobs
        if jobs < 1:
            raise ConfigError(f"n_jobs must be at least 1, got {jobs}")
    else:
        jobs = n_jobs or default_jobs()
    if count == 0:
        return []
    n_chunks = min(jobs * 4, max(1, count // MIN_CHUNK))
    if n_chunks <= 1 or (executor is None and (jobs == 1 or not release_gil)):
        return _released(fn, items, release_gil)
    bounds = [count * i // n_chunks for i in range(n_chunks + 1)]
    chunks = [items[bounds[i] : bounds[i + 1]] for i in range(n_chunks)]
    if executor is not None:
        futures = [executor.submit(_released, fn, c, release_gil) for c in chunks]
        parts = [f.result() for f in futures]
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="privfin-he") as pool:
            parts = list(pool.map(lambda c: _released(fn, c, release_gil), chunks))
    out: list[R] = []
    for part in parts:
        out.extend(part)
    return out


class FixedBaseTable:
    """Precomputed powers of a fixed base for fast exponentiation with ``window``-bit digits.

    Row ``i`` holds ``base ** (d * 2**(window*i)) mod modulus`` for ``d`` in
    ``0 .. 2**window - 1``, so ``base**e`` costs one modular multiplication per non-zero
    ``window``-bit digit of ``e`` instead of ~1.2 per bit: 31 multiplications for a 256-bit
    exponent with 8-bit windows, 21 with 12-bit windows. Memory grows as ``2**window / window``
    residues per exponent bit (256-bit exponents: 8 192 residues at 8 bits, 90 112 at 12 bits,
    i.e. 46 MiB of 4096-bit residues). Rows are built lazily (thread-safe) up to the largest
    exponent used; :meth:`ensure_bits` builds them ahead of a parallel batch.

    Timing: the number of multiplications depends on the number of zero digits of the exponent.
    The exponents used here are random blinding values never reused, or plaintexts that the
    caller holds anyway; this code does not claim constant time against local side channels.
    """

    __slots__ = ("_base", "_lock", "_mask", "_mod", "_rows", "window")

    def __init__(self, base: Any, modulus: Any, window: int = 8) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or not 2 <= window <= 16:
            raise ConfigError(f"window must be an int in [2, 16], got {window!r}")
        self._base = gmpy2.mpz(base) % modulus
        self._mod = gmpy2.mpz(modulus)
        self.window = window
        self._mask = (1 << window) - 1
        self._rows: list[list[Any]] = []
        self._lock = threading.Lock()

    @property
    def residues(self) -> int:
        """Number of residues stored so far (memory: this times the modulus size)."""
        return sum(len(row) for row in self._rows)

    def ensure_bits(self, bits: int) -> None:
        """Make sure exponents of up to ``bits`` bits need no new rows."""
        count = -(-bits // self.window)
        if len(self._rows) >= count:
            return
        size = 1 << self.window
        with self._lock, gmpy2.context(allow_release_gil=True):
            mod = self._mod
            while len(self._rows) < count:
                if self._rows:
                    prev = self._rows[-1]
                    first = prev[size - 1] * prev[1] % mod
                else:
                    first = self._base
                row = [gmpy2.mpz(1), first]
                acc = first
                for _ in range(size - 2):
                    acc = acc * first % mod
                    row.append(acc)
                self._rows.append(row)

    def touch(self) -> int:
        """Visit every residue (returns how many). In a forked worker this takes the
        copy-on-write faults of the inherited table up front, not during the first batch."""
        count = 0
        for row in self._rows:
            for _ in row:
                count += 1
        return count

    def mul_pow(self, acc: Any, exponent: int) -> Any:
        """``acc * base ** exponent mod modulus`` (``acc=None`` stands for 1; ``exponent >= 0``).

        Starting from ``acc`` saves the final multiplication when the result is combined with
        another group element (OU: ``g**m * h**r``).
        """
        if exponent < 0:
            raise ValueError("FixedBaseTable.pow needs a non-negative exponent")
        rows = self._rows
        w = self.window
        if len(rows) * w < exponent.bit_length():
            self.ensure_bits(exponent.bit_length())
            rows = self._rows
        mod = self._mod
        mask = self._mask
        i = 0
        while exponent:
            digit = exponent & mask
            if digit:
                acc = rows[i][digit] if acc is None else acc * rows[i][digit] % mod
            exponent >>= w
            i += 1
        return gmpy2.mpz(1) if acc is None else acc

    def pow(self, exponent: int) -> Any:
        """``base ** exponent mod modulus`` for ``exponent >= 0``."""
        return self.mul_pow(None, exponent)

    def pow_bytes(self, exponent: bytes) -> Any:
        """``base ** int.from_bytes(exponent, "little") mod modulus``."""
        return self.mul_pow(None, int.from_bytes(exponent, "little"))


def djn_exponent_bits(n_bits: int) -> int:
    """Bit length of the DJN blinding exponent: ``max(256, 2 * lambda)`` rounded up to bytes."""
    bits = max(256, 2 * rsa_security_bits(n_bits))
    return -(-bits // 8) * 8


def check_modulus_size(
    scheme: str,
    n_bits: int,
    insecure_allow_small_keys: bool,
    *,
    min_secure: int,
    min_insecure: int,
    max_bits: int,
) -> None:
    """Refuse moduli below 112-bit security unless explicitly allowed, and absurd sizes."""
    if n_bits > max_bits:
        raise ConfigError(f"{scheme} moduli above {max_bits} bits are not supported")
    if n_bits < min_secure:
        if not insecure_allow_small_keys:
            raise InsecureModeError(
                f"a {n_bits}-bit {scheme} modulus gives less than 112-bit security; use "
                f"n_bits >= {min_secure} (pass insecure_allow_small_keys=True only in tests)"
            )
        if n_bits < min_insecure:
            raise ConfigError(f"{scheme} moduli below {min_insecure} bits are refused")
