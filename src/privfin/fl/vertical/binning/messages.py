"""Typed messages of hetero binning and hetero Pearson (wire names ``vfl.bin.*``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.federation.codec import Message, wire_message

__all__ = [
    "BinKey",
    "Correlations",
    "EncryptedColumns",
    "HostBins",
    "PearsonSetup",
    "Verdicts",
]

MAX_BINS = 1024


@wire_message("vfl.bin.Key")
class BinKey(Message, frozen=True, kw_only=True):
    """Guest -> hosts: the guest's Paillier public key (``PublicKey.to_wire()``)."""

    key: dict[str, Any]


@wire_message("vfl.bin.EncryptedColumns")
class EncryptedColumns(Message, frozen=True, kw_only=True):
    """Guest -> host: encrypted labels (binning) or standardised columns (Pearson)."""

    columns: list[dict[str, Any]]


@wire_message("vfl.bin.HostBins")
class HostBins(Message, frozen=True, kw_only=True):
    """Host -> guest: per-bin encrypted event sums (packed) and plaintext bin sizes."""

    sums: dict[str, Any]
    totals: np.ndarray
    n_bins: list[int]
    names: list[str]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.n_bins):
            raise ValueError("one feature name per binned feature")
        if self.totals.dtype != np.int64 or self.totals.ndim != 1:
            raise ValueError("totals must be a 1-D int64 array")
        if any(not 1 <= b <= MAX_BINS for b in self.n_bins):
            raise ValueError(f"bin counts must lie in [1, {MAX_BINS}]")
        if sum(self.n_bins) != self.totals.size or np.any(self.totals < 0):
            raise ValueError("totals do not match n_bins")


@wire_message("vfl.bin.Verdicts")
class Verdicts(Message, frozen=True, kw_only=True):
    """Guest -> host: how its fine bins merge, which features are kept, and (only if the job
    says so) the WOE of each final bin, rounded to ``woe_decimals``."""

    groups: list[list[list[int]]]
    selected: list[bool]
    woe: list[list[float]]


@wire_message("vfl.bin.Correlations")
class Correlations(Message, frozen=True, kw_only=True):
    """Host -> guest: packed encrypted cross products; guest -> host: the correlations."""

    packed: dict[str, Any] | None = None
    matrix: np.ndarray | None = None


#: Most host features hetero Pearson accepts (each is ``d_guest`` more decrypted products).
MAX_PEARSON_FEATURES = 4096


@wire_message("vfl.bin.PearsonSetup")
class PearsonSetup(Message, frozen=True, kw_only=True):
    """Host -> guest, first: how many features the host correlates (``d_h``). The guest then
    decrypts exactly ``d_guest * d_h`` products from it, no more."""

    n_features: int

    def __post_init__(self) -> None:
        if not 1 <= self.n_features <= MAX_PEARSON_FEATURES:
            raise ValueError(f"n_features must lie in [1, {MAX_PEARSON_FEATURES}]")
