"""CKKS adapter over TenSEAL 0.3.18: approximate arithmetic on encrypted real vectors.

Usage::

    from privfin.he import ckks

    ctx = ckks.CKKSContext.generate()               # private context (holds the secret key)
    wire = ctx.serialize_public()                   # bytes for the other parties: no secret key
    peer = ckks.CKKSContext.from_bytes(wire)        # a peer encrypts and computes, cannot decrypt
    v = peer.encrypt([1.0, 2.0, 3.0])
    w = (v + v) * [0.5, 0.5, 0.5] + 1.0
    data = w.to_bytes()
    ctx.decrypt(ckks.CKKSVector.from_bytes(ctx, data))   # ~[2.0, 3.0, 4.0]

Security: RLWE-based CKKS with SEAL's default parameters check at the 128-bit level of the
HomomorphicEncryption.org standard (``poly_modulus_degree`` 8192 with at most 218 bits of
coefficient modulus; default ``[60, 40, 40, 60]``, scale ``2**40``). IND-CPA for the key
holder's peers; **not** IND-CPA-D: decrypted CKKS results carry noise that can leak the secret
key if shown to an adversary who chose the computation (Li–Micciancio 2021), so only release
decryptions rounded to the precision you need (``decrypt(..., round_digits=...)``).
Randomness comes from SEAL's internal CSPRNG and cannot be injected: no deterministic vectors.
Results are approximate (about 20 bits of precision after one multiplication at scale 2**40).
Avoid TenSEAL's ``.mm`` (encrypted-vector times plaintext matrix): 33 s for 4096x16 here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privfin.errors import ConfigError, DecodeError, InsecureModeError

__all__ = [
    "DEFAULT_PARAMS",
    "MAX_CONTEXT_BYTES",
    "MAX_VECTOR_BYTES",
    "CKKSContext",
    "CKKSParams",
    "CKKSVector",
]

#: Largest total coefficient-modulus size (bits) per ring dimension for 128-bit security,
#: HomomorphicEncryption.org standard (ternary secret, classical attacks).
MAX_COEFF_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}

#: Size limits applied before deserialising untrusted bytes.
MAX_CONTEXT_BYTES = 128 * 1024 * 1024
MAX_VECTOR_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CKKSParams:
    """CKKS parameters; validated to be 128-bit secure on construction.

    Attributes
    ----------
    poly_modulus_degree:
        Ring dimension N; a vector holds up to N/2 values.
    coeff_mod_bit_sizes:
        Bit sizes of the RNS primes; the inner ones should equal ``scale_bits``; their number
        minus two is the multiplicative depth.
    scale_bits:
        Fixed-point scale ``2**scale_bits``.
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = field(default=(60, 40, 40, 60))
    scale_bits: int = 40

    def __post_init__(self) -> None:
        limit = MAX_COEFF_BITS_128.get(self.poly_modulus_degree)
        if limit is None:
            raise ConfigError(
                f"poly_modulus_degree must be one of {sorted(MAX_COEFF_BITS_128)}, "
                f"got {self.poly_modulus_degree}"
            )
        total = sum(self.coeff_mod_bit_sizes)
        if total > limit:
            raise InsecureModeError(
                f"{total} bits of coefficient modulus exceed the 128-bit-secure limit of {limit} "
                f"for N={self.poly_modulus_degree}; use fewer or smaller primes or a larger N"
            )
        if len(self.coeff_mod_bit_sizes) < 2 or not all(
            17 <= b <= 60 for b in self.coeff_mod_bit_sizes
        ):
            raise ConfigError("coeff_mod_bit_sizes needs at least two primes of 17..60 bits")
        if not 20 <= self.scale_bits <= min(self.coeff_mod_bit_sizes[:-1]):
            raise ConfigError("scale_bits must be at least 20 and at most the prime sizes")

    @property
    def slots(self) -> int:
        """Number of values per ciphertext."""
        return self.poly_modulus_degree // 2


DEFAULT_PARAMS = CKKSParams()


def _ts() -> Any:
    import tenseal  # heavy native module: loaded on first use only

    return tenseal


