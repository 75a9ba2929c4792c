"""Parameters and helpers shared by the hetero binning roles."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.config import require_insecure_allowed
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.he import paillier
from privfin.he._packed import PackedEncryptedVector
from privfin.he._vector import EncryptedVector
from privfin.ml.binning import apply_bins, chi_merge, quantile_edges
from privfin.runtime import Context

__all__ = [
    "RHO_BITS",
    "BinParams",
    "LocalBins",
    "feature_matrix",
    "final_edges",
    "final_woe",
    "guest_key",
    "label_bits",
    "local_bins",
    "missing_target",
    "new_keypair",
    "reply_for_owner",
    "woe_transform",
]


#: Bits of the guest's secret per-job label weight ``rho`` (see :func:`label_bits`).
RHO_BITS = 64


def label_bits(n: int) -> int:
    """Public bound (bits) of an encrypted label ``y + rho * 2**bits(n)`` (``rho < 2**64``)."""
    return n.bit_length() + RHO_BITS


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
        Send each host the WOE of its own bins, rounded to ``woe_decimals`` decimals (needed to
        train on WOE features at the host). Off by default: WOE per bin reveals the bin's event
        rate to the host.
    min_bin_share:
        Every final bin (and every bin a host declares with ``quantile``) holds no rows or at
        least ``ceil(min_bin_share * n)`` rows; at least 0.01 (default 0.05). The guest aborts
        on a host that declares a smaller bin.
    min_fine_share:
        The same floor for the fine bins a host declares with ``chimerge`` (default 0.02, in
        ``[0.01, min_bin_share]``).
    max_features:
        At most this many features per host (default 256); more aborts the job.
    woe_decimals:
        Decimals of the WOE sent to hosts (default 1, i.e. steps of 0.1; in ``[0, 3]``).
    scheme:
        Only ``"paillier"``: the guest returns values computed from ciphertexts a host chose,
        and an Okamoto-Uchiyama decryption of a chosen ciphertext can reveal the key.
    """

    method: str = "quantile"
    n_bins: int = 10
    fine_bins: int = 32
    chi_threshold: float = 3.841
    min_bin_share: float = 0.05
    min_fine_share: float = 0.02
    max_features: int = 256
    iv_threshold: float = 0.02
    top_k: int = 0
    reveal_woe_to_hosts: bool = False
    woe_decimals: int = 1
    scheme: str = "paillier"
    key_bits: int = 2048
    insecure_allow_small_keys: bool = False

    def __post_init__(self) -> None:
        if self.method not in ("quantile", "chimerge"):
            raise ConfigError("method must be 'quantile' or 'chimerge'")
        if self.scheme != "paillier":
            raise ConfigError(
                f"scheme {self.scheme!r} is not allowed: hetero binning and Pearson use Paillier "
                "only (the guest replies with values computed from ciphertexts a host chose, and "
                "an Okamoto-Uchiyama decryption of a chosen ciphertext can reveal the key)"
            )
        if not 2 <= self.n_bins <= 256 or not 2 <= self.fine_bins <= 1000:
            raise ConfigError("n_bins must be in [2, 256] and fine_bins in [2, 1000]")
        if self.iv_threshold < 0 or self.top_k < 0:
            raise ConfigError("iv_threshold and top_k must be >= 0")
        if not 0.01 <= self.min_bin_share < 0.5:
            raise ConfigError("min_bin_share must be in [0.01, 0.5)")
        if not 0.01 <= self.min_fine_share <= self.min_bin_share:
            raise ConfigError("min_fine_share must be in [0.01, min_bin_share]")
        if not 1 <= self.max_features <= 4096:
            raise ConfigError("max_features must be in [1, 4096]")
        if not 0 <= self.woe_decimals <= 3:
            raise ConfigError("woe_decimals must be in [0, 3]")

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

    def min_rows(self, n: int, *, final: bool = False) -> int:
        """Fewest rows a non-empty bin may hold: the final-bin floor (also for the missing
        bin, which is never merged), else the floor of the bins a party declares."""
        share = self.min_bin_share if final or self.method == "quantile" else self.min_fine_share
        return max(1, math.ceil(share * n))

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


