"""Typed messages of the exposure protocol (wire names ``exposure.*``)."""

from __future__ import annotations

import numpy as np

from privfin.crypto.kex import PUBLIC_KEY_BYTES
from privfin.federation.codec import Message, wire_message

__all__ = ["MASK_CONTEXT", "MAX_AMOUNT", "MaskedAmounts", "PublicKey"]

#: Domain separation for the pairwise mask seeds (bump on any change of the mask derivation).
MASK_CONTEXT = b"privfin/exposure/v1"
#: Each lender's amount per borrower must lie in [0, MAX_AMOUNT) (integer minor units), so the
#: sum over up to 256 lenders stays below 2**64 and decodes without wrapping.
MAX_AMOUNT = 2**56


@wire_message("exposure.PublicKey")
class PublicKey(Message, frozen=True, kw_only=True):
    """Round 1, lender -> every other lender: an ephemeral X25519 public key."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != PUBLIC_KEY_BYTES:
            raise ValueError(f"public key must be {PUBLIC_KEY_BYTES} bytes")


@wire_message("exposure.MaskedAmounts")
class MaskedAmounts(Message, frozen=True, kw_only=True):
    """Round 2, lender -> result party: amounts plus pairwise masks, in Z_2^64, one per agreed
    borrower id (in the agreed order)."""

    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.dtype != np.uint64 or self.values.ndim != 1:
            raise ValueError("masked amounts must be a 1-D uint64 array")
