"""Okamoto–Uchiyama (OU) encryption: the same vector API as :mod:`privfin.he.paillier`.

``n = p**2 * q``; public ``g`` (with ``g**(p-1) mod p**2`` of order ``p``) and ``h = g**n mod n``;
``Enc(m) = g**m * h**r mod n``. Ciphertexts are ``|n|`` bits (half of Paillier's) and, with
fixed-base tables for ``g``, ``g**-1`` and ``h``, encryption costs a few dozen multiplications
mod ``n``. The plaintext space is Z_p with ``p`` secret: values must satisfy
``|m| < 2**capacity_bits`` with ``capacity_bits = |p| - 132`` (551 bits at 2048-bit ``n``).

Decryption refuses (:class:`~privfin.he.errors.PlaintextOutOfRange`) every residue ``m mod p``
outside ``±2**capacity_bits``. OU decryption returns ``m mod p``, so a key holder that returned
the decryption of a ciphertext a peer chose with ``m > p`` would hand it ``p = gcd(m - reply, n)``
— the whole key from one message. With the 128-bit margin a chosen ``m >= p`` decrypts inside
the bound with probability below ``2**-128``, so no decryption that is returned reveals ``p``.

Security (``SPEC.md``): IND-CPA under the p-subgroup assumption, plus the short-exponent
assumption for ``r`` (``max(256, 2*lambda)`` bits instead of uniform in Z_n), the same kind of
extra assumption as DJN Paillier. One-wayness rests on factoring ``p**2 q``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gmpy2

from privfin.errors import ConfigError, DecodeError, InsecureModeError
from privfin.he._engine import OUEngine
from privfin.he._keys import PrivateKeyBase, PublicKeyBase
from privfin.he._packed import PackedEncryptedVector
from privfin.he._util import (
    RandomSource,
    bits_from,
    check_modulus_size,
    check_rng,
    djn_exponent_bits,
    random_below,
    random_prime,
    rsa_security_bits,
)
from privfin.he._vector import EncryptedVector
from privfin.he._wire import int_from_wire, int_to_bytes
from privfin.he.errors import KeyMismatchError, OverflowDetected, PlaintextOutOfRange

__all__ = [
    "DEFAULT_KEY_BITS",
    "EncryptedVector",
    "KeyMismatchError",
    "OverflowDetected",
    "PackedEncryptedVector",
    "PlaintextOutOfRange",
    "PrivateKey",
    "PublicKey",
    "bits_from",
    "generate_keypair",
]

DEFAULT_KEY_BITS = 2048
MIN_SECURE_KEY_BITS = 2046  # 3 * 682: the 2048-bit class
MIN_INSECURE_KEY_BITS = 384
MAX_KEY_BITS = 16384
#: Window of the fixed-base table of ``h`` for keys of at least 2048 bits (22 rows of 4096
#: residues: 23 MiB, ~0.3 s; 21 multiplications per randomizer instead of 31 with 8 bits) and
#: for the small test-only keys; the ``g`` tables, which grow with the plaintexts, keep 8 bits.
WINDOW_BITS = 12
SMALL_KEY_WINDOW_BITS = 8
G_WINDOW_BITS = 8


def _check_size(n_bits: int, insecure_allow_small_keys: bool) -> None:
    check_modulus_size(
        "OU",
        n_bits,
        insecure_allow_small_keys,
        min_secure=MIN_SECURE_KEY_BITS,
        min_insecure=MIN_INSECURE_KEY_BITS,
        max_bits=MAX_KEY_BITS,
    )


#: Bits between the honest plaintext bound and ``|p|``: a residue of a ciphertext of a chosen
#: ``m >= p`` falls inside the bound with probability ``2**-KEY_RECOVERY_MARGIN_BITS``.
KEY_RECOVERY_MARGIN_BITS = 130


def _p_bits(n_bits: int) -> int:
    return n_bits // 3


def _capacity_bits(p_bits: int) -> int:
    """``|p| - 132``; the small, insecure test-only keys keep an eighth of ``p`` as margin."""
    small = 3 * p_bits < MIN_SECURE_KEY_BITS
    return p_bits - 2 - (p_bits // 8 if small else KEY_RECOVERY_MARGIN_BITS)


class PublicKey(PublicKeyBase):
    """OU public key ``(n, g, h)``.

    ``capacity_bits`` is derived from the public size of ``p`` (``n_bits // 3`` bits, top two
    bits set) minus a 130-bit margin against key recovery, so anyone can check a value fits
    without knowing ``p``. ``window_bits`` sets the
    window of the fixed-base table of ``h`` (memory against speed; no effect on results).
    """

    scheme = "ou"

    def __init__(
        self,
        n: int,
        g: int,
        h: int,
        *,
        rng: RandomSource | None = None,
        insecure_allow_small_keys: bool = False,
        window_bits: int | None = None,
    ) -> None:
        n, g, h = int(n), int(g), int(h)
        if n < 3 or n % 2 == 0:
            raise ConfigError("an OU modulus must be an odd integer")
        n_bits = n.bit_length()
        _check_size(n_bits + 2, insecure_allow_small_keys)
        for name, v in (("g", g), ("h", h)):
            if not 1 < v < n or gmpy2.gcd(v, n) != 1:
                raise ConfigError(f"{name} must be a unit modulo n other than 1")
        super().__init__(n, exponent_bits=djn_exponent_bits(n_bits + 2), rng=rng)
        self._mod = self._n
        self.g = g
        self.h = h
        self.p_bits = _p_bits(n_bits + 2)
        self.capacity_bits = _capacity_bits(self.p_bits)
        if window_bits is None:
            small = n_bits + 2 < MIN_SECURE_KEY_BITS
            window_bits = SMALL_KEY_WINDOW_BITS if small else WINDOW_BITS
        elif isinstance(window_bits, bool) or not isinstance(window_bits, int):
            raise ConfigError(f"window_bits must be an int, got {window_bits!r}")
        elif not 2 <= window_bits <= 16:
            raise ConfigError(f"window_bits must be in [2, 16], got {window_bits}")
        self.window_bits = window_bits
        self.security_bits = rsa_security_bits(n_bits + 2)

    def _make_engine(self) -> OUEngine:
        return OUEngine(self.n, self.g, self.h, self.window_bits, G_WINDOW_BITS, self.exponent_bits)

    def _plain(self, m: int) -> Any:
        engine = self._engine()
        if not isinstance(engine, OUEngine):  # pragma: no cover - set by _make_engine
            raise TypeError("not an OU engine")
        return engine.plain(m)

    def _uniform_zeros(self, rs: Sequence[Any]) -> list[Any]:
        """``x**n mod n`` with ``x`` uniform in ``[1, n)``: uniform among the ``n``-th powers,
        which all decrypt to zero, whatever ``h`` the key's owner chose (an ``h`` of small
        order would cancel an ``h**r`` randomiser)."""
        return list(gmpy2.powmod_base_list(rs, self._n, self._n))

    def to_wire(self) -> dict[str, Any]:
        """``{"kind": "OUPublicKey", "v": 1, "n", "g", "h"}`` with big-endian bytes."""
        return {
            "kind": "OUPublicKey",
            "v": 1,
            "n": int_to_bytes(self.n),
            "g": int_to_bytes(self.g),
            "h": int_to_bytes(self.h),
        }

    @classmethod
    def from_wire(
        cls,
        data: object,
        *,
        rng: RandomSource | None = None,
        insecure_allow_small_keys: bool = False,
    ) -> PublicKey:
        """Load a public key sent by its owner; refuses small or malformed keys."""
        if not isinstance(data, dict) or data.get("kind") != "OUPublicKey" or data.get("v") != 1:
            raise DecodeError("not a version-1 OU public key")
        try:
            return cls(
                int_from_wire(data, "n"),
                int_from_wire(data, "g"),
                int_from_wire(data, "h"),
                rng=rng,
                insecure_allow_small_keys=insecure_allow_small_keys,
            )
        except InsecureModeError:
            raise
        except ConfigError as exc:
            raise DecodeError(f"invalid OU public key: {exc}") from None


class PrivateKey(PrivateKeyBase):
    """OU private key ``(p, q)``: ``m = L(c**(p-1) mod p**2) / L(g**(p-1) mod p**2) mod p``
    with ``L(x) = (x - 1) / p``. One exponentiation with a ``|p|``-bit exponent mod ``p**2``."""

    def __init__(self, public_key: PublicKey, p: int, q: int) -> None:
        super().__init__(public_key)
        p_, q_ = gmpy2.mpz(p), gmpy2.mpz(q)
        if p_ * p_ * q_ != public_key._n:
            raise ConfigError("p and q do not match the public modulus")
        self._p = p_
        self._psq = p_ * p_
        self._pm1 = p_ - 1
        gp = (gmpy2.powmod(public_key.g, self._pm1, self._psq) - 1) // p_
        if gp % p_ == 0:
            raise ConfigError("g has the wrong order modulo p**2")
        self._gp_inv = gmpy2.invert(gp, p_)
        self._half = p_ // 2
        self._low = gmpy2.mpz(1) << public_key.capacity_bits
        self._high = p_ - self._low

    def _residues(self, cts: Sequence[Any]) -> list[int]:
        """Residues in ``[0, p)``, each checked to lie within ``±2**capacity_bits``.

        Raises
        ------
        PlaintextOutOfRange
            A residue lies outside the bound: the ciphertext encrypts no honest value (a chosen
            ``m >= p`` or a corrupted ciphertext). Nothing of the chunk is returned, so the
            residue, which would reveal ``p``, never leaves this key.
        """
        p, psq = self._p, self._psq
        powers = gmpy2.powmod_base_list([c % psq for c in cts], self._pm1, psq)
        gp_inv, divexact = self._gp_inv, gmpy2.divexact
        low, high = self._low, self._high
        out = []
        for x in powers:
            m = divexact(x - 1, p) * gp_inv % p
            if low <= m <= high:
                raise PlaintextOutOfRange(
                    "an OU ciphertext decrypted outside the plaintext bound (a chosen or "
                    "corrupted ciphertext); no decryption is returned"
                )
            out.append(int(m))
        return out

    def _signed(self, cts: Sequence[Any], plain_bits: int | None) -> list[int]:
        p, half = int(self._p), int(self._half)
        return [m - p if m > half else m for m in self._residues(cts)]


def generate_keypair(
    n_bits: int = DEFAULT_KEY_BITS,
    *,
    rng: RandomSource | None = None,
    insecure_allow_small_keys: bool = False,
    window_bits: int | None = None,
) -> tuple[PublicKey, PrivateKey]:
    """Generate an OU key pair: ``p`` of ``n_bits // 3`` bits, ``q`` filling the rest.

    Raises
    ------
    InsecureModeError
        ``n_bits < 2048`` without ``insecure_allow_small_keys``.
    """
    if isinstance(n_bits, bool) or not isinstance(n_bits, int):
        raise ConfigError(f"n_bits must be an int, got {n_bits!r}")
    _check_size(n_bits, insecure_allow_small_keys)
    source = check_rng(rng)
    k = _p_bits(n_bits)
    while True:
        p = random_prime(source, k)
        q = random_prime(source, n_bits - 2 * k)
        if p == q or gmpy2.gcd(p - 1, q) != 1 or gmpy2.gcd(q - 1, p) != 1:
            continue
        n = p * p * q
        if n.bit_length() >= n_bits - 2:
            break
    psq = p * p
    while True:
        g = gmpy2.mpz(random_below(source, int(n)))
        if g < 2 or gmpy2.gcd(g, n) != 1:
            continue
        if gmpy2.powmod(g, p - 1, psq) != 1:  # order of g**(p-1) mod p**2 is then p
            break
    h = gmpy2.powmod(g, n, n)
    pk = PublicKey(
        int(n),
        int(g),
        int(h),
        rng=source,
        insecure_allow_small_keys=insecure_allow_small_keys,
        window_bits=window_bits,
    )
    return pk, PrivateKey(pk, int(p), int(q))
