"""Paillier encryption with CRT decryption, DJN fixed-base encryption, packing and threads.

Usage::

    from privfin.he import paillier

    pk, sk = paillier.generate_keypair()           # 2048-bit modulus, 112-bit security
    enc = pk.encrypt([1.5, -2.25, 3.0])            # EncryptedVector
    total = (enc + enc) * 2 + [1, 1, 1]
    sk.decrypt(total)                              # [7.0, -8.0, 13.0]

Security (details in ``SPEC.md``): IND-CPA under the decisional composite residuosity
assumption (DCR) **plus** the DJN short-exponent assumption: encryptions use the randomizer
``h_s ** a`` with ``h_s = (-x**2 mod n) ** n mod n**2`` and ``a`` uniform of
``max(256, 2*lambda)`` bits instead of ``r ** n`` with uniform ``r``. Additive homomorphism
means ciphertexts are malleable (not IND-CCA): authenticate the channel. Decryption checks that
results lie inside their tracked bound and never returns a wrapped value.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import gmpy2

from privfin.errors import ConfigError, DecodeError, InsecureModeError
from privfin.he._engine import PaillierEngine
from privfin.he._keys import PrivateKeyBase, PublicKeyBase
from privfin.he._packed import PackedEncryptedVector
from privfin.he._util import (
    RandomSource,
    bits_from,
    check_modulus_size,
    check_rng,
    djn_exponent_bits,
    random_prime,
    random_unit,
    rsa_security_bits,
)
from privfin.he._vector import EncryptedVector
from privfin.he._wire import int_from_wire, int_to_bytes
from privfin.he.errors import KeyMismatchError, OverflowDetected, PlaintextOutOfRange

__all__ = [
    "DEFAULT_KEY_BITS",
    "MIN_SECURE_KEY_BITS",
    "PROOF_ROUNDS",
    "EncryptedVector",
    "KeyMismatchError",
    "OverflowDetected",
    "PackedEncryptedVector",
    "PrivateKey",
    "PublicKey",
    "bits_from",
    "check_modulus_form",
    "generate_keypair",
    "modulus_challenges",
    "verify_modulus",
]

DEFAULT_KEY_BITS = 2048
MIN_SECURE_KEY_BITS = 2048
#: Decrypt modulo ``p`` alone only if the plaintext bound leaves this many bits of ``p`` unused
#: (a chosen or random residue then passes the bound check with probability below 2**-128,
#: so a returned decryption never reveals ``p``).
P_ONLY_MARGIN_BITS = 129
#: Fixed-base window for keys of at least 2048 bits (and for smaller, test-only keys).
WINDOW_BITS = 11
SMALL_KEY_WINDOW_BITS = 8
#: Smallest modulus accepted even with ``insecure_allow_small_keys`` (tests only).
MIN_INSECURE_KEY_BITS = 256
MAX_KEY_BITS = 16384
#: Domain separation of the challenges of the modulus proof (see :func:`verify_modulus`).
PROOF_DOMAIN = b"privfin/paillier/nth-roots/v1"
#: n-th roots in a modulus proof. A modulus with no prime factor below ``2**TRIAL_DIVISION_BITS``
#: and ``gcd(n, phi(n)) != 1`` answers each challenge with probability at most ``2**-16``:
#: soundness ``2**-160``.
PROOF_ROUNDS = 10
#: A received modulus must have no prime factor below ``2**TRIAL_DIVISION_BITS``.
TRIAL_DIVISION_BITS = 16


@functools.cache
def _small_primes() -> Any:
    """Product of the primes below ``2**TRIAL_DIVISION_BITS``."""
    out, q = gmpy2.mpz(1), gmpy2.mpz(2)
    while q < 1 << TRIAL_DIVISION_BITS:
        out *= q
        q = gmpy2.next_prime(q)
    return out


def modulus_challenges(n: int, rounds: int = PROOF_ROUNDS) -> list[int]:
    """The public challenges ``y_j`` (``j < rounds``) of the modulus proof for ``n``.

    ``y_j = SHAKE-256(PROOF_DOMAIN || len(n) || n || j)`` read as a big-endian integer of
    ``ceil((|n| + 128) / 8)`` bytes, reduced mod ``n`` (``len(n)``, ``j``: 4-byte big-endian;
    ``n``: minimal big-endian bytes). Statistically ``2**-128``-close to uniform in Z_n.
    """
    n = int(n)
    nb = int_to_bytes(n)
    size = (n.bit_length() + 128 + 7) // 8
    prefix = PROOF_DOMAIN + len(nb).to_bytes(4, "big") + nb
    return [
        int.from_bytes(hashlib.shake_256(prefix + j.to_bytes(4, "big")).digest(size), "big") % n
        for j in range(rounds)
    ]


def check_modulus_form(n: int) -> None:
    """Cheap necessary conditions on a peer's modulus: odd, composite, not a perfect power,
    no prime factor below ``2**16`` (the last one makes each round of the modulus proof sound
    to ``2**-16``).

    Raises
    ------
    DecodeError
        Naming the condition that fails.
    """
    nz = gmpy2.mpz(n)
    if nz < 3 or nz % 2 == 0:
        raise DecodeError("the Paillier modulus is not an odd integer above 2")
    if gmpy2.gcd(nz, _small_primes()) != 1:
        raise DecodeError("the Paillier modulus has a prime factor below 2**16")
    if gmpy2.is_prime(nz):
        raise DecodeError("the Paillier modulus is prime")
    if gmpy2.is_power(nz):
        raise DecodeError("the Paillier modulus is a perfect power")


def verify_modulus(n: int, proof: Sequence[int] | None) -> None:
    """Check that a peer's modulus ``n`` is fit to compute on: ``gcd(n, phi(n)) = 1``.

    Checks: :func:`check_modulus_form`, every challenge is a unit mod ``n``, and ``proof`` holds
    exactly :data:`PROOF_ROUNDS` values ``x_j`` in ``(0, n)`` with ``x_j**n = y_j (mod n)``
    for the challenges of :func:`modulus_challenges`.

    Security property: if ``gcd(n, phi(n)) = 1`` then ``Z*_{n**2} = <1+n> x {r**n}`` (every
    element is ``(1+n)**x * r**n``), so a re-randomised ciphertext computed under this key
    reveals its plaintext mod ``n`` and nothing else to the key owner. Otherwise a prime
    ``p >= 2**16`` divides ``n`` and ``phi(n)``; then at most a fraction ``1/p`` of Z*_n
    are n-th residues and a (random-oracle) challenge has an n-th root with probability
    ``<= 2**-16 + 2**-128``: a malformed modulus passes with probability ``<= 2**-160`` per
    modulus tried (the challenges depend on ``n`` only, so grinding costs ``2**160`` tries).
    Not checked: that ``n`` has two factors, or that the owner keeps its key secret (its own
    concern). Cost at 2048 bits: ten 2048-bit exponentiations (SPEC.md).

    Raises
    ------
    DecodeError
        The modulus or its proof is refused.
    """
    check_modulus_form(n)
    nz = gmpy2.mpz(n)
    if proof is None or len(proof) != PROOF_ROUNDS:
        raise DecodeError(
            f"the Paillier modulus comes without a proof of {PROOF_ROUNDS} n-th roots "
            "(gcd(n, phi(n)) = 1)"
        )
    for x, y in zip(proof, modulus_challenges(int(n)), strict=True):
        if gmpy2.gcd(y, nz) != 1:
            # A non-unit challenge would let x = 0 on that factor answer it: refused (an
            # honest modulus meets one with probability ~2**-1023).
            raise DecodeError("a modulus-proof challenge shares a factor with the modulus")
        xz = gmpy2.mpz(x)
        if not 0 < xz < nz or gmpy2.powmod(xz, nz, nz) != y:
            raise DecodeError(
                "invalid Paillier modulus proof: gcd(n, phi(n)) = 1 is not shown (a "
                "malformed or tampered key)"
            )


def _check_size(n_bits: int, insecure_allow_small_keys: bool) -> None:
    check_modulus_size(
        "Paillier",
        n_bits,
        insecure_allow_small_keys,
        min_secure=MIN_SECURE_KEY_BITS,
        min_insecure=MIN_INSECURE_KEY_BITS,
        max_bits=MAX_KEY_BITS,
    )


def _window(window_bits: int | None, n_bits: int) -> int:
    if window_bits is None:
        return WINDOW_BITS if n_bits >= MIN_SECURE_KEY_BITS else SMALL_KEY_WINDOW_BITS
    if isinstance(window_bits, bool) or not isinstance(window_bits, int):
        raise ConfigError(f"window_bits must be an int, got {window_bits!r}")
    if not 2 <= window_bits <= 16:
        raise ConfigError(f"window_bits must be in [2, 16], got {window_bits}")
    return window_bits


class PublicKey(PublicKeyBase):
    """Paillier public key ``n`` with ``g = n + 1``.

    The DJN generator ``h_s`` is drawn by *this* object (from its own randomness source), so
    an encryptor never depends on a generator chosen by the key owner. Its fixed-base table is
    built on first use: ``window_bits`` defaults to 11 for keys of 2048 bits and more (24 rows
    of 2048 residues mod ``n**2``: 25 MiB, ~0.4 s; 23 multiplications per encryption instead
    of 31 with 8-bit windows) and 8 for the small test-only keys.

    Parameters
    ----------
    n:
        The modulus (a product of two distinct primes of equal size).
    rng:
        Randomness source for encryption; default the OS CSPRNG. Inject a seeded
        :class:`random.Random` only for test vectors.
    insecure_allow_small_keys:
        Accept ``n`` below 2048 bits (tests only).
    window_bits:
        Window of the fixed-base table (memory against speed; see :class:`FixedBaseTable
        <privfin.he._util.FixedBaseTable>`). Does not change any result.
    modulus_proof:
        The owner's proof that ``gcd(n, phi(n)) = 1`` (:func:`verify_modulus`), carried to
        :meth:`to_wire`. Not verified here: a key received from a peer is loaded with
        :meth:`from_wire`, which verifies it.
    """

    scheme = "paillier"

    def __init__(
        self,
        n: int,
        *,
        rng: RandomSource | None = None,
        insecure_allow_small_keys: bool = False,
        window_bits: int | None = None,
        modulus_proof: Sequence[int] | None = None,
    ) -> None:
        n = int(n)
        if n < 3 or n % 2 == 0:
            raise ConfigError("a Paillier modulus must be an odd integer")
        _check_size(n.bit_length(), insecure_allow_small_keys)
        super().__init__(n, exponent_bits=djn_exponent_bits(n.bit_length()), rng=rng)
        self._nsq = self._n * self._n
        self._mod = self._nsq
        self.g = self.n + 1
        # Values with |m| < 2**capacity_bits decode exactly from the centered residue mod n.
        self.capacity_bits = self.n_bits - 2
        self._x = random_unit(self._rng, self.n)
        self.window_bits = _window(window_bits, self.n_bits)
        self.security_bits = rsa_security_bits(self.n_bits)
        self.modulus_proof: tuple[int, ...] | None = (
            None if modulus_proof is None else tuple(int(x) for x in modulus_proof)
        )

    @property
    def nsquare(self) -> int:
        """``n**2``, the ciphertext modulus."""
        return int(self._nsq)

    def _plain(self, m: int) -> Any:
        # (1 + n) ** m = 1 + m*n (mod n**2): no exponentiation needed.
        return (m % self._n) * self._n + 1

    def _plaintext(self, m: int) -> int:
        return m % self.n

    def _make_engine(self) -> PaillierEngine:
        h = (-self._x * self._x) % self._n
        hs = gmpy2.powmod(h, self._n, self._nsq)
        return PaillierEngine(self.n, int(hs), self.window_bits, self.exponent_bits)

    def raw_encrypt_with_r(self, m: int, r: int) -> int:
        """Textbook Paillier ``(1 + n)**m * r**n mod n**2`` with caller-chosen ``r`` in Z*_n.

        For interoperability and test vectors; ``r`` must be secret, uniform and never reused.
        """
        if not 0 < r < self.n or gmpy2.gcd(r, self._n) != 1:
            raise ConfigError("r must be a unit modulo n")
        return int(self._plain(int(m)) * gmpy2.powmod(r, self._n, self._nsq) % self._nsq)

    def _uniform_zeros(self, rs: Sequence[Any]) -> list[Any]:
        """``r**n mod n**2``: uniform among encryptions of zero when ``gcd(n, φ(n)) = 1``."""
        return list(gmpy2.powmod_base_list(rs, self._n, self._nsq))

    def to_wire(self) -> dict[str, Any]:
        """``{"kind": "PaillierPublicKey", "v": 1, "n": bytes, "proof": [bytes, ...]}``
        (big-endian ``n``; the modulus proof as :data:`PROOF_ROUNDS` big-endian values of
        ``n``'s byte length).

        Raises
        ------
        ConfigError
            The key carries no modulus proof (built from ``n`` alone): no peer would accept it.
        """
        if self.modulus_proof is None:
            raise ConfigError(
                "this Paillier public key has no modulus proof; send a key made by "
                "generate_keypair (or loaded with from_wire)"
            )
        width = (self.n_bits + 7) // 8
        return {
            "kind": "PaillierPublicKey",
            "v": 1,
            "n": int_to_bytes(self.n),
            "proof": [x.to_bytes(width, "big") for x in self.modulus_proof],
        }

    @classmethod
    def from_wire(
        cls,
        data: object,
        *,
        rng: RandomSource | None = None,
        insecure_allow_small_keys: bool = False,
        expect_bits: int | None = None,
    ) -> PublicKey:
        """Load a public key sent by its owner; refuses small or malformed moduli.

        The modulus must pass :func:`verify_modulus` (no prime factor below ``2**16`` and a
        valid proof that ``gcd(n, phi(n)) = 1``, ~20 ms at 2048 bits): a key owner cannot
        hand out a modulus under which this party's replies would leak beyond their masks.
        ``expect_bits``: the agreed modulus size, checked before any exponentiation (a larger
        key would make the proof check, and all later work, slower).

        Raises
        ------
        DecodeError
            Malformed data, a modulus of the wrong form or without a valid proof.
        InsecureModeError
            A modulus below 2048 bits without ``insecure_allow_small_keys``.
        """
        if not isinstance(data, dict) or data.get("kind") != "PaillierPublicKey":
            raise DecodeError("not a Paillier public key")
        if data.get("v") != 1:
            raise DecodeError("unsupported Paillier public key version")
        n = int_from_wire(data, "n")
        if expect_bits is not None and n.bit_length() != expect_bits:
            raise DecodeError(
                f"the Paillier modulus has {n.bit_length()} bits, not the agreed {expect_bits}"
            )
        raw = data.get("proof")
        if not isinstance(raw, list | tuple) or len(raw) != PROOF_ROUNDS:
            raise DecodeError(
                f"the Paillier public key has no modulus proof ({PROOF_ROUNDS} n-th roots)"
            )
        width = (n.bit_length() + 7) // 8
        if not all(isinstance(x, bytes) and len(x) == width for x in raw):
            raise DecodeError(f"the modulus proof must hold {width}-byte values")
        proof = [int.from_bytes(x, "big") for x in raw]
        try:
            key = cls(
                n,
                rng=rng,
                insecure_allow_small_keys=insecure_allow_small_keys,
                modulus_proof=proof,
            )
        except InsecureModeError:
            raise
        except ConfigError as exc:
            raise DecodeError(f"invalid Paillier public key: {exc}") from None
        # After the size check: a huge modulus is refused before any exponentiation.
        verify_modulus(n, proof)
        return key


class PrivateKey(PrivateKeyBase):
    """Paillier private key (the primes ``p``, ``q``) with CRT decryption.

    Decryption computes ``m_p = L_p(c**(p-1) mod p**2) * h_p mod p`` and the same mod ``q``,
    then recombines by CRT: two half-size exponentiations instead of one full one (~4x
    faster), batched with ``gmpy2.powmod_base_list`` (one C call per chunk, GIL released).
    When the plaintexts have a public bound far below ``p`` (``decrypt`` of vectors whose
    tracked ``bound_bits`` is at most ``|p| - 130``: every unpacked vector of 64-bit data),
    ``m_p`` alone is the answer: one half-size exponentiation (see
    :meth:`~privfin.he._raw.RawPrivateKey.decrypt_ints`). The factors are kept only here;
    there is deliberately no serialisation.
    """

    def __init__(self, public_key: PublicKey, p: int, q: int) -> None:
        super().__init__(public_key)
        p_, q_ = gmpy2.mpz(p), gmpy2.mpz(q)
        if p_ == q_ or p_ * q_ != public_key._n:
            raise ConfigError("p and q are not the factors of the public modulus")
        if p_ > q_:
            p_, q_ = q_, p_
        self._p, self._q = p_, q_
        self._psq, self._qsq = p_ * p_, q_ * q_
        self._pm1, self._qm1 = p_ - 1, q_ - 1
        # L_p((1+n)**(p-1) mod p**2) = -q mod p, so h_p = (-q)**-1 mod p; same for q.
        self._hp = gmpy2.invert(-q_ % p_, p_)
        self._hq = gmpy2.invert(-p_ % q_, q_)
        self._q_inv_p = gmpy2.invert(q_, p_)
        self._half = int(public_key._n // 2)
        self._p_bits = int(p_).bit_length()

    def prove_modulus(self) -> tuple[int, ...]:
        """The proof that ``gcd(n, phi(n)) = 1`` checked by :func:`verify_modulus`: the
        ``n``-th roots ``x_j = y_j**(n**-1 mod phi(n)) mod n`` of the public challenges
        (computed by CRT: two half-size exponentiations each). Deterministic in ``n`` (the
        ``n``-th root is unique when ``gcd(n, phi(n)) = 1``) and zero-knowledge in the
        random-oracle model: a simulator picks ``x_j`` and programs ``y_j = x_j**n``.
        """
        p, q, n = self._p, self._q, self.public_key._n
        dp, dq = gmpy2.invert(n, self._pm1), gmpy2.invert(n, self._qm1)
        out = []
        for y in modulus_challenges(int(n)):
            if gmpy2.gcd(y, n) != 1:  # pragma: no cover - probability ~2**-1023
                raise ConfigError("a modulus-proof challenge is not a unit")
            xp, xq = gmpy2.powmod(y, dp, p), gmpy2.powmod(y, dq, q)
            out.append(int(xq + ((xp - xq) * self._q_inv_p % p) * q))
        return tuple(out)

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        pk = self.public_key
        if not isinstance(pk, PublicKey):  # pragma: no cover - set in __init__
            raise TypeError("not a Paillier key")
        return pk

    def _mod_p(self, cts: Sequence[Any]) -> list[Any]:
        p, psq = self._p, self._psq
        powers = gmpy2.powmod_base_list([c % psq for c in cts], self._pm1, psq)
        hp, divexact = self._hp, gmpy2.divexact
        return [divexact(x - 1, p) * hp % p for x in powers]

    def _residues(self, cts: Sequence[Any]) -> list[int]:
        p, q, qsq = self._p, self._q, self._qsq
        mps = self._mod_p(cts)
        powers = gmpy2.powmod_base_list([c % qsq for c in cts], self._qm1, qsq)
        hq, q_inv_p, divexact = self._hq, self._q_inv_p, gmpy2.divexact
        out = []
        for mp, x in zip(mps, powers, strict=True):
            mq = divexact(x - 1, q) * hq % q
            out.append(int(mq + ((mp - mq) * q_inv_p % p) * q))
        return out

    def _signed(self, cts: Sequence[Any], plain_bits: int | None) -> list[int]:
        if plain_bits is not None and plain_bits + P_ONLY_MARGIN_BITS < self._p_bits:
            # |m| < 2**plain_bits < p/2: the centered residue mod p is m itself.
            # A chosen ciphertext of m >= p would decrypt to m mod p, and returning that would
            # reveal p = gcd(m - reply, n): every residue must lie within the bound, which a
            # chosen m >= p meets with probability below 2**(plain_bits + 1 - |p|) <= 2**-128.
            p, limit = self._p, gmpy2.mpz(1) << plain_bits
            out = []
            for residue in self._mod_p(cts):
                m = residue if residue < limit else residue - p
                if m <= -limit:
                    raise PlaintextOutOfRange(
                        "a Paillier ciphertext decrypted outside its declared bound (a "
                        "chosen or corrupted ciphertext); no decryption is returned"
                    )
                out.append(int(m))
            return out
        n, half = self.public_key.n, self._half
        return [m - n if m > half else m for m in self._residues(cts)]


def generate_keypair(
    n_bits: int = DEFAULT_KEY_BITS,
    *,
    rng: RandomSource | None = None,
    insecure_allow_small_keys: bool = False,
    window_bits: int | None = None,
) -> tuple[PublicKey, PrivateKey]:
    """Generate a Paillier key pair with an ``n_bits`` modulus (default 2048, 112-bit security).

    Parameters
    ----------
    n_bits:
        Modulus size; even, at least 2048 unless ``insecure_allow_small_keys``.
    rng:
        Randomness for the primes and, later, for encryption under the returned public key.
        Default: the OS CSPRNG. A seeded :class:`random.Random` makes test vectors only.
    insecure_allow_small_keys:
        Permit ``n_bits < 2048`` (tests and demos; never for real data).
    window_bits:
        Fixed-base window of the returned public key (default: see :class:`PublicKey`).

    Raises
    ------
    InsecureModeError
        ``n_bits < 2048`` without the flag.
    """
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or n_bits % 2:
        raise ConfigError(f"n_bits must be an even int, got {n_bits!r}")
    _check_size(n_bits, insecure_allow_small_keys)
    source = check_rng(rng)
    half = n_bits // 2
    while True:
        p = random_prime(source, half)
        q = random_prime(source, half)
        n = p * q
        if p != q and n.bit_length() == n_bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    pk = PublicKey(
        int(n),
        rng=source,
        insecure_allow_small_keys=insecure_allow_small_keys,
        window_bits=window_bits,
    )
    sk = PrivateKey(pk, int(p), int(q))
    pk.modulus_proof = sk.prove_modulus()
    return pk, sk
