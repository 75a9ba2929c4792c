"""What server and clients of the federated histogram GBDT agree on: parameters, the public
sketch grid, the layout of the aggregated vectors, and the checks on an aggregated histogram."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError, InputError, ProtocolAbort
from privfin.fl.horizontal.secagg import Quantizer, SecAggParams
from privfin.ml.trees import MAX_BINS, TreeParams

__all__ = [
    "CLIENT",
    "SERVER",
    "GBDTParams",
    "GBDTStepParams",
    "NodeHist",
    "check_node_hist",
    "data_of",
    "edges_from_sketch",
    "sketch_counts",
    "split_node_hists",
]

SERVER = "server"
CLIENT = "client"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class GBDTParams:
    """Hyper-parameters and protocol options of the federated histogram GBDT (SPEC.md).

    Attributes
    ----------
    n_features:
        Number of feature columns every client holds (same order and meaning).
    n_trees, max_depth, n_bins, learning_rate:
        Boosting rounds, tree depth, bins per feature, shrinkage.
    reg_lambda, min_child_weight, min_samples_leaf, min_split_gain:
        Tree regularisation, as :class:`privfin.ml.trees.TreeParams`.
    sketch_bins:
        Buckets per feature of the public grid of the quantile sketch (uniform in
        ``asinh(x)`` over ``[-asinh(sketch_range), asinh(sketch_range)]``).
    sketch_range:
        Values beyond ``±sketch_range`` fall in the outermost buckets of the sketch.
    aggregation:
        ``"secagg"`` (masking secure aggregation, default) or ``"ckks"`` (additive CKKS
        under a key the clients share and the server does not hold; SPEC.md).
    threshold:
        Secure aggregation's threshold ``t`` (default: a strict majority of the clients).
    round_deadline:
        Seconds the server waits at each step of an aggregation; later clients are dropped.
    client_timeout:
        Seconds a client waits for the server.
    frac_bits:
        Fractional bits of the fixed-point encoding of gradient sums.
    bound:
        Largest value one client contributes to a coordinate (its row count bounds every
        gradient, hessian and count sum): a client with more rows refuses to start.
    max_restarts:
        Trees restarted after dropouts before the job fails.
    """

    n_features: int
    n_trees: int = 5
    max_depth: int = 3
    n_bins: int = 32
    learning_rate: float = 0.3
    reg_lambda: float = 0.1
    min_child_weight: float = 0.0
    min_samples_leaf: int = 1
    min_split_gain: float = 1e-6
    sketch_bins: int = 4096
    sketch_range: float = 1e6
    aggregation: str = "secagg"
    threshold: int | None = None
    round_deadline: float = 60.0
    client_timeout: float = 600.0
    frac_bits: int = 24
    bound: float = 2.0**20
    max_restarts: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.n_features <= 1 << 16:
            raise ConfigError("n_features must be in [1, 65536]")
        if not 1 <= self.n_trees <= 10_000:
            raise ConfigError("n_trees must be in [1, 10000]")
        if not 2 <= self.n_bins <= MAX_BINS:
            raise ConfigError(f"n_bins must be in [2, {MAX_BINS}]")
        if not 0 < self.learning_rate <= 10:
            raise ConfigError("learning_rate must be in (0, 10]")
        if not self.n_bins <= self.sketch_bins <= 1 << 16:
            raise ConfigError("sketch_bins must be in [n_bins, 65536]")
        if not (np.isfinite(self.sketch_range) and self.sketch_range > 0):
            raise ConfigError("sketch_range must be a positive finite number")
        if self.aggregation not in ("secagg", "ckks"):
            raise ConfigError("aggregation must be 'secagg' or 'ckks'")
        if self.round_deadline <= 0 or self.client_timeout <= 0:
            raise ConfigError("deadlines must be positive")
        if self.max_restarts < 0:
            raise ConfigError("max_restarts must be >= 0")
        if self.bound < 1:
            raise ConfigError("bound must be at least 1 (one row)")
        self.tree_params()
        Quantizer(frac_bits=self.frac_bits, bound=self.bound)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> GBDTParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"unknown hfl_gbdt parameters {unknown}; known: {sorted(known)}")
        if "n_features" not in params:
            raise ConfigError("hfl_gbdt needs the agreed parameter 'n_features'")
        try:
            return cls(**dict(params))
        except TypeError as exc:
            raise ConfigError(f"bad hfl_gbdt parameter: {exc}") from None

    def tree_params(self) -> TreeParams:
        return TreeParams(
            max_depth=self.max_depth,
            reg_lambda=self.reg_lambda,
            min_child_weight=self.min_child_weight,
            min_samples_leaf=self.min_samples_leaf,
            min_split_gain=self.min_split_gain,
        )

    @property
    def slots(self) -> int:
        """Histogram slots per feature: ``n_bins`` bins and the missing slot."""
        return self.n_bins + 1

    @property
    def node_dim(self) -> int:
        """Length of one node's histogram vector: gradient, hessian and count per slot."""
        return 3 * self.n_features * self.slots

    @property
    def sketch_dim(self) -> int:
        """Length of the sketch vector: counts per bucket and feature, rows, positives."""
        return self.n_features * self.sketch_bins + 2

    def secagg(self, n_clients: int, dim: int) -> SecAggParams:
        t = self.threshold if self.threshold is not None else n_clients // 2 + 1
        return SecAggParams(
            dim=dim,
            threshold=t,
            quantizer=Quantizer(frac_bits=self.frac_bits, bound=self.bound),
            stage_timeout=self.round_deadline,
            client_timeout=self.client_timeout,
        )


