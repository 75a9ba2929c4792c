"""Shamir secret sharing of byte strings over the prime field GF(2**521 - 1).

A secret of at most :data:`MAX_SECRET_BYTES` bytes is read as an integer ``s < 2**512`` and
becomes the constant term of a uniformly random polynomial of degree ``t - 1``; share ``i``
(``1 <= i <= n``) is the polynomial at ``x = i``. Any ``t`` shares give ``s`` back (Lagrange
interpolation at 0); any ``t - 1`` shares are uniformly distributed whatever ``s`` is
(information-theoretic secrecy). Shares are sent as 66-byte big-endian field elements.

Pure math: no I/O, randomness passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from privfin.crypto.random import RandomSource

__all__ = ["MAX_SECRET_BYTES", "PRIME", "SHARE_BYTES", "Share", "recombine", "split"]

#: The Mersenne prime 2**521 - 1.
PRIME = (1 << 521) - 1
#: Bytes of one serialised share value.
SHARE_BYTES = 66
#: Longest secret (bytes) that fits below the prime with its length tag.
MAX_SECRET_BYTES = 64


@dataclass(frozen=True)
class Share:
    """Share number ``x`` (1-based) of a secret: the polynomial's value ``y`` at ``x``."""

    x: int
    y: int

    def __post_init__(self) -> None:
        if not 1 <= self.x < PRIME or not 0 <= self.y < PRIME:
            raise ValueError("share out of range")

    def y_bytes(self) -> bytes:
        return self.y.to_bytes(SHARE_BYTES, "big")

    @classmethod
    def from_bytes(cls, x: int, data: bytes) -> Share:
        """Load a share value sent as :meth:`y_bytes` (``ValueError`` if malformed)."""
        if len(data) != SHARE_BYTES:
            raise ValueError(f"a share is {SHARE_BYTES} bytes")
        return cls(x, int.from_bytes(data, "big"))


def _encode(secret: bytes) -> int:
    if len(secret) > MAX_SECRET_BYTES:
        raise ValueError(f"a secret is at most {MAX_SECRET_BYTES} bytes")
    # A leading 0x01 keeps leading zero bytes of the secret.
    return int.from_bytes(b"\x01" + secret, "big")


def _decode(value: int) -> bytes:
    if value == 0:
        raise ValueError("shares do not recombine to a secret (inconsistent shares)")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if raw[0] != 1 or len(raw) - 1 > MAX_SECRET_BYTES:
        raise ValueError("shares do not recombine to a secret (inconsistent shares)")
    return raw[1:]


def split(secret: bytes, n: int, t: int, random: RandomSource) -> list[Share]:
    """Split ``secret`` into ``n`` shares, any ``t`` of which recombine it (``1 <= t <= n``)."""
    if not 1 <= t <= n or n >= 1 << 16:
        raise ValueError(f"need 1 <= t <= n < 65536, got t={t}, n={n}")
    coeffs = [_encode(secret)] + [random.below(PRIME) for _ in range(t - 1)]
    shares = []
    for x in range(1, n + 1):
        acc = 0
        for c in reversed(coeffs):
            acc = (acc * x + c) % PRIME
        shares.append(Share(x, acc))
    return shares


def recombine(shares: Mapping[int, Share] | list[Share], t: int) -> bytes:
    """The secret from at least ``t`` shares with distinct ``x`` (the first ``t`` are used).

    Raises ``ValueError`` with fewer than ``t`` shares, duplicate ``x`` or shares that do not
    interpolate to a well-formed secret.
    """
    items = list(shares.values()) if isinstance(shares, Mapping) else list(shares)
    xs = [s.x for s in items]
    if len(set(xs)) != len(xs):
        raise ValueError("duplicate share index")
    if len(items) < t:
        raise ValueError(f"need {t} shares to recombine, got {len(items)}")
    use = items[:t]
    secret = 0
    for i, si in enumerate(use):
        num, den = 1, 1
        for j, sj in enumerate(use):
            if i != j:
                num = num * (-sj.x) % PRIME
                den = den * (si.x - sj.x) % PRIME
        secret = (secret + si.y * num * pow(den, -1, PRIME)) % PRIME
    return _decode(secret)
