"""Parameters and helpers shared by the hetero binning roles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.config import require_insecure_allowed
from privfin.errors import ConfigError
from privfin.he import paillier
from privfin.ml.binning import apply_bins, chi_merge, quantile_edges
from privfin.runtime import Context

__all__ = ["BinParams", "feature_matrix", "final_edges", "new_keypair", "woe_transform"]


@dataclass(frozen=True)
class BinParams:
    """Public parameters of ``hetero_binning`` (identical at every party).

    Parameters
    ----------
    method:
        ``"quantile"`` (``n_bins`` equal-frequency bins) or ``"chimerge"`` (``fine_bins``
        quantile bins merged by chi2 down to at most ``n_bins``).
    iv_threshold, top_k:
        Keep features with ``IV >= iv_threshold`` (and, if ``top_k``, only the ``top_k`` best
        over all parties).
    reveal_woe_to_hosts:
        Send each host the WOE of its own bins (needed to train on WOE features, e.g. a
        scorecard). Off by default: WOE per bin reveals the bin's event rate to the host.
    """

    method: str = "quantile"
    n_bins: int = 10
    fine_bins: int = 32
    chi_threshold: float = 3.841
    min_bin_share: float = 0.05
    iv_threshold: float = 0.02
    top_k: int = 0
    reveal_woe_to_hosts: bool = False
    key_bits: int = 2048
    insecure_allow_small_keys: bool = False

    def __post_init__(self) -> None:
        if self.method not in ("quantile", "chimerge"):
            raise ConfigError("method must be 'quantile' or 'chimerge'")
        if not 2 <= self.n_bins <= 256 or not 2 <= self.fine_bins <= 1000:
            raise ConfigError("n_bins must be in [2, 256] and fine_bins in [2, 1000]")
        if self.iv_threshold < 0 or self.top_k < 0 or not 0 <= self.min_bin_share < 0.5:
            raise ConfigError("iv_threshold, top_k >= 0 and min_bin_share in [0, 0.5)")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> BinParams:
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known - {"id_column", "label"}
        if unknown:
            raise ConfigError(
                f"unknown binning parameters {sorted(unknown)}; known: {sorted(known)}"
            )
        try:
            return cls(**{k: v for k, v in params.items() if k in known})
        except TypeError as exc:
            raise ConfigError(f"invalid binning parameters: {exc}") from None

    @property
    def initial_bins(self) -> int:
        return self.fine_bins if self.method == "chimerge" else self.n_bins

    def merge(self, events: npt.ArrayLike, totals: npt.ArrayLike) -> list[list[int]]:
        """Groups of value bins (the missing bin is never merged)."""
        ev = np.asarray(events)
        if self.method == "quantile":
            return [[i] for i in range(ev.size)]
        return chi_merge(
            events, totals, max_bins=self.n_bins, threshold=self.chi_threshold,
            min_bin_share=self.min_bin_share,
        )  # fmt: skip


def new_keypair(ctx: Context, p: BinParams) -> tuple[paillier.PublicKey, paillier.PrivateKey]:
    """The guest's key pair (small keys need the flag and an insecure-allowed mode)."""
    if p.key_bits < paillier.MIN_SECURE_KEY_BITS:
        if not p.insecure_allow_small_keys:
            raise ConfigError("key_bits below 2048 needs insecure_allow_small_keys (tests only)")
        require_insecure_allowed(ctx.settings, f"a {p.key_bits}-bit Paillier key")
    return paillier.generate_keypair(
        p.key_bits, insecure_allow_small_keys=p.insecure_allow_small_keys
    )


def feature_matrix(
    inputs: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[npt.NDArray[np.float64], list[str]]:
    """``(X, names)`` from ``inputs["X"]`` (array or DataFrame) or an aligned ``table``; NaN
    is allowed (it gets its own bin)."""
    x = inputs.get("X")
    if x is None and inputs.get("table") is not None:
        table = inputs["table"]
        drop = [c for c in (params.get("id_column", "id"), params.get("label", "y")) if c in table]
        x = table.drop(columns=drop)
    if x is None:
        raise ConfigError("binning needs an input 'X' (or an aligned 'table')")
    names = [str(c) for c in x.columns] if hasattr(x, "columns") else None
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ConfigError(f"features must be a non-empty 2-D table, got shape {arr.shape}")
    if np.any(np.isinf(arr)):
        raise ConfigError("features hold infinite values")
    return arr, names or [f"x{j}" for j in range(arr.shape[1])]


def fine_edges(x: npt.NDArray[np.float64], p: BinParams) -> list[npt.NDArray[np.float64]]:
    return [quantile_edges(x[:, j], p.initial_bins) for j in range(x.shape[1])]


def final_edges(edges: npt.NDArray[np.float64], groups: list[list[int]]) -> list[float]:
    """Inner edges after merging value bins by ``groups``."""
    return [float(edges[g[-1]]) for g in groups[:-1]]


def woe_transform(
    x: npt.ArrayLike, edges: list[list[float]], woe: list[list[float]]
) -> npt.NDArray[np.float64]:
    """Replace every value by the WOE of its bin (``woe[j]`` has ``len(edges[j]) + 2`` entries:
    value bins, then the missing bin)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(edges) or len(woe) != len(edges):
        raise ConfigError("woe_transform needs one edge list and one WOE list per column")
    out = np.empty_like(arr)
    for j in range(arr.shape[1]):
        table = np.asarray(woe[j], dtype=np.float64)
        if table.size != len(edges[j]) + 2:
            raise ConfigError(f"column {j}: {table.size} WOE values for {len(edges[j]) + 2} bins")
        out[:, j] = table[apply_bins(arr[:, j], edges[j])]
    return out