@dataclass(frozen=True)
class GBDTStepParams(GBDTParams):
    """:class:`GBDTParams` of the pipeline step ``hfl_gbdt``: ``n_features`` is left out (the
    step takes it from the clients' tables, after checking that every client has the same
    feature columns).

    Attributes
    ----------
    n_features:
        Set by the step from the clients' tables (leave it out).
    n_trees, max_depth, n_bins, learning_rate:
        Boosting rounds, tree depth, bins per feature, shrinkage.
    reg_lambda, min_child_weight, min_samples_leaf, min_split_gain:
        Tree regularisation, as :class:`privfin.ml.trees.TreeParams`.
    sketch_bins:
        Buckets per feature of the public grid of the quantile sketch.
    sketch_range:
        Values beyond ``±sketch_range`` fall in the outermost buckets of the sketch.
    aggregation:
        ``"secagg"`` (masking secure aggregation) or ``"ckks"`` (a key the clients share).
    threshold:
        Secure aggregation's threshold (default: a strict majority of the clients).
    round_deadline:
        Seconds the server waits at each step of an aggregation.
    client_timeout:
        Seconds a client waits for the server.
    frac_bits:
        Fractional bits of the fixed-point encoding of gradient sums.
    bound:
        Largest value one client contributes to a coordinate (at least its row count).
    max_restarts:
        Trees restarted after dropouts before the job fails.
    """

    n_features: int = 1

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> GBDTParams:
        return GBDTParams.from_mapping({"n_features": 1, **params})


def data_of(inputs: Mapping[str, Any], n_features: int) -> tuple[FloatArray, FloatArray]:
    """A client's ``X`` (NaN = missing) and 0/1 labels ``y``."""
    if "X" not in inputs or "y" not in inputs:
        raise InputError("an hfl_gbdt client needs the inputs 'X' and 'y'")
    x = np.asarray(inputs["X"], dtype=np.float64)
    y = np.asarray(inputs["y"], dtype=np.float64).ravel()
    if x.ndim != 2 or x.shape[1] != n_features:
        raise InputError(f"X must have {n_features} columns (the agreed n_features), got {x.shape}")
    if len(y) != len(x) or len(y) == 0:
        raise InputError("X and y need the same, non-zero number of rows")
    if np.any(np.isinf(x)) or not np.all((y == 0) | (y == 1)):
        raise InputError("X must be finite or NaN (missing) and y 0/1")
    return x, y


# ------------------------------------------------------------------------------ the sketch


def _grid(p: GBDTParams) -> tuple[float, float]:
    """``(lo, step)`` of the sketch grid in ``asinh`` space."""
    lo = -float(np.arcsinh(p.sketch_range))
    return lo, -2.0 * lo / p.sketch_bins


def sketch_counts(x: FloatArray, y: FloatArray, p: GBDTParams) -> FloatArray:
    """A client's sketch vector: per feature, the number of its non-missing values in each
    bucket of the public grid; then its row count and number of positive labels."""
    lo, step = _grid(p)
    b = p.sketch_bins
    out = np.zeros(p.sketch_dim)
    with np.errstate(invalid="ignore"):
        idx = np.floor((np.arcsinh(x) - lo) / step)
    for j in range(p.n_features):
        col = idx[:, j]
        col = np.clip(col[~np.isnan(col)], 0, b - 1).astype(np.int64)
        out[j * b : (j + 1) * b] = np.bincount(col, minlength=b)
    out[-2], out[-1] = float(len(y)), float(y.sum())
    return out


