"""Pseudo-random generator: expand a 32-byte seed into arrays (AES-256-CTR).

Used for pairwise masks and correlated randomness: two parties holding the same seed expand it
to the same array. Security: outputs are indistinguishable from uniform as long as AES is a
PRF and the seed is secret and used for one stream only (bind the seed to its purpose with
:func:`privfin.crypto.kex.derive_seed`).
"""

from __future__ import annotations

import sys

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


#: zeros the keystream is encrypted from (read-only, shared, grown to the largest request up
#: to :data:`_ZEROS_CAP` bytes): no zero buffer is allocated and cleared per call
_ZEROS: list[bytes] = [b""]
_ZEROS_CAP = 1 << 26


def expand_uint64(seed: bytes, count: int, *, stream: int = 0) -> np.ndarray:
    """Expand ``seed`` into ``count`` uniform elements of Z_2^64 (dtype uint64): the bytes of
    :func:`expand_bytes` read little-endian, encrypted straight into the array (no zeroing, no
    copy: ≈ 4× faster than decoding the bytes for ≥ 1 MB)."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes")
    if count < 0 or not 0 <= stream < 2**64:
        raise ValueError("count must be >= 0 and stream a 64-bit counter")
    nbytes = 8 * count
    zeros = _ZEROS[0]
    if len(zeros) < nbytes:
        zeros = bytes(max(nbytes, 2 * len(zeros)))
        if len(zeros) <= _ZEROS_CAP:
            _ZEROS[0] = zeros
    nonce = stream.to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    # update_into may need up to one block more room than the data: two spare words
    out = np.empty(count + 2, dtype=np.uint64)
    enc.update_into(memoryview(zeros)[:nbytes], out.data.cast("B"))
    if sys.byteorder != "little":
        out.byteswap(inplace=True)
    return out[:count]


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
