"""Scheme-independent machinery shared by :mod:`privfin.he.paillier` and :mod:`privfin.he.ou`.

A scheme provides a public key (an additively homomorphic group: ``Enc(a) * Enc(b) = Enc(a+b)``
modulo the ciphertext modulus, ``Enc(a) ** k = Enc(k*a)``) and a private key that decrypts to a
residue. On top of that this module builds fixed-point :class:`EncryptedVector` and packed
:class:`PackedEncryptedVector` values with overflow tracking, batched over a thread pool.
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
from typing import Any, ClassVar, Self

import gmpy2
import numpy as np

from privfin.errors import ConfigError, DecodeError
from privfin.he import _procs
from privfin.he._encoding import (
    DEFAULT_FRAC_BITS,
    Encoded,
    ceil_log2,
    declared_bits,
    decode_values,
    encode_values,
    flatten,
    to_fixed,
)
from privfin.he._engine import Engine
from privfin.he._util import (
    RandomSource,
    check_rng,
    default_jobs,
    parallel_map,
    random_bytes,
)
from privfin.he.errors import KeyMismatchError, OverflowDetected

__all__ = ["EncryptedVector", "PackedEncryptedVector", "PrivateKeyBase", "PublicKeyBase"]

#: Upper bound on the number of ciphertexts accepted by ``from_wire``.
MAX_WIRE_CIPHERTEXTS = 1 << 24
#: Upper bound on ``frac_bits`` / ``bound_bits`` accepted by ``from_wire``.
MAX_WIRE_BITS = 1 << 16

WIRE_VERSION = 1

#: Default :attr:`PublicKeyBase.process_threshold` for keys of 2048 bits and more.
DEFAULT_PROCESS_THRESHOLD = 512


def int_to_bytes(x: int) -> bytes:
    """Big-endian minimal encoding of a non-negative int (``b"\\x00"`` for 0)."""
    return int(x).to_bytes(max(1, (int(x).bit_length() + 7) // 8), "big")


def int_from_wire(data: dict[str, Any], key: str) -> int:
    """Read a non-negative int stored as big-endian bytes (or a plain int) under ``key``."""
    value = data.get(key)
    if isinstance(value, bytes):
        if len(value) > 8192:
            raise DecodeError(f"field {key!r} is too large")
        return int.from_bytes(value, "big")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise DecodeError(f"field {key!r} must be a non-negative integer or bytes")


def _small_int(data: dict[str, Any], key: str, upper: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise DecodeError(f"field {key!r} must be an int in [0, {upper}]")
    return value


class PublicKeyBase(ABC):
    """Public key of an additively homomorphic scheme.

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
        if not isinstance(other, PublicKeyBase):
            return NotImplemented
        return self.scheme == other.scheme and self.n == other.n

    def __hash__(self) -> int:
        return hash((self.scheme, self.n))

    def __repr__(self) -> str:
        return f"<{self.scheme} PublicKey {self.n_bits}-bit {self.fingerprint[:16]}>"

    def check_same_key(self, other: PublicKeyBase) -> None:
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

    # ------------------------------------------------------------------ encoded API
    def encrypt(
        self,
        values: object,
        *,
        frac_bits: int | None = None,
        value_bits: int | None = None,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> EncryptedVector:
        """Encrypt a number, a list or a 1-D numpy array of ints or floats.

        Parameters
        ----------
        values:
            Ints stay ints; floats are rounded to ``frac_bits`` fractional bits (default 32).
        value_bits:
            Declared public bound ``|x| < 2**value_bits``; default: 64-bit granular (see SPEC).
        rng, executor, n_jobs:
            Randomness source (default: the key's, normally the OS CSPRNG) and parallelism.

        Returns
        -------
        EncryptedVector
            Fresh ciphertexts, IND-CPA under the scheme's assumptions. The vector's length,
            frac_bits and bound are public.
        """
        enc = encode_values(values, frac_bits, value_bits)
        self._check_capacity(enc.bound_bits)
        cts = self.raw_encrypt(enc.ints, rng=rng, executor=executor, n_jobs=n_jobs)
        return EncryptedVector(
            self, cts, frac_bits=enc.frac_bits, bound_bits=enc.bound_bits,
            is_float=enc.is_float, container=enc.container, fresh=True,
        )  # fmt: skip

    def encrypt_packed(
        self,
        values: object,
        *,
        slot_bits: int = 64,
        frac_bits: int | None = None,
        headroom_bits: int = 16,
        value_bits: int | None = None,
        slots: int | None = None,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> PackedEncryptedVector:
        """Encrypt many values per ciphertext in signed slots of ``slot_bits`` bits.

        A 1-D input is cut into rows of ``slots`` values (default: as many as fit); a 2-D numpy
        array is packed one row per ciphertext. Each value must satisfy
        ``|x * 2**f| < 2**(slot_bits - 1 - headroom_bits)`` (or ``|x| < 2**value_bits`` if
        given), which leaves room for ``2**headroom_bits`` additions before decryption refuses
        with :class:`OverflowDetected`.
        """
        layout = _Layout.make(self, slot_bits, slots)
        arr2d, flat_len, container = _rows_of(values, layout.slots)
        is_float = bool(arr2d.dtype.kind == "f")
        f = (DEFAULT_FRAC_BITS if frac_bits is None else frac_bits) if is_float else 0
        if value_bits is None:
            bits = slot_bits - 1 - headroom_bits
            if bits < 1 + f:
                raise ConfigError(
                    f"slot_bits={slot_bits} leaves no room for values with {f} fractional bits "
                    f"and headroom_bits={headroom_bits}; increase slot_bits"
                )
        else:
            bits = value_bits + f
        rows = [to_fixed(row, f) for row in arr2d.tolist()]
        largest = max((abs(m) for row in rows for m in row), default=0)
        if largest >= 1 << bits or bits > slot_bits - 1:
            raise OverflowDetected(
                f"a value does not fit its slot: |x * 2**{f}| must be below 2**{bits}; "
                "increase slot_bits or lower headroom_bits"
            )
        packed = [layout.pack(row) for row in rows]
        cts = self.raw_encrypt(packed, rng=rng, executor=executor, n_jobs=n_jobs)
        return PackedEncryptedVector(
            self, cts, layout=layout, cols=arr2d.shape[1], frac_bits=f, bound_bits=bits,
            is_float=is_float, flat_length=flat_len, container=container, fresh=True,
        )  # fmt: skip

    def _check_capacity(self, bits: int) -> None:
        if bits > self.capacity_bits:
            raise OverflowDetected(
                f"values need {bits} bits but this key holds at most {self.capacity_bits}"
            )


class PrivateKeyBase(ABC):
    """Private key: holds the secret factors. Never serialised by this package."""

    def __init__(self, public_key: PublicKeyBase) -> None:
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

    def decrypt(
        self,
        vec: EncryptedVector | PackedEncryptedVector,
        *,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> Any:
        """Decrypt a vector to the same shape of container it was encrypted from.

        Raises
        ------
        KeyMismatchError
            If ``vec`` was encrypted under another key.
        OverflowDetected
            If the tracked bound exceeds the key capacity (or slot width), or a decrypted value
            lies outside its bound: a wrapped or tampered ciphertext is never returned.
        """
        self.public_key.check_same_key(vec.public_key)
        if isinstance(vec, PackedEncryptedVector):
            return vec._decrypt_with(self, executor=executor, n_jobs=n_jobs)
        if vec.bound_bits > self.public_key.capacity_bits:
            raise OverflowDetected(
                f"the result may have wrapped: its bound is 2**{vec.bound_bits} but the key "
                f"holds {self.public_key.capacity_bits} bits; use a larger key or fewer "
                "multiplications"
            )
        ints = self.decrypt_ints(
            vec.ciphertexts_raw, executor=executor, n_jobs=n_jobs, plain_bits=vec.bound_bits
        )
        limit = 1 << vec.bound_bits
        for m in ints:
            if not -limit < m < limit:
                raise OverflowDetected(
                    "a decrypted value lies outside its declared bound (wrapped or tampered)"
                )
        return decode_values(ints, vec.is_float, vec.frac_bits, vec.container)


# ====================================================================== vectors


def _scalar_or_values(other: object) -> bool:
    return isinstance(other, (bool, int, float, np.integer, np.floating)) or (
        isinstance(other, np.ndarray) and other.ndim == 0
    )


class EncryptedVector:
    """A vector of ciphertexts under one public key, with fixed-point metadata.

    Supports ``+``/``-`` with another vector or plaintext (scalar broadcast), ``*`` by a
    plaintext scalar or vector, :meth:`sum`, :meth:`dot`, indexing, :meth:`obfuscate`,
    :meth:`pack`, and :meth:`to_wire` / :meth:`from_wire`.

    Public metadata (visible to anyone holding it): length, ``frac_bits``, ``bound_bits``
    (all ``|encoded value| < 2**bound_bits``), whether it holds floats. Results of operations
    are not re-randomised (``fresh`` is False); :meth:`to_wire` re-randomises them by default
    so their randomness reveals nothing about how they were computed.
    """

    __slots__ = ("_cts", "bound_bits", "container", "frac_bits", "fresh", "is_float", "public_key")
    #: Make ``ndarray + vec`` and ``ndarray * vec`` defer to this class.
    __array_ufunc__ = None

    def __init__(
        self,
        public_key: PublicKeyBase,
        ciphertexts: Sequence[Any],
        *,
        frac_bits: int,
        bound_bits: int,
        is_float: bool,
        container: str = "list",
        fresh: bool = False,
    ) -> None:
        self.public_key = public_key
        self._cts: list[Any] = list(ciphertexts)
        self.frac_bits = frac_bits
        self.bound_bits = bound_bits
        self.is_float = is_float
        self.container = container
        self.fresh = fresh

    # ------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._cts)

    def __repr__(self) -> str:
        kind = "float" if self.is_float else "int"
        return (
            f"<EncryptedVector {self.public_key.scheme} len={len(self)} {kind} "
            f"frac_bits={self.frac_bits} bound=2**{self.bound_bits}>"
        )

    @property
    def ciphertexts(self) -> list[int]:
        """The ciphertexts as Python ints."""
        return [int(c) for c in self._cts]

    @property
    def ciphertexts_raw(self) -> list[Any]:
        """The ciphertexts as stored (gmpy2 mpz), no copy of the values."""
        return self._cts

    def _like(
        self,
        cts: Sequence[Any],
        *,
        frac_bits: int | None = None,
        bound_bits: int | None = None,
        is_float: bool | None = None,
        container: str | None = None,
        fresh: bool = False,
    ) -> EncryptedVector:
        return EncryptedVector(
            self.public_key,
            cts,
            frac_bits=self.frac_bits if frac_bits is None else frac_bits,
            bound_bits=self.bound_bits if bound_bits is None else bound_bits,
            is_float=self.is_float if is_float is None else is_float,
            container=self.container if container is None else container,
            fresh=fresh,
        )

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray[Any, Any]) -> Self:
        if isinstance(index, (int, np.integer)):
            return self._like([self._cts[int(index)]], container="scalar", fresh=self.fresh)  # type: ignore[return-value]
        if isinstance(index, slice):
            return self._like(self._cts[index], fresh=self.fresh)  # type: ignore[return-value]
        idx = np.asarray(index)
        if idx.dtype.kind == "b":
            idx = np.flatnonzero(idx)
        return self._like([self._cts[int(i)] for i in idx.tolist()], fresh=self.fresh)  # type: ignore[return-value]

    def rescale(self, frac_bits: int, *, n_jobs: int | None = None) -> EncryptedVector:
        """The same values with more fractional bits (multiplies by ``2**delta``)."""
        delta = frac_bits - self.frac_bits
        if delta < 0:
            raise ConfigError("cannot lower frac_bits of a ciphertext homomorphically")
        if delta == 0:
            return self
        pk = self.public_key
        cts = pk.raw_mul(self._cts, [1 << delta] * len(self), n_jobs=n_jobs)
        return self._like(
            cts, frac_bits=frac_bits, bound_bits=self.bound_bits + delta, is_float=True
        )

    # ------------------------------------------------------------ addition
    def add(self, other: object, *, n_jobs: int | None = None) -> EncryptedVector:
        """``self + other`` for another vector (same key) or plaintext values/scalar."""
        pk = self.public_key
        if isinstance(other, EncryptedVector):
            pk.check_same_key(other.public_key)
            if len(other) != len(self):
                raise ConfigError(f"length mismatch: {len(self)} vs {len(other)}")
            f = max(self.frac_bits, other.frac_bits)
            a = self.rescale(f, n_jobs=n_jobs)
            b = other.rescale(f, n_jobs=n_jobs)
            return self._like(
                pk.raw_add(a._cts, b._cts),
                frac_bits=f,
                bound_bits=max(a.bound_bits, b.bound_bits) + 1,
                is_float=self.is_float or other.is_float,
            )
        if isinstance(other, PackedEncryptedVector):
            raise ConfigError("cannot add a packed and an unpacked vector; pack() it first")
        plain = encode_values(other, self.frac_bits if self.is_float else None)
        f = max(self.frac_bits, plain.frac_bits)
        base = self.rescale(f, n_jobs=n_jobs)
        shift = f - plain.frac_bits
        ints = [m << shift for m in self._broadcast(plain)]
        return base._like(
            pk.raw_add_plain(base._cts, ints),
            bound_bits=max(base.bound_bits, plain.bound_bits + shift) + 1,
            is_float=base.is_float or plain.is_float,
        )

    def _broadcast(self, plain: Encoded) -> list[int]:
        if plain.container == "scalar":
            return plain.ints * len(self)
        if len(plain.ints) != len(self):
            raise ConfigError(f"length mismatch: {len(self)} vs {len(plain.ints)}")
        return plain.ints

    def __add__(self, other: object) -> EncryptedVector:
        return self.add(other)

    def __radd__(self, other: object) -> EncryptedVector:
        return self.add(other)

    def __neg__(self) -> EncryptedVector:
        mod = self.public_key._mod
        return self._like([gmpy2.invert(c, mod) for c in self._cts])

    def __sub__(self, other: object) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self.add(-other)
        return self.add(_negated(other))

    def __rsub__(self, other: object) -> EncryptedVector:
        return (-self).add(other)

    # ------------------------------------------------------------ multiplication
    def mul(
        self,
        other: object,
        *,
        frac_bits: int | None = None,
        value_bits: int | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> EncryptedVector:
        """``self * other`` for a plaintext scalar or vector (element-wise).

        A float multiplier is encoded with ``frac_bits`` (default 32) and the result carries
        ``self.frac_bits + frac_bits`` fractional bits.
        """
        if isinstance(other, (EncryptedVector, PackedEncryptedVector)):
            raise ConfigError(
                "additively homomorphic ciphertexts can only be multiplied by plaintexts"
            )
        plain = encode_values(other, frac_bits, value_bits)
        ints = self._broadcast(plain)
        cts = self.public_key.raw_mul(self._cts, ints, executor=executor, n_jobs=n_jobs)
        return self._like(
            cts,
            frac_bits=self.frac_bits + plain.frac_bits,
            bound_bits=self.bound_bits + plain.bound_bits,
            is_float=self.is_float or plain.is_float,
        )

    def __mul__(self, other: object) -> EncryptedVector:
        return self.mul(other)

    def __rmul__(self, other: object) -> EncryptedVector:
        return self.mul(other)

    # ------------------------------------------------------------ reductions
    def sum(self) -> EncryptedVector:
        """Encrypted sum of all elements (a scalar-container vector of length 1)."""
        total = self.public_key.raw_sum(self._cts)
        return self._like(
            [gmpy2.mpz(total)],
            bound_bits=self.bound_bits + ceil_log2(len(self)),
            container="scalar",
        )

    def dot(
        self,
        plain: object,
        *,
        frac_bits: int | None = None,
        value_bits: int | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> EncryptedVector:
        """Encrypted inner product with a plaintext vector."""
        return self.mul(
            plain, frac_bits=frac_bits, value_bits=value_bits, executor=executor, n_jobs=n_jobs
        ).sum()

    def __matmul__(self, other: object) -> EncryptedVector:
        return self.dot(other)

    def concat(self, other: EncryptedVector) -> EncryptedVector:
        """Concatenation of two vectors of the same key and encoding."""
        self.public_key.check_same_key(other.public_key)
        f = max(self.frac_bits, other.frac_bits)
        a, b = self.rescale(f), other.rescale(f)
        return self._like(
            a._cts + b._cts,
            frac_bits=f,
            bound_bits=max(a.bound_bits, b.bound_bits),
            is_float=self.is_float or other.is_float,
            container="ndarray" if self.container == "ndarray" else "list",
            fresh=self.fresh and other.fresh and f == self.frac_bits == other.frac_bits,
        )

    # ------------------------------------------------------------ randomness and packing
    def obfuscate(
        self,
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
        for_owner: bool = False,
    ) -> EncryptedVector:
        """Re-randomise every ciphertext (same plaintexts, fresh randomness).

        Do this before a ciphertext computed from another party's ciphertexts leaves its
        owner: otherwise its randomness links it to the inputs (e.g. reveals which ones were
        summed). :meth:`to_wire` does it automatically for non-fresh vectors. ``for_owner``:
        the ciphertexts go back to the key's owner — uniform randomness
        (:meth:`PublicKeyBase.raw_obfuscate_for_owner`), fresh or not.
        """
        obf = self.public_key.raw_obfuscate_for_owner if for_owner else None
        obf = obf or self.public_key.raw_obfuscate
        cts = obf(self._cts, rng=rng, executor=executor, n_jobs=n_jobs)
        return self._like(cts, fresh=True)

    def pack(
        self,
        *,
        slot_bits: int | None = None,
        slots: int | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> PackedEncryptedVector:
        """Homomorphically pack ``slots`` ciphertexts into one (``prod c_j ** 2**(slot_bits*j)``).

        Costs about one full-size exponentiation per packed ciphertext, and lets the key holder
        decrypt ``slots`` values at the price of one. ``slot_bits`` defaults to
        ``bound_bits + 1`` (the narrowest slot that holds the tracked bound and a sign).
        """
        pk = self.public_key
        if slot_bits is None:
            slot_bits = self.bound_bits + 1
        layout = _Layout.make(pk, slot_bits, slots)
        if self.bound_bits > slot_bits - 1:
            raise OverflowDetected(
                f"values bounded by 2**{self.bound_bits} do not fit {slot_bits}-bit signed "
                "slots; increase slot_bits"
            )
        k = layout.slots
        groups = [self._cts[i : i + k] for i in range(0, len(self), k)]
        mod = pk._mod
        shift = gmpy2.mpz(1) << slot_bits

        def work(chunk: Sequence[list[Any]]) -> list[Any]:
            out = []
            for group in chunk:
                acc = group[-1]
                for c in reversed(group[:-1]):
                    acc = gmpy2.powmod(acc, shift, mod) * c % mod
                out.append(acc)
            return out

        cts = parallel_map(work, groups, executor=executor, n_jobs=n_jobs)
        return PackedEncryptedVector(
            pk, cts, layout=layout, cols=min(k, len(self)), frac_bits=self.frac_bits,
            bound_bits=self.bound_bits, is_float=self.is_float, flat_length=len(self),
            container="list" if self.container == "scalar" else self.container,
        )  # fmt: skip

    # ------------------------------------------------------------ wire
    def to_wire(
        self, *, obfuscate: bool = True, rng: RandomSource | None = None, for_owner: bool = False
    ) -> dict[str, Any]:
        """Plain-Python form for :mod:`privfin.federation.codec` (ints, bytes, str, bools).

        Non-fresh vectors are re-randomised first unless ``obfuscate=False``.
        """
        if for_owner:  # going back to the key's owner: always uniform randomness
            vec = self.obfuscate(rng=rng, for_owner=True)
        else:
            vec = self.obfuscate(rng=rng) if obfuscate and not self.fresh else self
        pk = self.public_key
        return {
            "kind": "EncryptedVector",
            "v": WIRE_VERSION,
            "scheme": pk.scheme,
            "key": bytes.fromhex(pk.fingerprint),
            "count": len(vec),
            "ct": _join(vec._cts, pk.ciphertext_bytes),
            "frac_bits": vec.frac_bits,
            "bound_bits": vec.bound_bits,
            "is_float": vec.is_float,
            "container": vec.container,
        }

    @classmethod
    def from_wire(cls, public_key: PublicKeyBase, data: object) -> EncryptedVector:
        """Inverse of :meth:`to_wire`; validates everything.

        Raises
        ------
        DecodeError
            Wrong shape, wrong key fingerprint, or a ciphertext outside Z*_M.
        """
        d = _check_header(public_key, data, "EncryptedVector")
        count = _small_int(d, "count", MAX_WIRE_CIPHERTEXTS)
        cts = _split(public_key, d.get("ct"), count)
        container = d.get("container")
        if container not in ("list", "ndarray", "scalar") or (container == "scalar" and count != 1):
            raise DecodeError("field 'container' is invalid")
        is_float = d.get("is_float")
        if not isinstance(is_float, bool):
            raise DecodeError("field 'is_float' must be a bool")
        frac_bits = _small_int(d, "frac_bits", MAX_WIRE_BITS)
        if not is_float and frac_bits:
            raise DecodeError("integer vectors have frac_bits = 0")
        return cls(
            public_key, cts, frac_bits=frac_bits,
            bound_bits=_small_int(d, "bound_bits", MAX_WIRE_BITS), is_float=is_float,
            container=str(container), fresh=False,
        )  # fmt: skip


def _negated(values: object) -> object:
    nums, _, container = flatten(values)
    neg = [-x for x in nums]
    if container == "scalar":
        return neg[0]
    return np.array(neg) if container == "ndarray" else neg


def _join(cts: Sequence[Any], width: int) -> bytes:
    return b"".join(int(c).to_bytes(width, "big") for c in cts)


def _split(pk: PublicKeyBase, blob: object, count: int) -> list[Any]:
    width = pk.ciphertext_bytes
    if not isinstance(blob, bytes) or len(blob) != width * count:
        raise DecodeError(f"field 'ct' must hold {count} ciphertexts of {width} bytes")
    out = []
    for i in range(count):
        c = gmpy2.mpz(int.from_bytes(blob[i * width : (i + 1) * width], "big"))
        pk.check_ciphertext(c)
        out.append(c)
    return out


def _check_header(pk: PublicKeyBase, data: object, kind: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DecodeError(f"expected a dict for {kind}, got {type(data).__name__}")
    if data.get("kind") != kind or data.get("v") != WIRE_VERSION:
        raise DecodeError(f"not a version-{WIRE_VERSION} {kind}")
    if data.get("scheme") != pk.scheme:
        raise DecodeError(f"scheme {data.get('scheme')!r} does not match key ({pk.scheme})")
    if data.get("key") != bytes.fromhex(pk.fingerprint):
        raise DecodeError("ciphertexts were encrypted under another key (fingerprint mismatch)")
    return data


# ====================================================================== packing


class _Layout:
    """Slot layout: ``slots`` signed slots of ``slot_bits`` bits in one plaintext."""

    __slots__ = ("slot_bits", "slots")

    def __init__(self, slot_bits: int, slots: int) -> None:
        self.slot_bits = slot_bits
        self.slots = slots

    @classmethod
    def make(cls, pk: PublicKeyBase, slot_bits: int, slots: int | None) -> _Layout:
        if not 2 <= slot_bits <= pk.capacity_bits:
            raise ConfigError(f"slot_bits must be in [2, {pk.capacity_bits}], got {slot_bits}")
        most = pk.capacity_bits // slot_bits
        if slots is None:
            slots = most
        if not 1 <= slots <= most:
            raise ConfigError(
                f"at most {most} slots of {slot_bits} bits fit this key, got slots={slots}"
            )
        return cls(slot_bits, slots)

    def pack(self, row: Sequence[int]) -> int:
        acc = 0
        w = self.slot_bits
        for v in reversed(row):
            acc = (acc << w) + v
        return acc

    def unpack(self, m: int, cols: int, bound_bits: int) -> list[int]:
        w = self.slot_bits
        mask = (1 << w) - 1
        half = 1 << (w - 1)
        limit = 1 << bound_bits
        out = []
        for _ in range(cols):
            s = m & mask
            if s >= half:
                s -= 1 << w
            if not -limit < s < limit:
                raise OverflowDetected("a packed slot lies outside its bound (overflow or tamper)")
            out.append(s)
            m = (m - s) >> w
        if m != 0:
            raise OverflowDetected("packed plaintext has data beyond its slots (tampered?)")
        return out


def _rows_of(values: object, slots: int) -> tuple[np.ndarray[Any, Any], int | None, str]:
    if isinstance(values, np.ndarray) and values.ndim == 2:
        if values.shape[1] > slots:
            raise ConfigError(f"rows of {values.shape[1]} values exceed the {slots} slots")
        arr = values
        flat: int | None = None
        container = "ndarray"
    else:
        nums_container = "ndarray" if isinstance(values, np.ndarray) else "list"
        nums, is_float, _ = flatten(values)
        flat = len(nums)
        rows = max(1, -(-flat // slots))
        cols = min(slots, max(flat, 1))
        arr = np.zeros((rows, cols), dtype=np.float64 if is_float else object)
        arr.reshape(-1)[:flat] = nums
        container = nums_container
    if arr.dtype.kind in "biu" or arr.dtype == object:
        arr = arr.astype(object)
        if any(isinstance(v, float) for v in arr.reshape(-1).tolist()):
            arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise ConfigError(f"cannot pack values of dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ConfigError("cannot encrypt NaN or infinite values")
    return arr, flat, container


class PackedEncryptedVector:
    """Ciphertexts each holding one row of ``cols`` signed fixed-width slots.

    Supports ``+`` (same layout, or plaintext of the same shape), ``*`` by a plaintext scalar,
    :meth:`sum` over rows (column sums in one ciphertext), row indexing and the wire format.
    Each operation updates the per-slot bound; decryption refuses with
    :class:`OverflowDetected` once a slot could have carried into its neighbour.
    """

    __slots__ = (
        "_cts", "bound_bits", "cols", "container", "flat_length", "frac_bits", "fresh",
        "is_float", "layout", "public_key",
    )  # fmt: skip
    __array_ufunc__ = None

    def __init__(
        self,
        public_key: PublicKeyBase,
        ciphertexts: Sequence[Any],
        *,
        layout: _Layout,
        cols: int,
        frac_bits: int,
        bound_bits: int,
        is_float: bool,
        flat_length: int | None,
        container: str,
        fresh: bool = False,
    ) -> None:
        self.public_key = public_key
        self._cts: list[Any] = list(ciphertexts)
        self.layout = layout
        self.cols = cols
        self.frac_bits = frac_bits
        self.bound_bits = bound_bits
        self.is_float = is_float
        self.flat_length = flat_length
        self.container = container
        self.fresh = fresh

    def __len__(self) -> int:
        return len(self._cts)

    @property
    def slot_bits(self) -> int:
        """Width of each signed slot."""
        return self.layout.slot_bits

    @property
    def ciphertexts(self) -> list[int]:
        """The ciphertexts as Python ints."""
        return [int(c) for c in self._cts]

    def __repr__(self) -> str:
        return (
            f"<PackedEncryptedVector {self.public_key.scheme} rows={len(self)} cols={self.cols} "
            f"slot_bits={self.slot_bits} bound=2**{self.bound_bits}>"
        )

    def _like(self, cts: Sequence[Any], **changes: Any) -> PackedEncryptedVector:
        fields: dict[str, Any] = {
            "layout": self.layout, "cols": self.cols, "frac_bits": self.frac_bits,
            "bound_bits": self.bound_bits, "is_float": self.is_float,
            "flat_length": self.flat_length, "container": self.container, "fresh": False,
        }  # fmt: skip
        fields.update(changes)
        return PackedEncryptedVector(self.public_key, cts, **fields)

    def _same_layout(self, other: PackedEncryptedVector) -> None:
        self.public_key.check_same_key(other.public_key)
        if (
            other.slot_bits != self.slot_bits
            or other.cols != self.cols
            or len(other) != len(self)
            or other.frac_bits != self.frac_bits
        ):
            raise ConfigError("packed vectors differ in layout, shape or frac_bits")

    def __add__(self, other: object) -> PackedEncryptedVector:
        pk = self.public_key
        if isinstance(other, PackedEncryptedVector):
            self._same_layout(other)
            return self._like(
                pk.raw_add(self._cts, other._cts),
                bound_bits=max(self.bound_bits, other.bound_bits) + 1,
                is_float=self.is_float or other.is_float,
            )
        if isinstance(other, EncryptedVector):
            raise ConfigError("cannot add a packed and an unpacked vector; pack() it first")
        arr, _, _ = _rows_of(other, self.layout.slots)
        if arr.shape[1] != self.cols and not (
            self.flat_length is not None and arr.shape[0] * arr.shape[1] >= self.flat_length
        ):
            raise ConfigError("plaintext shape does not match the packed vector")
        if arr.shape[0] != len(self):
            raise ConfigError("plaintext shape does not match the packed vector")
        if arr.dtype.kind == "f" and not self.is_float:
            raise ConfigError("add floats to a packed vector encrypted from floats")
        rows = [to_fixed(r, self.frac_bits) for r in arr.tolist()]
        largest = max((abs(m) for row in rows for m in row), default=0)
        bits = max(self.bound_bits, largest.bit_length()) + 1
        packed = [self.layout.pack(r) for r in rows]
        return self._like(pk.raw_add_plain(self._cts, packed), bound_bits=bits)

    __radd__ = __add__

    def __mul__(self, other: object) -> PackedEncryptedVector:
        """Multiply every slot by a plaintext scalar (int, or float for float vectors).

        The bound grows by the exact bit length of the encoded scalar: that length is public.
        """
        if not _scalar_or_values(other):
            raise ConfigError("packed vectors can only be multiplied by a plaintext scalar")
        if isinstance(other, (float, np.floating)):
            if not self.is_float:
                raise ConfigError("multiply an integer packed vector by integers only")
            k = to_fixed([float(other)], self.frac_bits)[0]
            f = 2 * self.frac_bits
        else:
            k = int(other)  # type: ignore[call-overload]
            f = self.frac_bits
        cts = self.public_key.raw_mul(self._cts, [k] * len(self))
        return self._like(cts, bound_bits=self.bound_bits + abs(k).bit_length(), frac_bits=f)

    __rmul__ = __mul__

    def sum(self) -> PackedEncryptedVector:
        """Column sums: one ciphertext whose slots are the sums of the rows' slots."""
        total = self.public_key.raw_sum(self._cts)
        return self._like(
            [gmpy2.mpz(total)],
            bound_bits=self.bound_bits + ceil_log2(len(self)),
            flat_length=self.cols,
        )

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray[Any, Any]) -> Self:
        if isinstance(index, (int, np.integer)):
            cts = [self._cts[int(index)]]
        elif isinstance(index, slice):
            cts = self._cts[index]
        else:
            idx = np.asarray(index)
            if idx.dtype.kind == "b":
                idx = np.flatnonzero(idx)
            cts = [self._cts[int(i)] for i in idx.tolist()]
        return self._like(cts, flat_length=None, container="ndarray", fresh=self.fresh)  # type: ignore[return-value]

    def obfuscate(
        self,
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
        for_owner: bool = False,
    ) -> PackedEncryptedVector:
        """Re-randomise every ciphertext (see :meth:`EncryptedVector.obfuscate`)."""
        obf = self.public_key.raw_obfuscate_for_owner if for_owner else None
        obf = obf or self.public_key.raw_obfuscate
        cts = obf(self._cts, rng=rng, executor=executor, n_jobs=n_jobs)
        return self._like(cts, fresh=True)

    def _decrypt_with(
        self, sk: PrivateKeyBase, *, executor: Executor | None, n_jobs: int | None
    ) -> Any:
        if self.bound_bits > self.slot_bits - 1:
            raise OverflowDetected(
                f"slot headroom exhausted: values are bounded by 2**{self.bound_bits} but "
                f"slots hold {self.slot_bits - 1} bits plus sign; decrypt earlier or use wider "
                "slots"
            )
        # |P| = |sum v_j 2**(w j)| < 2**(w (cols - 1) + bound_bits + 1) for in-bound slots.
        plain_bits = self.slot_bits * (self.cols - 1) + self.bound_bits + 1
        ints = sk.decrypt_ints(self._cts, executor=executor, n_jobs=n_jobs, plain_bits=plain_bits)
        rows = [self.layout.unpack(m, self.cols, self.bound_bits) for m in ints]
        if self.flat_length is not None:
            flat = [v for row in rows for v in row][: self.flat_length]
            return decode_values(flat, self.is_float, self.frac_bits, self.container)
        decoded = [decode_values(r, self.is_float, self.frac_bits, "list") for r in rows]
        return np.array(decoded, dtype=np.float64 if self.is_float else object)

    def to_wire(
        self, *, obfuscate: bool = True, rng: RandomSource | None = None, for_owner: bool = False
    ) -> dict[str, Any]:
        """Plain-Python form for the codec; non-fresh vectors are re-randomised first."""
        if for_owner:  # going back to the key's owner: always uniform randomness
            vec = self.obfuscate(rng=rng, for_owner=True)
        else:
            vec = self.obfuscate(rng=rng) if obfuscate and not self.fresh else self
        pk = self.public_key
        return {
            "kind": "PackedEncryptedVector",
            "v": WIRE_VERSION,
            "scheme": pk.scheme,
            "key": bytes.fromhex(pk.fingerprint),
            "count": len(vec),
            "ct": _join(vec._cts, pk.ciphertext_bytes),
            "slot_bits": vec.slot_bits,
            "slots": vec.layout.slots,
            "cols": vec.cols,
            "frac_bits": vec.frac_bits,
            "bound_bits": vec.bound_bits,
            "is_float": vec.is_float,
            "flat_length": -1 if vec.flat_length is None else vec.flat_length,
            "container": vec.container,
        }

    @classmethod
    def from_wire(cls, public_key: PublicKeyBase, data: object) -> PackedEncryptedVector:
        """Inverse of :meth:`to_wire`; validates everything (raises :class:`DecodeError`)."""
        d = _check_header(public_key, data, "PackedEncryptedVector")
        count = _small_int(d, "count", MAX_WIRE_CIPHERTEXTS)
        cts = _split(public_key, d.get("ct"), count)
        try:
            layout = _Layout.make(
                public_key,
                _small_int(d, "slot_bits", MAX_WIRE_BITS),
                _small_int(d, "slots", MAX_WIRE_BITS),
            )
        except ConfigError as exc:
            raise DecodeError(f"bad packing layout: {exc}") from None
        cols = _small_int(d, "cols", layout.slots)
        flat_raw = d.get("flat_length")
        if isinstance(flat_raw, bool) or not isinstance(flat_raw, int):
            raise DecodeError("field 'flat_length' must be an int")
        flat = None if flat_raw == -1 else flat_raw
        if flat is not None and not 0 <= flat <= count * cols:
            raise DecodeError("field 'flat_length' is out of range")
        is_float = d.get("is_float")
        container = d.get("container")
        if not isinstance(is_float, bool) or container not in ("list", "ndarray"):
            raise DecodeError("fields 'is_float'/'container' are invalid")
        return cls(
            public_key, cts, layout=layout, cols=cols,
            frac_bits=_small_int(d, "frac_bits", MAX_WIRE_BITS),
            bound_bits=_small_int(d, "bound_bits", MAX_WIRE_BITS), is_float=is_float,
            flat_length=flat, container=str(container), fresh=False,
        )  # fmt: skip


def check_keys_match(a: PublicKeyBase, b: PublicKeyBase) -> None:
    """Raise :class:`KeyMismatchError` unless ``a`` and ``b`` are the same key."""
    a.check_same_key(b)


__all__ += ["check_keys_match", "declared_bits"]