def edges_from_sketch(total: FloatArray, p: GBDTParams) -> list[FloatArray]:
    """Bin edges per feature from the summed sketch: the upper boundaries of the buckets where
    the pooled cumulative count first reaches ``i / n_bins`` of the feature's values
    (``i = 1..n_bins-1``); with at most ``n_bins`` non-empty buckets, one edge after each
    non-empty bucket but the last. Edges are bucket boundaries, so an edge is off the exact
    pooled quantile by at most one bucket."""
    lo, step = _grid(p)
    b = p.sketch_bins
    out: list[FloatArray] = []
    for j in range(p.n_features):
        counts = np.rint(total[j * b : (j + 1) * b])
        nonempty = np.flatnonzero(counts > 0)
        if nonempty.size <= 1:
            out.append(np.zeros(0))
            continue
        if nonempty.size <= p.n_bins:
            uppers = nonempty[:-1]
        else:
            cum = np.cumsum(counts)
            qs = np.arange(1, p.n_bins) / p.n_bins * cum[-1]
            uppers = np.unique(np.searchsorted(cum, qs, side="left"))
            uppers = uppers[uppers < nonempty[-1]]
        out.append(np.sinh(lo + (uppers + 1) * step).astype(np.float64))
    return out


# ------------------------------------------------------------------------------ histograms


@dataclass
class NodeHist:
    """One node's aggregated histogram: ``g``, ``h`` of shape ``(F, slots, 1)``, ``cnt`` of
    shape ``(F, slots)``."""

    g: FloatArray
    h: FloatArray
    cnt: IntArray

    def totals(self) -> tuple[FloatArray, FloatArray, int]:
        """The node's gradient, hessian and row count (from feature 0: every row is in one
        slot of every feature)."""
        return self.g[0].sum(axis=0), self.h[0].sum(axis=0), int(self.cnt[0].sum())

    def minus(self, other: NodeHist) -> NodeHist:
        return NodeHist(self.g - other.g, self.h - other.h, self.cnt - other.cnt)


def encode_node_hist(g: FloatArray, h: FloatArray, cnt: IntArray) -> FloatArray:
    return np.concatenate([g.reshape(-1), h.reshape(-1), cnt.reshape(-1).astype(np.float64)])


def split_node_hists(total: FloatArray, n_nodes: int, p: GBDTParams) -> list[NodeHist]:
    """Cut an aggregated vector into the histograms of ``n_nodes`` nodes; counts are rounded to
    integers (they are sums of integers, exact in the fixed-point encoding)."""
    f, s = p.n_features, p.slots
    size = f * s
    out = []
    for i in range(n_nodes):
        v = total[i * p.node_dim : (i + 1) * p.node_dim]
        out.append(
            NodeHist(
                g=v[:size].reshape(f, s, 1).copy(),
                h=v[size : 2 * size].reshape(f, s, 1).copy(),
                cnt=np.rint(v[2 * size :]).astype(np.int64).reshape(f, s),
            )
        )
    return out


def check_node_hist(
    hist: NodeHist,
    expect: tuple[FloatArray, FloatArray, int] | None,
    tol: float,
    what: str,
) -> None:
    """Checks an honest sum of clients' histograms passes (SPEC.md, "Deviations"): counts
    non-negative and equal over features (every row is in one slot of every feature), every
    feature's gradient and hessian totals equal, ``|g| <= count`` and ``0 <= h <= count/4``
    per slot (logistic loss), and the node's totals those the parent's split predicted.

    Raises
    ------
    ProtocolAbort
        The sum is not a sum of honest histograms: some client deviated (secure aggregation
        hides which).
    """
    cnt = hist.cnt
    per_feature = cnt.sum(axis=1)
    g_f = hist.g.sum(axis=1)[:, 0]
    h_f = hist.h.sum(axis=1)[:, 0]
    slot_tol = tol * (1 + np.abs(hist.g[..., 0]))
    problems = []
    if np.any(cnt < 0):
        problems.append("negative counts")
    if np.any(per_feature != per_feature[0]):
        problems.append("features hold different numbers of rows")
    ftol = tol * hist.g.shape[1]
    if np.any(np.abs(g_f - g_f[0]) > 2 * ftol) or np.any(np.abs(h_f - h_f[0]) > 2 * ftol):
        problems.append("features have different gradient totals")
    if np.any(np.abs(hist.g[..., 0]) > cnt + slot_tol):
        problems.append("a gradient sum exceeds its row count")
    if np.any(hist.h[..., 0] < -slot_tol) or np.any(hist.h[..., 0] > cnt / 4 + slot_tol):
        problems.append("a hessian sum is outside [0, count/4]")
    if expect is not None:
        eg, eh, ec = expect
        tg, th, tc = hist.totals()
        if tc != ec or np.any(np.abs(tg - eg) > 4 * ftol) or np.any(np.abs(th - eh) > 4 * ftol):
            problems.append("its totals are not those its parent's split predicted")
    if problems:
        raise ProtocolAbort(
            f"the aggregated histogram of {what} is not a sum of honest histograms "
            f"({'; '.join(problems)}): a client deviated"
        )