class CKKSContext:
    """A TenSEAL CKKS context: private (can decrypt) or public (encrypt and compute only).

    Build a private one with :meth:`generate`; share :meth:`serialize_public` bytes; load
    them with :meth:`from_bytes`, which refuses oversized input, contexts holding a secret key
    (unless ``allow_secret_key=True``) and parameters below 128-bit security.
    """

    def __init__(
        self, ts_context: Any, params: CKKSParams | None, *, degree: int | None = None
    ) -> None:
        self._ctx = ts_context
        #: The parameters this context was generated with (None when loaded from bytes).
        self.params = params
        self.poly_modulus_degree = params.poly_modulus_degree if params else int(degree or 0)

    @property
    def slots(self) -> int:
        """Number of values per ciphertext."""
        return self.poly_modulus_degree // 2

    @classmethod
    def generate(cls, params: CKKSParams | None = None, *, galois_keys: bool = True) -> CKKSContext:
        """Generate keys. Galois keys (~35 MB at N=8192) are needed for :meth:`CKKSVector.sum`
        and :meth:`CKKSVector.dot`."""
        p = params or DEFAULT_PARAMS
        ts = _ts()
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=p.poly_modulus_degree,
            coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes),
        )
        ctx.global_scale = 2.0**p.scale_bits
        if galois_keys:
            ctx.generate_galois_keys()
        return cls(ctx, p)

    @property
    def is_private(self) -> bool:
        """Whether this context holds the secret key."""
        return bool(self._ctx.is_private())

    @property
    def has_galois_keys(self) -> bool:
        """Whether rotations (sum, dot) are available."""
        return bool(self._ctx.has_galois_keys())

    def public(self) -> CKKSContext:
        """A copy without the secret key."""
        ctx = self._ctx.copy()
        ctx.make_context_public()
        return CKKSContext(ctx, self.params, degree=self.poly_modulus_degree)

    def serialize_public(self, *, galois_keys: bool = True) -> bytes:
        """The public context (public, relinearisation and optionally Galois keys), never the
        secret key."""
        return bytes(
            self._ctx.serialize(
                save_public_key=True,
                save_secret_key=False,
                save_galois_keys=galois_keys and self.has_galois_keys,
                save_relin_keys=True,
            )
        )

    def serialize_secret(self) -> bytes:
        """The context **with the secret key** (and public and relinearisation keys, no Galois
        keys): only for parties meant to decrypt, over an authenticated, encrypted channel,
        never to the party whose inputs the key protects against. Load it with
        ``from_bytes(..., allow_secret_key=True)``."""
        if not self.is_private:
            raise ConfigError("this CKKS context has no secret key")
        return bytes(
            self._ctx.serialize(
                save_public_key=True,
                save_secret_key=True,
                save_galois_keys=False,
                save_relin_keys=True,
            )
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the serialised public key: identifies the key pair."""
        pk = self._ctx.serialize(
            save_public_key=True, save_secret_key=False, save_galois_keys=False,
            save_relin_keys=False,
        )  # fmt: skip
        return hashlib.sha256(bytes(pk)).hexdigest()

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        max_size: int = MAX_CONTEXT_BYTES,
        allow_secret_key: bool = False,
    ) -> CKKSContext:
        """Load a context from untrusted bytes.

        Raises
        ------
        DecodeError
            Oversized, malformed, not CKKS, below 128-bit security, or holding a secret key
            when ``allow_secret_key`` is False.
        """
        if not isinstance(data, (bytes, bytearray)):
            raise DecodeError("a CKKS context must be bytes")
        if len(data) > max_size:
            raise DecodeError(f"CKKS context of {len(data)} bytes exceeds {max_size}")
        ts = _ts()
        try:
            ctx = ts.context_from(bytes(data))
            sc = ctx.seal_context().data
            kd = sc.key_context_data()
            degree = int(kd.parms().poly_modulus_degree())
            total = int(kd.total_coeff_modulus_bit_count())
            ok = bool(sc.parameters_set())
            scale = float(ctx.global_scale)
        except Exception as exc:  # TenSEAL raises assorted types on bad input
            raise DecodeError(f"malformed CKKS context: {type(exc).__name__}") from None
        if not ok or degree not in MAX_COEFF_BITS_128:
            raise DecodeError("CKKS context parameters are not valid")
        if total > MAX_COEFF_BITS_128[degree]:
            raise DecodeError("CKKS context parameters are below 128-bit security")
        if ctx.is_private() and not allow_secret_key:
            raise DecodeError("refusing a CKKS context that carries a secret key")
        if not scale > 0:
            raise DecodeError("CKKS context has no global scale")
        return cls(ctx, None, degree=degree)

    # ------------------------------------------------------------------ encryption
    def encrypt(self, values: Sequence[float] | np.ndarray[Any, Any]) -> CKKSVector:
        """Encrypt up to ``slots`` real values (fresh randomness from SEAL's CSPRNG)."""
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size == 0 or arr.size > self.slots:
            raise ConfigError(f"a CKKS vector holds 1..{self.slots} values, got {arr.size}")
        if not np.all(np.isfinite(arr)):
            raise ConfigError("cannot encrypt NaN or infinite values")
        return CKKSVector(self, _ts().ckks_vector(self._ctx, arr.tolist()))

    def decrypt(self, vec: CKKSVector, *, round_digits: int | None = None) -> np.ndarray[Any, Any]:
        """Decrypt (private contexts only). ``round_digits`` rounds the output, which limits
        what the noise in a released result can reveal about the secret key."""
        if not self.is_private:
            raise ConfigError("this CKKS context has no secret key")
        if vec.context is not self and vec.context.fingerprint != self.fingerprint:
            raise ConfigError("the vector was encrypted under another CKKS key")
        out = np.asarray(vec._vec.decrypt(self._ctx.secret_key()), dtype=np.float64)
        return np.round(out, round_digits) if round_digits is not None else out


class CKKSVector:
    """An encrypted real vector: ``+`` (vector or plain), ``*`` plain scalar or vector,
    :meth:`sum`, :meth:`dot` with a plain vector, and bytes serialisation."""

    __slots__ = ("_vec", "context")
    __array_ufunc__ = None

    def __init__(self, context: CKKSContext, ts_vector: Any) -> None:
        self.context = context
        self._vec = ts_vector

    def __len__(self) -> int:
        return int(self._vec.size())

    def _plain(self, other: object) -> Any:
        if isinstance(other, (int, float, np.integer, np.floating)):
            return float(other)
        arr = np.asarray(other, dtype=np.float64).reshape(-1)
        if arr.size != len(self):
            raise ConfigError(f"length mismatch: {len(self)} vs {arr.size}")
        return arr.tolist()

    def __add__(self, other: object) -> CKKSVector:
        if isinstance(other, CKKSVector):
            if len(other) != len(self):
                raise ConfigError(f"length mismatch: {len(self)} vs {len(other)}")
            return CKKSVector(self.context, self._vec + other._vec)
        return CKKSVector(self.context, self._vec + self._plain(other))

    __radd__ = __add__

    def __sub__(self, other: object) -> CKKSVector:
        if isinstance(other, CKKSVector):
            return CKKSVector(self.context, self._vec - other._vec)
        return CKKSVector(self.context, self._vec - self._plain(other))

    def __mul__(self, other: object) -> CKKSVector:
        if isinstance(other, CKKSVector):
            raise ConfigError("this adapter multiplies CKKS vectors by plaintexts only")
        return CKKSVector(self.context, self._vec * self._plain(other))

    __rmul__ = __mul__

    def sum(self) -> CKKSVector:
        """Encrypted sum of the elements (needs Galois keys)."""
        self._need_galois()
        return CKKSVector(self.context, self._vec.sum())

    def dot(self, plain: object) -> CKKSVector:
        """Encrypted inner product with a plaintext vector (needs Galois keys)."""
        self._need_galois()
        return CKKSVector(self.context, self._vec.dot(self._plain(plain)))

    def _need_galois(self) -> None:
        if not self.context.has_galois_keys:
            raise ConfigError("sum/dot need Galois keys: generate or share the context with them")

    def to_bytes(self) -> bytes:
        """Serialised ciphertext (~330 KB at N=8192 for a fresh vector)."""
        return bytes(self._vec.serialize())

    @classmethod
    def from_bytes(
        cls, context: CKKSContext, data: bytes, *, max_size: int = MAX_VECTOR_BYTES
    ) -> CKKSVector:
        """Load a vector from untrusted bytes under ``context``.

        Raises
        ------
        DecodeError
            Oversized, malformed, or longer than the context's slot count.
        """
        if not isinstance(data, (bytes, bytearray)):
            raise DecodeError("a CKKS vector must be bytes")
        if len(data) > max_size:
            raise DecodeError(f"CKKS vector of {len(data)} bytes exceeds {max_size}")
        try:
            vec = _ts().ckks_vector_from(context._ctx, bytes(data))
            size = int(vec.size())
        except Exception as exc:  # TenSEAL raises assorted types on bad input
            raise DecodeError(f"malformed CKKS vector: {type(exc).__name__}") from None
        if not 0 < size <= context.slots:
            raise DecodeError("CKKS vector length is out of range")
        return cls(context, vec)
