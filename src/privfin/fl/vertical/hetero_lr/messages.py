"""Typed messages of hetero LR (wire names ``vfl.lr.*``); see SPEC.md for the flow.

Ciphertext vectors travel in the validated wire form of :class:`privfin.he.paillier`
(``EncryptedVector.to_wire``): the receiver loads them with ``from_wire`` against the key it
expects, which refuses a wrong key, a wrong length or any value outside Z*_{n^2}
(:class:`~privfin.errors.DecodeError`).
"""

from __future__ import annotations

import math
from typing import Any

from privfin.federation.codec import Message, wire_message

__all__ = [
    "Ciphertexts",
    "FeatureCount",
    "KeyAnnouncement",
    "Plaintexts",
    "Plan",
    "RowCount",
    "Verdict",
    "WeightNorms",
]

#: Largest number of rows a plan may announce.
MAX_ROWS = 1 << 28
#: Largest number of gradient entries (features, with the guest's intercept) of one party.
MAX_FEATURES = 1 << 12


@wire_message("vfl.lr.KeyAnnouncement")
class KeyAnnouncement(Message, frozen=True, kw_only=True):
    """Key holder -> parties: its Paillier public key (``PublicKey.to_wire()``)."""

    key: dict[str, Any]


@wire_message("vfl.lr.Plan")
class Plan(Message, frozen=True, kw_only=True):
    """Guest -> hosts: row count of the aligned data and the minibatch seed."""

    n_rows: int
    seed: int

    def __post_init__(self) -> None:
        if not 0 < self.n_rows <= MAX_ROWS or not 0 <= self.seed < 2**63:
            raise ValueError("plan out of range")


@wire_message("vfl.lr.RowCount")
class RowCount(Message, frozen=True, kw_only=True):
    """Host -> arbiter, once at setup: the host's number of aligned rows (it has checked the
    guest's :class:`Plan` against it). The arbiter derives every batch's public bound from
    the row count, so it takes it from no single party: all data parties must agree."""

    n_rows: int

    def __post_init__(self) -> None:
        if not 0 < self.n_rows <= MAX_ROWS:
            raise ValueError("row count out of range")


@wire_message("vfl.lr.FeatureCount")
class FeatureCount(Message, frozen=True, kw_only=True):
    """Party -> its key holder, once at setup: the number of entries of its gradient (features,
    plus the intercept for the guest). It fixes the exact size of every masked request the
    party sends for the whole run; the key holder decrypts nothing else."""

    count: int

    def __post_init__(self) -> None:
        if not 0 < self.count <= MAX_FEATURES:
            raise ValueError(f"feature count must be in [1, {MAX_FEATURES}]")


@wire_message("vfl.lr.Ciphertexts")
class Ciphertexts(Message, frozen=True, kw_only=True):
    """Any encrypted vector (residuals, partial predictors, masked packed gradients)."""

    vec: dict[str, Any]


@wire_message("vfl.lr.Plaintexts")
class Plaintexts(Message, frozen=True, kw_only=True):
    """Key holder -> party: decrypted residues of the party's masked packed gradients."""

    values: list[int]

    def __post_init__(self) -> None:
        if len(self.values) > 1 << 16 or any(v < 0 for v in self.values):
            raise ValueError("decrypted residues must be non-negative and few")


@wire_message("vfl.lr.WeightNorms")
class WeightNorms(Message, frozen=True, kw_only=True):
    """Party -> coordinator at the end of an epoch (early stopping only)."""

    diff_sq: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.diff_sq) and self.diff_sq >= 0):
            raise ValueError("diff_sq must be finite and non-negative")


@wire_message("vfl.lr.Verdict")
class Verdict(Message, frozen=True, kw_only=True):
    """Coordinator -> parties: stop after this epoch or go on."""

    stop: bool
