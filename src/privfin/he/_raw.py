"""The raw layer of an additively homomorphic scheme: keys that work on ciphertext integers.

A scheme provides a public key (an additively homomorphic group: ``Enc(a) * Enc(b) = Enc(a+b)``
modulo the ciphertext modulus, ``Enc(a) ** k = Enc(k*a)``) and a private key that decrypts to a
residue. :class:`RawPublicKey` holds what every scheme shares on top of that: bulk encryption
(fixed-base tables, thread and process pools, injected randomness), re-randomisation and the
element-wise operations; :class:`RawPrivateKey` decrypts. No encoding and no bound tracking here:
:mod:`privfin.he._vector` and :mod:`privfin.he._packed` build fixed-point vectors on these
operations and :mod:`privfin.he._keys` adds the encoded API (``encrypt``/``decrypt``).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar

import gmpy2

from privfin.errors import ConfigError, DecodeError
from privfin.he import _procs
from privfin.he._engine import Engine
from privfin.he._util import (
    RandomSource,
    check_rng,
    default_jobs,
    parallel_map,
    random_bytes,
)
from privfin.he._wire import WIRE_VERSION, int_to_bytes
from privfin.he.errors import KeyMismatchError

__all__ = [
    "DEFAULT_PROCESS_THRESHOLD",
    "RawPrivateKey",
    "RawPublicKey",
    "check_header",
    "check_keys_match",
    "join_ciphertexts",
    "split_ciphertexts",
]

#: Default :attr:`RawPublicKey.process_threshold` for keys of 2048 bits and more.
DEFAULT_PROCESS_THRESHOLD = 512


class RawPublicKey(ABC):
    """Public key of an additively homomorphic scheme: its group operations on raw ciphertexts.

    Subclasses set ``scheme``, the ciphertext modulus ``_mod``, the public plaintext capacity
    ``capacity_bits`` (every value with ``|m| < 2**capacity_bits`` decrypts exactly) and
    implement :meth:`_plain` and :meth:`_randomizer_table`.

    Keys compare equal, and have the same :attr:`fingerprint`, iff they are the same scheme and
    modulus. The default randomness source for encryption is the one the key was built with
    (the system CSPRNG unless a seeded source was injected for test vectors).

    Parallelism: bulk encryption (:meth:`raw_encrypt`, :meth:`raw_randomizers` and everything
    built on them) runs in a process pool when ``executor`` is a
    :class:`~concurrent.futures.ProcessPoolExecutor`, or, with no executor, when ``n_jobs``
    (default: all cores) is above 1 and the batch has at least :attr:`process_threshold` items.
    That pool belongs to the key: created on first use (or by :meth:`precompute`), its workers
    rebuild the key's tables once, and it is shut down by :meth:`close` or when the key is
    garbage-collected. ``process_threshold`` is 512 for keys of 2048 bits and more and ``None``
    (never start processes) for the small test-only keys; set it to change the policy.
    Results do not depend on the path: all randomness is drawn here, up front.
    """

    scheme: ClassVar[str] = ""

    def __init__(self, n: int, *, exponent_bits: int, rng: RandomSource | None) -> None:
        self._n = gmpy2.mpz(n)
        self.n = int(n)
        self.n_bits = self.n.bit_length()
        self.exponent_bits = exponent_bits
        self._rng = check_rng(rng)
        self._mod: Any = gmpy2.mpz(0)
        self.capacity_bits = 0
        self.process_threshold: int | None = (
            DEFAULT_PROCESS_THRESHOLD if self.n_bits >= 2046 else None
        )
        self._engine_obj: Engine | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._pool_jobs = 0
        self._pool_finalizer: weakref.finalize[Any, Any] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ scheme hooks
    @abstractmethod
    def _plain(self, m: int) -> Any:
        """The deterministic group element encoding plaintext ``m`` (may be negative)."""

    @abstractmethod
    def _make_engine(self) -> Engine:
        """The encryption engine of this key (fixed bases and window sizes)."""

    def _plaintext(self, m: int) -> int:
        """The form of plaintext ``m`` the engine encrypts (Paillier: the residue mod ``n``)."""
        return m

    @abstractmethod
    def to_wire(self) -> dict[str, Any]:
        """The public key as plain Python values (ints as big-endian bytes)."""

    # ------------------------------------------------------------------ identity
    @property
    def _release_gil(self) -> bool:
        # Table-based encryption does many multiplications: letting gmpy2 drop the GIL for each
        # pays off only when each one is large (measured: yes for 4096-bit, no for 2048-bit).
        return int(self._mod).bit_length() >= 3000

    @property
    def ciphertext_modulus(self) -> int:
        """Ciphertexts live in Z*_M for this M (``n**2`` for Paillier, ``n`` for OU)."""
        return int(self._mod)

    @property
    def ciphertext_bytes(self) -> int:
        """Fixed width of one serialised ciphertext."""
        return (int(self._mod).bit_length() + 7) // 8

    @property
    def fingerprint(self) -> str:
        """Hex SHA-256 of the scheme name and modulus: identifies the key in logs and messages."""
        return hashlib.sha256(self.scheme.encode() + b"|" + int_to_bytes(self.n)).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawPublicKey):
            return NotImplemented
        return self.scheme == other.scheme and self.n == other.n

    def __hash__(self) -> int:
        return hash((self.scheme, self.n))

    def __repr__(self) -> str:
        return f"<{self.scheme} PublicKey {self.n_bits}-bit {self.fingerprint[:16]}>"

    def check_same_key(self, other: RawPublicKey) -> None:
        """Raise :class:`KeyMismatchError` unless ``other`` is this key."""
        if other != self:
            raise KeyMismatchError(
                f"ciphertexts under different keys ({self.fingerprint[:16]} vs "
                f"{other.fingerprint[:16]}) cannot be combined or decrypted together"
            )

    # ------------------------------------------------------------------ raw operations
    def check_ciphertext(self, c: int) -> None:
        """Raise :class:`DecodeError` unless ``0 < c < M`` and ``gcd(c, n) == 1``."""
        if not 0 < c < self._mod or gmpy2.gcd(c, self._n) != 1:
            raise DecodeError(f"value is not a valid {self.scheme} ciphertext for this key")

    def _engine(self) -> Engine:
        engine = self._engine_obj
        if engine is None:
            with self._lock:
                if self._engine_obj is None:
                    self._engine_obj = self._make_engine()
                engine = self._engine_obj
        return engine

    def _process_pool(
        self, count: int, executor: Executor | None, n_jobs: int | None
    ) -> tuple[ProcessPoolExecutor, int, bool] | None:
        """The process pool to use for ``count`` items (with its size and whether it is ours),
        or ``None`` for the in-process path."""
        if isinstance(executor, ProcessPoolExecutor):
            return executor, n_jobs or default_jobs(), False
        if executor is not None:
            return None
        jobs = default_jobs() if n_jobs is None else n_jobs
        if jobs < 1:
            raise ConfigError(f"n_jobs must be at least 1, got {jobs}")
        threshold = self.process_threshold
        if jobs == 1 or threshold is None or count < threshold:
            return None
        if multiprocessing.current_process().daemon:
            return None  # a daemonic process (multiprocessing.Pool worker) may not fork
        return self._own_pool(jobs), jobs, True

    def _own_pool(self, jobs: int) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is not None and self._pool_jobs == jobs:
                return self._pool
        engine = self._engine()
        engine.prepare()  # forked workers inherit the built tables
        with self._lock:
            if self._pool is not None and self._pool_jobs == jobs:
                return self._pool  # another thread was faster
            old, old_finalizer = self._pool, self._pool_finalizer
            pool = _procs.make_pool(engine, jobs)
            self._pool, self._pool_jobs = pool, jobs
            self._pool_finalizer = weakref.finalize(self, pool.shutdown, wait=False)
        if old_finalizer is not None:
            old_finalizer.detach()
        if old is not None:
            old.shutdown(wait=False)  # a batch still running on it (another thread) finishes
        return pool

    def close(self) -> None:
        """Shut down this key's process pool, if it started one (idempotent; a later bulk
        operation starts a new one)."""
        with self._lock:
            pool, finalizer = self._pool, self._pool_finalizer
            self._pool, self._pool_jobs, self._pool_finalizer = None, 0, None
        if finalizer is not None:
            finalizer.detach()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def precompute(self, *, n_jobs: int | None = None) -> None:
        """Build the fixed-base tables now and, if bulk operations with ``n_jobs`` would use
        processes, start the pool and wait until every worker has built its tables."""
        self._engine().prepare()
        jobs = default_jobs() if n_jobs is None else n_jobs
        if jobs > 1 and self.process_threshold is not None:
            _procs.warm_up(self._own_pool(jobs), jobs)

    def __getstate__(self) -> dict[str, Any]:
        # Pools, locks and tables stay with this process; the copy rebuilds them lazily.
        state = self.__dict__.copy()
        for key in ("_pool", "_pool_finalizer", "_lock", "_engine_obj"):
            state.pop(key, None)
        state["_pool_jobs"] = 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pool = None
        self._pool_finalizer = None
        self._engine_obj = None
        self._lock = threading.Lock()

    def _bulk(
        self,
        ms: list[int] | None,
        count: int,
        rng: RandomSource | None,
        executor: Executor | None,
        n_jobs: int | None,
    ) -> list[Any]:
        """Encryptions of ``ms`` (or of zero if ``None``) with fresh short exponents."""
        source = self._rng if rng is None else check_rng(rng)
        width = self.exponent_bits // 8
        blob = random_bytes(source, width * count)
        engine = self._engine()
        try:
            chosen = self._process_pool(count, executor, n_jobs)
        except OSError:  # no pool could be created here (limits): stay in this process
            chosen = None
        if chosen is not None and count:
            pool, jobs, ours = chosen
            try:
                return _procs.run_encrypt(
                    pool, engine.spec, ms, blob, width, jobs, engine.ciphertext_bytes
                )
            except (BrokenProcessPool, OSError):
                if not ours:
                    raise
                # A worker died (killed, out of memory) or none could start: finish here.
                self.close()
        exps = [int.from_bytes(blob[i : i + width], "little") for i in range(0, len(blob), width)]
        engine.prepare(() if ms is None else ms)
        release = self._release_gil
        if isinstance(executor, ProcessPoolExecutor):
            executor = None
        if ms is None:
            return parallel_map(
                engine.randomizers, exps, executor=executor, n_jobs=n_jobs, release_gil=release
            )
        encrypt = engine.encrypt

        def work(chunk: Sequence[tuple[int, int]]) -> list[Any]:
            return encrypt([m for m, _ in chunk], [a for _, a in chunk])

        items = list(zip(ms, exps, strict=True))
        return parallel_map(work, items, executor=executor, n_jobs=n_jobs, release_gil=release)

    def raw_randomizers(
        self,
        count: int,
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> list[Any]:
        """``count`` fresh encryptions of zero (``h_s**a`` with random short ``a``)."""
        return self._bulk(None, count, rng, executor, n_jobs)

    def raw_encrypt(
        self,
        plaintexts: Sequence[int],
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> list[int]:
        """Encrypt integers without encoding or bound tracking (for protocols built on top).

        Paillier reduces each plaintext modulo ``n``; OU accepts ``|m| < 2**capacity_bits``.
        Returns ciphertexts in Z*_M (gmpy2 integers). IND-CPA under the scheme's assumption
        (SPEC.md). ``executor`` may be a thread pool or a process pool (see the class notes).
        """
        ms = [self._plaintext(int(m)) for m in plaintexts]
        return self._bulk(ms, len(ms), rng, executor, n_jobs)

    def raw_add(self, a: Sequence[int], b: Sequence[int]) -> list[int]:
        """Element-wise homomorphic addition of two ciphertext lists."""
        if len(a) != len(b):
            raise ConfigError(f"length mismatch: {len(a)} vs {len(b)}")
        mod = self._mod
        return [gmpy2.mpz(x) * y % mod for x, y in zip(a, b, strict=True)]

    def raw_add_plain(self, cts: Sequence[int], plaintexts: Sequence[int]) -> list[int]:
        """Element-wise ``Enc(a) -> Enc(a + m)`` (deterministic: obfuscate before sharing)."""
        if len(cts) != len(plaintexts):
            raise ConfigError(f"length mismatch: {len(cts)} vs {len(plaintexts)}")
        mod = self._mod
        plain = self._plain
        return [gmpy2.mpz(c) * plain(int(m)) % mod for c, m in zip(cts, plaintexts, strict=True)]

    def raw_mul(
        self,
        cts: Sequence[int],
        scalars: Sequence[int],
        *,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> list[int]:
        """Element-wise ``Enc(a) -> Enc(k * a)`` for integer ``k`` (negative allowed)."""
        if len(cts) != len(scalars):
            raise ConfigError(f"length mismatch: {len(cts)} vs {len(scalars)}")
        mod = self._mod

        def work(chunk: Sequence[tuple[int, int]]) -> list[Any]:
            return [gmpy2.powmod(c, k, mod) for c, k in chunk]

        pairs = [(gmpy2.mpz(c), int(k)) for c, k in zip(cts, scalars, strict=True)]
        return parallel_map(work, pairs, executor=executor, n_jobs=n_jobs)

    def raw_sum(self, cts: Sequence[int]) -> Any:
        """Homomorphic sum of a list of ciphertexts (``1``, a valid Enc(0), if empty)."""
        mod = self._mod
        acc = gmpy2.mpz(1)
        for c in cts:
            acc = acc * c % mod
        return acc

    def _uniform_zeros(self, rs: Sequence[Any]) -> list[Any]:
        """Encryptions of zero with uniform randomness from uniform ``rs`` in ``[1, n)``."""
        raise NotImplementedError  # pragma: no cover - every scheme overrides it

    def raw_obfuscate_for_owner(
        self,
        cts: Sequence[int],
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> list[int]:
        """Re-randomise with a **uniformly** random encryption of zero (Paillier ``r**n``,
        ``r`` uniform in ``Z*_n``), for every ciphertext that goes back to the key's owner.

        The short-exponent randomiser of :meth:`raw_obfuscate` (``h_s**a``, DJN) hides a
        ciphertext's history from anyone who cannot factor ``n`` — but not from the owner,
        who knows the factors, chose ``h_s`` and the randomness of its own ciphertexts, and
        may have chosen primes with smooth ``p − 1``: from the random part of a reply it can
        take discrete logarithms modulo ``p`` and read the scalars this party multiplied in
        (feature values, shares, bin memberships), even from a key with a valid modulus proof.
        With ``gcd(n, φ(n)) = 1`` (the proof) ``r**n`` is uniform among the randomisers, so
        the reply carries its plaintext and nothing else. Cost: one full ``|n|``-bit
        exponentiation per ciphertext (~11 ms at 2048 bits, on threads).
        """
        source = self._rng if rng is None else check_rng(rng)
        n = self.n
        width = (n.bit_length() + 128 + 7) // 8  # bias below 2**-128
        blob = random_bytes(source, width * len(cts))
        rs = [
            gmpy2.mpz(int.from_bytes(blob[i : i + width], "little") % (n - 1) + 1)
            for i in range(0, len(blob), width)
        ]
        if isinstance(executor, ProcessPoolExecutor):
            executor = None
        zeros = parallel_map(self._uniform_zeros, rs, executor=executor, n_jobs=n_jobs)
        mod = self._mod
        return [gmpy2.mpz(c) * z % mod for c, z in zip(cts, zeros, strict=True)]

    def raw_obfuscate(
        self,
        cts: Sequence[int],
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> list[int]:
        """Multiply each ciphertext by a fresh encryption of zero (re-randomisation against
        third parties; for a ciphertext going back to the key's owner use
        :meth:`raw_obfuscate_for_owner`)."""
        rs = self.raw_randomizers(len(cts), rng=rng, executor=executor, n_jobs=n_jobs)
        mod = self._mod
        return [gmpy2.mpz(c) * r % mod for c, r in zip(cts, rs, strict=True)]


class RawPrivateKey(ABC):
    """Private key: holds the secret factors and decrypts raw ciphertexts to integers. Never
    serialised by this package."""

    def __init__(self, public_key: RawPublicKey) -> None:
        self.public_key = public_key

    def __repr__(self) -> str:
        return f"<{self.public_key.scheme} PrivateKey for {self.public_key.fingerprint[:16]}>"

    @abstractmethod
    def _residues(self, cts: Sequence[Any]) -> list[int]:
        """Decrypt a chunk of ciphertexts (mpz) to residues in ``[0, plaintext modulus)``."""

    @abstractmethod
    def _signed(self, cts: Sequence[Any], plain_bits: int | None) -> list[int]:
        """Decrypt a chunk to signed integers (centered residues).

        ``plain_bits``, if given, is a public bound ``|m| < 2**plain_bits`` on the plaintexts
        that the scheme may use to decrypt faster (Paillier: modulo ``p`` only).
        """

    def raw_decrypt(
        self,
        cts: Sequence[int],
        *,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> list[int]:
        """Decrypt ciphertexts to residues (``[0, n)`` for Paillier, ``[0, p)`` for OU).

        Runs on threads (``executor`` or ``n_jobs``): each chunk is one ``powmod_base_list``
        call per prime, which releases the GIL; the private key never leaves this process.
        """
        items = [gmpy2.mpz(c) for c in cts]
        return parallel_map(self._residues, items, executor=executor, n_jobs=n_jobs)

    def decrypt_ints(
        self,
        cts: Sequence[int],
        *,
        executor: Executor | None = None,
        n_jobs: int | None = None,
        plain_bits: int | None = None,
    ) -> list[int]:
        """Decrypt to signed integers (centered residues).

        ``plain_bits``: a bound ``|m| < 2**plain_bits`` known to hold for honest ciphertexts
        (the tracked ``bound_bits``); it lets Paillier decrypt modulo ``p`` alone when
        ``plain_bits`` is far below ``|p|`` (half the work). A ciphertext whose plaintext
        breaks the bound then decrypts to an unrelated value that the caller's bound check
        rejects, except with probability ``2**(plain_bits + 1 - |p|)`` for a random one, or by
        an adversary who knows a multiple of ``p`` (who can factor ``n``).
        """
        items = [gmpy2.mpz(c) for c in cts]

        def work(chunk: Sequence[Any]) -> list[int]:
            return self._signed(chunk, plain_bits)

        return parallel_map(work, items, executor=executor, n_jobs=n_jobs)


def join_ciphertexts(cts: Sequence[Any], width: int) -> bytes:
    """Ciphertexts as one blob of fixed-width big-endian integers."""
    return b"".join(int(c).to_bytes(width, "big") for c in cts)


def split_ciphertexts(pk: RawPublicKey, blob: object, count: int) -> list[Any]:
    """Inverse of :func:`join_ciphertexts`; checks every ciphertext lies in Z*_M of ``pk``."""
    width = pk.ciphertext_bytes
    if not isinstance(blob, bytes) or len(blob) != width * count:
        raise DecodeError(f"field 'ct' must hold {count} ciphertexts of {width} bytes")
    out = []
    for i in range(count):
        c = gmpy2.mpz(int.from_bytes(blob[i * width : (i + 1) * width], "big"))
        pk.check_ciphertext(c)
        out.append(c)
    return out


def check_header(pk: RawPublicKey, data: object, kind: str) -> dict[str, Any]:
    """Check the kind, version, scheme and key fingerprint of a wire dict; return it."""
    if not isinstance(data, dict):
        raise DecodeError(f"expected a dict for {kind}, got {type(data).__name__}")
    if data.get("kind") != kind or data.get("v") != WIRE_VERSION:
        raise DecodeError(f"not a version-{WIRE_VERSION} {kind}")
    if data.get("scheme") != pk.scheme:
        raise DecodeError(f"scheme {data.get('scheme')!r} does not match key ({pk.scheme})")
    if data.get("key") != bytes.fromhex(pk.fingerprint):
        raise DecodeError("ciphertexts were encrypted under another key (fingerprint mismatch)")
    return data


def check_keys_match(a: RawPublicKey, b: RawPublicKey) -> None:
    """Raise :class:`KeyMismatchError` unless ``a`` and ``b`` are the same key."""
    a.check_same_key(b)
