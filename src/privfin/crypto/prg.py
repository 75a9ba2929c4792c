"""Pseudo-random generator: expand a 32-byte seed into arrays (AES-256-CTR).

Used for pairwise masks and correlated randomness: two parties holding the same seed expand it
to the same array. Security: outputs are indistinguishable from uniform as long as AES is a
PRF and the seed is secret and used for one stream only (bind the seed to its purpose with
:func:`privfin.crypto.kex.derive_seed`).
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privfin.crypto.random import _below

__all__ = ["PrgRandom", "expand_bytes", "expand_uint64"]

SEED_BYTES = 32


def expand_bytes(seed: bytes, n: int, *, stream: int = 0) -> bytes:
    """Expand ``seed`` into ``n`` pseudo-random bytes; ``stream`` selects an independent stream."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes")
    if n < 0 or not 0 <= stream < 2**64:
        raise ValueError("n must be >= 0 and stream a 64-bit counter")
    nonce = stream.to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    return enc.update(bytes(n)) + enc.finalize()


def expand_uint64(seed: bytes, count: int, *, stream: int = 0) -> np.ndarray:
    """Expand ``seed`` into ``count`` uniform elements of Z_2^64 (dtype uint64): the bytes of
    :func:`expand_bytes` read little-endian, encrypted straight into the writable array."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes")
    if count < 0 or not 0 <= stream < 2**64:
        raise ValueError("count must be >= 0 and stream a 64-bit counter")
    nonce = stream.to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    # update_into may write up to one block past the data: room for it, then a view
    out = bytearray(8 * count + 16)
    enc.update_into(bytes(8 * count), out)
    return np.frombuffer(out, dtype="<u8", count=count)


class PrgRandom:
    """A :class:`~privfin.crypto.random.RandomSource` that expands a secret 32-byte seed
    (AES-256-CTR, one stream). Two instances with the same seed give the same bytes: a party
    that checkpoints the seed (never the stream) redraws exactly what it drew before a crash.
    Secure as long as the seed is secret, uniform and used for one purpose only."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"seed must be {SEED_BYTES} bytes")
        self._enc = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._enc.update(bytes(n))

    def below(self, bound: int) -> int:
        return _below(self, bound)
