"""Typed messages of CKKS aggregation (wire names ``hfl.ckks.*``); see SPEC.md. Every decoder
checks sizes and types; CKKS bytes are parsed (and their parameters checked) only by
:mod:`privfin.he.ckks` under its size limits."""

from __future__ import annotations

import numpy as np

from privfin.federation.codec import Message, wire_message
from privfin.federation.transport import validate_name
from privfin.he.ckks import MAX_CONTEXT_BYTES, MAX_VECTOR_BYTES

__all__ = ["CKKSInput", "CKKSKey", "CKKSPlain", "CKKSPublic", "CKKSSum"]

#: Most ciphertexts in one message (2**24 values / 4096 slots).
MAX_CHUNKS = 4096


def _check_round(r: int) -> None:
    if not 0 <= r < 2**31:
        raise ValueError("round out of range")


def _check_cts(cts: list[bytes]) -> None:
    if not 0 < len(cts) <= MAX_CHUNKS:
        raise ValueError(f"between 1 and {MAX_CHUNKS} ciphertexts")
    if any(not isinstance(c, bytes) or not 0 < len(c) <= MAX_VECTOR_BYTES for c in cts):
        raise ValueError("a ciphertext is empty or too large")


@wire_message("hfl.ckks.Key")
class CKKSKey(Message, frozen=True, kw_only=True):
    """Key client -> every other client (directly, never through the server): the CKKS
    context with its secret key, and the seed of the noise decryptors add to released sums."""

    context: bytes
    flood_seed: bytes

    def __post_init__(self) -> None:
        if not 0 < len(self.context) <= MAX_CONTEXT_BYTES or len(self.flood_seed) != 32:
            raise ValueError("a context of bounded size and a 32-byte seed")


@wire_message("hfl.ckks.Public")
class CKKSPublic(Message, frozen=True, kw_only=True):
    """Key client -> server: the public context (encryption and relinearisation keys)."""

    context: bytes

    def __post_init__(self) -> None:
        if not 0 < len(self.context) <= MAX_CONTEXT_BYTES:
            raise ValueError("context size out of range")


@wire_message("hfl.ckks.Input")
class CKKSInput(Message, frozen=True, kw_only=True):
    """Client -> server: its vector encrypted, in chunks of ``slots`` values."""

    round: int
    cts: list[bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_cts(self.cts)


@wire_message("hfl.ckks.Sum")
class CKKSSum(Message, frozen=True, kw_only=True):
    """Server -> each included client: the encrypted sum and whose inputs it holds."""

    round: int
    included: list[str]
    cts: list[bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_cts(self.cts)
        if len(set(self.included)) != len(self.included) or len(self.included) > 10_000:
            raise ValueError("included parties repeat or are too many")
        for p in self.included:
            validate_name("party", p)


@wire_message("hfl.ckks.Plain")
class CKKSPlain(Message, frozen=True, kw_only=True):
    """Client -> server: the released (flooded, rounded) decryption of the sum."""

    round: int
    values: np.ndarray

    def __post_init__(self) -> None:
        _check_round(self.round)
        if self.values.dtype != np.float64 or self.values.ndim != 1 or self.values.size == 0:
            raise ValueError("values must be a non-empty 1-d float64 vector")
        if not np.all(np.isfinite(self.values)):
            raise ValueError("values must be finite")
