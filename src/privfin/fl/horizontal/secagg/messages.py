"""Typed messages of secure aggregation (wire names ``hfl.secagg.*``); see SPEC.md.

Every message carries the round number it belongs to and checks sizes and ranges when it is
decoded (a violation is a :class:`~privfin.errors.DecodeError`). What a message cannot check
alone (a vector of the agreed length, a party of this round) the receiving role checks.
"""

from __future__ import annotations

import numpy as np

from privfin.crypto.kex import PUBLIC_KEY_BYTES
from privfin.crypto.shamir import SHARE_BYTES
from privfin.federation.codec import Message, wire_message
from privfin.federation.transport import validate_name

__all__ = [
    "CIPHERTEXT_BYTES",
    "MAX_CLIENTS",
    "MAX_DIM",
    "AdvertiseKeys",
    "EncryptedShares",
    "Excluded",
    "ForwardedShares",
    "KeyList",
    "MaskedInput",
    "UnmaskRequest",
    "UnmaskShares",
]

#: Most clients in one aggregation.
MAX_CLIENTS = 10_000
#: Longest vector aggregated at once.
MAX_DIM = 1 << 26
#: AES-GCM nonce (12) + two Shamir shares + tag (16).
CIPHERTEXT_BYTES = 12 + 2 * SHARE_BYTES + 16


def _check_round(r: int) -> None:
    if not 0 <= r < 2**31:
        raise ValueError("round out of range")


def _check_parties(parties: list[str]) -> None:
    if len(parties) > MAX_CLIENTS:
        raise ValueError("too many parties")
    if len(set(parties)) != len(parties):
        raise ValueError("duplicate party")
    for p in parties:
        validate_name("party", p)


@wire_message("hfl.secagg.AdvertiseKeys")
class AdvertiseKeys(Message, frozen=True, kw_only=True):
    """Client -> server: the client's two fresh X25519 public keys for this round (``c_pk``
    encrypts shares between clients, ``s_pk`` derives pairwise masks)."""

    round: int
    c_pk: bytes
    s_pk: bytes

    def __post_init__(self) -> None:
        _check_round(self.round)
        if len(self.c_pk) != PUBLIC_KEY_BYTES or len(self.s_pk) != PUBLIC_KEY_BYTES:
            raise ValueError("public keys are 32 bytes")


@wire_message("hfl.secagg.KeyList")
class KeyList(Message, frozen=True, kw_only=True):
    """Server -> clients of U1: every advertising client's public keys (sorted by name)."""

    round: int
    parties: list[str]
    c_pks: list[bytes]
    s_pks: list[bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_parties(self.parties)
        if self.parties != sorted(self.parties):
            raise ValueError("parties must be sorted")
        if not len(self.c_pks) == len(self.s_pks) == len(self.parties):
            raise ValueError("one key pair per party")
        if any(len(k) != PUBLIC_KEY_BYTES for k in [*self.c_pks, *self.s_pks]):
            raise ValueError("public keys are 32 bytes")


@wire_message("hfl.secagg.EncryptedShares")
class EncryptedShares(Message, frozen=True, kw_only=True):
    """Client -> server: its shares for every other client of U1, each encrypted to that
    client (AES-256-GCM under a key only the two of them can derive)."""

    round: int
    to: list[str]
    ciphertexts: list[bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_parties(self.to)
        if len(self.ciphertexts) != len(self.to):
            raise ValueError("one ciphertext per receiver")
        if any(len(c) != CIPHERTEXT_BYTES for c in self.ciphertexts):
            raise ValueError(f"a share ciphertext is {CIPHERTEXT_BYTES} bytes")


@wire_message("hfl.secagg.ForwardedShares")
class ForwardedShares(Message, frozen=True, kw_only=True):
    """Server -> client: the ciphertexts addressed to it, with their senders (this is U2)."""

    round: int
    senders: list[str]
    ciphertexts: list[bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_parties(self.senders)
        if len(self.ciphertexts) != len(self.senders):
            raise ValueError("one ciphertext per sender")
        if any(len(c) != CIPHERTEXT_BYTES for c in self.ciphertexts):
            raise ValueError(f"a share ciphertext is {CIPHERTEXT_BYTES} bytes")


@wire_message("hfl.secagg.MaskedInput")
class MaskedInput(Message, frozen=True, kw_only=True):
    """Client -> server: its quantised input plus self-mask plus pairwise masks, in Z_2^64."""

    round: int
    y: np.ndarray

    def __post_init__(self) -> None:
        _check_round(self.round)
        if self.y.dtype != np.uint64 or self.y.ndim != 1 or not 0 < self.y.size <= MAX_DIM:
            raise ValueError("masked input must be a non-empty 1-d uint64 vector")


@wire_message("hfl.secagg.UnmaskRequest")
class UnmaskRequest(Message, frozen=True, kw_only=True):
    """Server -> clients of U3: who sent a masked input (``survivors``: reveal their self-mask
    seed shares) and who did not (``dropped``: reveal their mask-key shares)."""

    round: int
    survivors: list[str]
    dropped: list[str]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_parties(self.survivors)
        _check_parties(self.dropped)


@wire_message("hfl.secagg.UnmaskShares")
class UnmaskShares(Message, frozen=True, kw_only=True):
    """Client -> server: the shares it holds of each survivor's self-mask seed and each
    dropped client's mask key."""

    round: int
    b_shares: dict[str, bytes]
    s_shares: dict[str, bytes]

    def __post_init__(self) -> None:
        _check_round(self.round)
        _check_parties(list(self.b_shares))
        _check_parties(list(self.s_shares))
        if set(self.b_shares) & set(self.s_shares):
            raise ValueError("both shares of one client")
        if any(len(v) != SHARE_BYTES for v in [*self.b_shares.values(), *self.s_shares.values()]):
            raise ValueError(f"a share is {SHARE_BYTES} bytes")


@wire_message("hfl.secagg.Excluded")
class Excluded(Message, frozen=True, kw_only=True):
    """Server -> client: you are out of this round (late, or the round failed)."""

    round: int
    reason: str

    def __post_init__(self) -> None:
        _check_round(self.round)
        if len(self.reason) > 1000:
            raise ValueError("reason too long")
