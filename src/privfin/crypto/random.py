"""Injectable randomness.

Every primitive that needs randomness takes a :class:`RandomSource`. Production code uses
:class:`SystemRandom` (the operating system's CSPRNG); tests pass :class:`SeededRandom` so
primitives have deterministic test vectors. ``SeededRandom`` is named insecure: its output is
fully determined by the seed.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

__all__ = ["RandomSource", "SeededRandom", "SystemRandom"]


@runtime_checkable
class RandomSource(Protocol):
    """A source of uniformly random bytes."""

    def bytes(self, n: int) -> bytes:
        """Return ``n`` random bytes."""
        ...

    def below(self, bound: int) -> int:
        """Return a uniform integer in ``[0, bound)``."""
        ...


def _below(source: RandomSource, bound: int) -> int:
    if bound <= 0:
        raise ValueError("bound must be positive")
    nbytes = (bound.bit_length() + 7) // 8 + 8  # 64 extra bits: bias below 2**-64
    return int.from_bytes(source.bytes(nbytes), "big") % bound


class SystemRandom:
    """The operating system's CSPRNG (``os.urandom``). The production default."""

    def bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def below(self, bound: int) -> int:
        return _below(self, bound)


class SeededRandom:
    """Deterministic ChaCha20 stream keyed by a seed. **Insecure**: for tests and test vectors.

    Two instances with the same seed produce the same bytes.
    """

    def __init__(self, seed: int | bytes | str) -> None:
        if isinstance(seed, int):
            seed = seed.to_bytes((seed.bit_length() + 8) // 8, "big", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode()
        key = hashlib.sha256(b"privfin.SeededRandom" + seed).digest()
        self._enc = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._enc.update(bytes(n))

    def below(self, bound: int) -> int:
        return _below(self, bound)