@dataclass(frozen=True)
class LocalBins:
    """A party's own binning of one feature: inner ``edges``, the bin index of every row (the
    missing bin is ``edges.size + 1``) and, if its few missing values were counted in a value
    bin, that bin (``missing_into``)."""

    edges: npt.NDArray[np.float64]
    idx: npt.NDArray[np.int64]
    missing_into: int | None

    @property
    def n_bins(self) -> int:
        return int(self.edges.size) + 2


def local_bins(col: npt.NDArray[np.float64], p: BinParams, name: str) -> LocalBins:
    """Equal-frequency fine bins of one column that respect the bin floors of ``p``.

    Adjacent value bins with fewer than :meth:`BinParams.min_rows` rows (ties, empty quantile
    bins) are merged into their smaller neighbour; a missing bin with fewer than the final-bin
    floor is counted in the largest value bin (its rows get that bin's WOE). Local: uses only
    this party's data.
    """
    n = col.size
    edges = quantile_edges(col, p.initial_bins)
    floor = p.min_rows(n)
    counts = np.bincount(apply_bins(col, edges), minlength=edges.size + 2)[:-1].tolist()
    while len(counts) > 1 and min(counts) < floor:
        k = int(np.argmin(counts))
        if k == 0:
            j = 1
        elif k == len(counts) - 1:
            j = k - 1
        else:
            j = k - 1 if counts[k - 1] <= counts[k + 1] else k + 1
        lo = min(k, j)
        counts[lo : lo + 2] = [counts[lo] + counts[lo + 1]]
        edges = np.delete(edges, lo)
    if 0 < counts[0] < floor and len(counts) == 1:
        raise ConfigError(
            f"feature {name!r} has fewer than {floor} non-missing values "
            "(min_bin_share); drop it or impute it"
        )
    idx = apply_bins(col, edges)
    missing = idx == edges.size + 1
    n_missing = int(missing.sum())
    into = None
    if 0 < n_missing < p.min_rows(n, final=True):
        into = int(np.argmax(counts))
        idx[missing] = into
    return LocalBins(edges, idx, into)


def missing_target(groups: list[list[int]], missing_into: int | None) -> int | None:
    """The final bin that holds a feature's missing values if they were counted in a value
    bin (``None``: they have their own bin)."""
    if missing_into is None:
        return None
    return next(g for g, members in enumerate(groups) if missing_into in members)


def final_woe(woe: list[float], groups: list[list[int]], missing_into: int | None) -> list[float]:
    """The WOE table a party applies: if its missing values were counted in a value bin,
    they get that bin's WOE."""
    k = missing_target(groups, missing_into)
    return list(woe) if k is None else [*woe[:-1], woe[k]]


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


def guest_key(wire: object, p: BinParams, guest: str) -> paillier.PublicKey:
    """Load the guest's Paillier key: the agreed ``key_bits`` and a valid modulus proof
    (``gcd(n, φ(n)) = 1``, so a crafted modulus cannot carry host data out in a subgroup the
    masks do not reach); anything else aborts naming the guest before any computation."""
    try:
        return paillier.PublicKey.from_wire(
            wire, insecure_allow_small_keys=p.insecure_allow_small_keys, expect_bits=p.key_bits
        )
    except DecodeError as exc:
        raise ProtocolAbort(f"the key of {guest!r} is refused: {exc}", party=guest) from None


#: Threads for the re-randomisation of a host's reply (both cores of a small node).
REPLY_JOBS = 2


def reply_for_owner(ctx: Context, vec: EncryptedVector) -> dict[str, Any]:
    """Pack ``vec`` and return its wire form re-randomised for the key's owner (the guest).

    The last operation before the reply leaves: every ciphertext is multiplied by a
    **uniform** encryption of zero (``r**n``, ``r`` uniform in ``Z*_n``, from ``ctx.random``).
    The guest chose the randomness of the ciphertexts it sent; with the DJN short-exponent
    randomiser a guest holding a key with smooth ``p - 1`` (or, for parities, any key via
    Legendre symbols mod ``p``) would read from the reply's random part which of its rows
    entered a bin sum, or the host's quantised values in a product (SPEC.md).
    """
    packed: PackedEncryptedVector = vec.pack()
    fresh = packed.obfuscate(rng=paillier.bits_from(ctx.random), n_jobs=REPLY_JOBS, for_owner=True)
    return fresh.to_wire(obfuscate=False)
