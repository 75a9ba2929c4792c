"""Plaintext histogram gradient-boosting core: binning, histograms, split search, leaf weights.

This is the arithmetic that every party-local part of a tree protocol shares (the guest of
hetero SecureBoost runs it on its own features and on the decrypted histograms of the hosts),
and the plaintext reference the federated protocols are tested against.

Conventions
-----------
- A feature is cut into at most ``n_bins`` bins by quantile edges; ``bin(x)`` is the number of
  edges ``<= x``; missing values (NaN) go to the extra slot ``n_bins``. A histogram therefore has
  ``n_bins + 1`` slots per feature.
- A split ``(feature, t)`` sends bins ``<= t`` left, i.e. ``x < edges[t]``; missing values go to
  the learned default direction.
- Trees have ``K`` outputs (``K = 1`` for binary logistic and squared error, ``K = n_classes``
  for softmax: one multi-output tree per round with a weight vector per leaf). Gradients and
  hessians are arrays of shape ``(n, K)``.
- Gain of a split: ``0.5 * (S(L) + S(R) - S(P)) - min_split_gain`` with
  ``S(G, H) = sum_k G_k**2 / (H_k + reg_lambda)``; leaf weight ``-G_k / (H_k + reg_lambda)``.

Security property: none by itself; this module computes on plaintext and is only ever given data
its caller may see (its own rows, or aggregates the protocol reveals to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError

__all__ = [
    "MAX_BINS",
    "Objective",
    "PlainGBDT",
    "SplitCandidate",
    "TreeParams",
    "apply_bins",
    "best_split",
    "histogram",
    "leaf_weight",
    "make_objective",
    "quantile_edges",
]

#: Bins per feature are stored as uint8 with the missing slot at ``n_bins``.
MAX_BINS = 255

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TreeParams:
    """Regularisation and shape of one tree.

    Parameters
    ----------
    max_depth:
        Depth of the tree (a depth-3 tree has at most 8 leaves).
    reg_lambda:
        L2 regularisation of leaf weights (``lambda`` of XGBoost).
    min_child_weight:
        Smallest hessian sum (over outputs) a child may have.
    min_samples_leaf:
        Smallest number of samples a child may have.
    min_split_gain:
        Smallest gain for a split to be made (``gamma``).
    """

    max_depth: int = 3
    reg_lambda: float = 0.1
    min_child_weight: float = 0.0
    min_samples_leaf: int = 1
    min_split_gain: float = 1e-6

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= 16:
            raise ConfigError(f"max_depth must be in [1, 16], got {self.max_depth}")
        if self.reg_lambda < 0 or self.min_child_weight < 0 or self.min_split_gain < 0:
            raise ConfigError("reg_lambda, min_child_weight and min_split_gain must be >= 0")
        if self.min_samples_leaf < 1:
            raise ConfigError("min_samples_leaf must be at least 1")


# ------------------------------------------------------------------------------------ binning


def quantile_edges(x: npt.ArrayLike, n_bins: int) -> FloatArray:
    """Split points of one feature: at most ``n_bins - 1`` increasing edges.

    With at most ``n_bins`` distinct values the edges are the midpoints between them (every
    value its own bin); otherwise the ``i / n_bins`` quantiles of the non-missing values.
    """
    if not 2 <= n_bins <= MAX_BINS:
        raise ConfigError(f"n_bins must be in [2, {MAX_BINS}], got {n_bins}")
    arr = np.asarray(x, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return np.zeros(0, dtype=np.float64)
    uniq = np.unique(arr)
    if uniq.size <= n_bins:
        return np.asarray((uniq[:-1] + uniq[1:]) / 2.0, dtype=np.float64)
    qs = np.quantile(arr, np.arange(1, n_bins) / n_bins, method="midpoint")
    edges = np.unique(qs)
    # An edge equal to the minimum would leave bin 0 empty; drop it.
    return np.asarray(edges[edges > uniq[0]], dtype=np.float64)


def apply_bins(X: npt.ArrayLike, edges: list[FloatArray], n_bins: int) -> npt.NDArray[np.uint8]:
    """Bin a matrix column by column; NaN goes to slot ``n_bins``."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(edges):
        raise ConfigError(f"expected a 2-D matrix with {len(edges)} columns, got {arr.shape}")
    out = np.empty(arr.shape, dtype=np.uint8)
    for j, e in enumerate(edges):
        col = arr[:, j]
        b = np.searchsorted(e, col, side="right")
        b[np.isnan(col)] = n_bins
        out[:, j] = b
    return out


def fit_bins(X: npt.ArrayLike, n_bins: int) -> tuple[list[FloatArray], npt.NDArray[np.uint8]]:
    """Quantile edges of every column and the binned matrix."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ConfigError(f"expected a 2-D feature matrix, got shape {arr.shape}")
    edges = [quantile_edges(arr[:, j], n_bins) for j in range(arr.shape[1])]
    return edges, apply_bins(arr, edges, n_bins)


# --------------------------------------------------------------------------------- histograms


def histogram(
    bins: npt.NDArray[np.uint8], g: FloatArray, h: FloatArray, rows: IntArray, n_bins: int
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Per-feature, per-slot sums of ``g``, ``h`` (shape ``(F, n_bins + 1, K)``) and counts
    (shape ``(F, n_bins + 1)``) over ``rows``."""
    n_feat = bins.shape[1]
    slots = n_bins + 1
    k = g.shape[1]
    sub = bins[rows].astype(np.int64)
    idx = (sub + np.arange(n_feat, dtype=np.int64) * slots).reshape(-1)
    size = n_feat * slots
    hg = np.empty((n_feat, slots, k))
    hh = np.empty((n_feat, slots, k))
    for c in range(k):
        hg[:, :, c] = np.bincount(idx, np.repeat(g[rows, c], n_feat), size).reshape(n_feat, slots)
        hh[:, :, c] = np.bincount(idx, np.repeat(h[rows, c], n_feat), size).reshape(n_feat, slots)
    cnt = np.bincount(idx, minlength=size).reshape(n_feat, slots).astype(np.int64)
    return hg, hh, cnt


def _score(g: FloatArray, h: FloatArray, lam: float) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(h + lam > 0, g * g / (h + lam), 0.0)
    return np.asarray(s.sum(axis=-1), dtype=np.float64)


@dataclass(frozen=True)
class SplitCandidate:
    """The best split of one node over one party's histogram.

    ``left_g``/``left_h``/``left_count`` describe the left child (missing values included when
    ``missing_left``).
    """

    gain: float
    feature: int
    bin: int
    missing_left: bool
    left_g: FloatArray
    left_h: FloatArray
    left_count: int


def best_split(
    hg: FloatArray,
    hh: FloatArray,
    cnt: IntArray,
    total_g: FloatArray,
    total_h: FloatArray,
    total_count: int,
    params: TreeParams,
    *,
    cumulative: bool = False,
) -> SplitCandidate | None:
    """Best split over a histogram, trying missing values on both sides.

    Parameters
    ----------
    hg, hh, cnt:
        Per-slot sums (``(F, n_bins + 1, K)`` and ``(F, n_bins + 1)``) with the missing slot
        last; or, with ``cumulative=True``, cumulative sums over bins ``0..t`` at index ``t``
        for ``t < n_bins`` (the last non-missing index may be anything: it is not used) and
        the missing slot last.
    total_g, total_h, total_count:
        Sums over the node (``(K,)``).

    Returns
    -------
    SplitCandidate or None
        ``None`` if no split satisfies the constraints with a positive gain.
    """
    n_feat, slots = cnt.shape
    n_bins = slots - 1
    if n_feat == 0 or n_bins < 2:
        return None
    if cumulative:
        cg, ch, cc = hg[:, : n_bins - 1], hh[:, : n_bins - 1], cnt[:, : n_bins - 1]
    else:
        cg = np.cumsum(hg[:, : n_bins - 1], axis=1)
        ch = np.cumsum(hh[:, : n_bins - 1], axis=1)
        cc = np.cumsum(cnt[:, : n_bins - 1], axis=1)
    mg, mh, mc = hg[:, n_bins:], hh[:, n_bins:], cnt[:, n_bins:]
    lam = params.reg_lambda
    parent = float(_score(total_g[None, :], total_h[None, :], lam)[0])
    best: tuple[float, int, int, bool] | None = None
    for missing_left in (False, True):
        lg = cg + mg if missing_left else cg
        lh = ch + mh if missing_left else ch
        lc = cc + mc if missing_left else cc
        rg, rh, rc = total_g - lg, total_h - lh, total_count - lc
        gain = 0.5 * (_score(lg, lh, lam) + _score(rg, rh, lam) - parent) - params.min_split_gain
        ok = (
            (lc >= params.min_samples_leaf)
            & (rc >= params.min_samples_leaf)
            & (lh.sum(axis=-1) >= params.min_child_weight)
            & (rh.sum(axis=-1) >= params.min_child_weight)
        )
        if missing_left:
            # Without missing values in the node the two options coincide: keep the first.
            ok &= mc > 0
        gain = np.where(ok, gain, -np.inf)
        flat = int(np.argmax(gain))
        value = float(gain.reshape(-1)[flat])
        if value > 0 and (best is None or value > best[0]):
            f, t = divmod(flat, n_bins - 1)
            best = (value, f, t, missing_left)
    if best is None:
        return None
    value, f, t, missing_left = best
    lg_v = cg[f, t] + (mg[f, 0] if missing_left else 0.0)
    lh_v = ch[f, t] + (mh[f, 0] if missing_left else 0.0)
    lc_v = int(cc[f, t] + (mc[f, 0] if missing_left else 0))
    if not missing_left and int(mc[f, 0]) == 0:
        # No missing value seen in this node: send future ones to the larger child.
        missing_left = lc_v >= total_count - lc_v
    return SplitCandidate(
        gain=value,
        feature=f,
        bin=t,
        missing_left=missing_left,
        left_g=np.asarray(lg_v, dtype=np.float64).reshape(-1),
        left_h=np.asarray(lh_v, dtype=np.float64).reshape(-1),
        left_count=lc_v,
    )


def leaf_weight(g_sum: FloatArray, h_sum: FloatArray, reg_lambda: float) -> FloatArray:
    """Newton leaf weight ``-G / (H + lambda)`` per output (0 where the denominator is 0)."""
    den = h_sum + reg_lambda
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(den > 0, -g_sum / den, 0.0), dtype=np.float64)


# --------------------------------------------------------------------------------- objectives


class Objective:
    """Loss of a boosting model: initial score, gradients/hessians, output transform."""

    name = ""

    def __init__(self, n_outputs: int) -> None:
        self.n_outputs = n_outputs

    def check_labels(self, y: npt.ArrayLike) -> FloatArray:
        """Validate labels; returns them as float64."""
        arr = np.asarray(y, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(arr)):
            raise ConfigError("labels must be finite numbers")
        return arr

    def init_score(self, y: FloatArray) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]:
        raise NotImplementedError  # pragma: no cover - abstract

    def transform(self, raw: FloatArray) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient_bounds(self) -> tuple[float, float, float, float] | None:
        """Public bounds ``(g_min, g_max, h_min, h_max)`` of one sample's gradient and hessian,
        or ``None`` if they depend on the data (the caller then measures them)."""
        return None


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -500, 500))), dtype=np.float64)


class _Logistic(Objective):
    name = "binary"

    def check_labels(self, y: npt.ArrayLike) -> FloatArray:
        arr = super().check_labels(y)
        if not np.all((arr == 0) | (arr == 1)):
            raise ConfigError("binary objective needs labels 0/1")
        return arr

    def init_score(self, y: FloatArray) -> FloatArray:
        p = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return np.array([np.log(p / (1 - p))])

    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]:
        p = _sigmoid(raw[:, 0])
        return (p - y)[:, None], (p * (1 - p))[:, None]

    def transform(self, raw: FloatArray) -> FloatArray:
        p = _sigmoid(raw[:, 0])
        return np.stack([1 - p, p], axis=1)

    def gradient_bounds(self) -> tuple[float, float, float, float]:
        return (-1.0, 1.0, 0.0, 0.25)


class _Softmax(Objective):
    name = "multiclass"

    def check_labels(self, y: npt.ArrayLike) -> FloatArray:
        arr = super().check_labels(y)
        ok = (arr == np.round(arr)) & (arr >= 0) & (arr < self.n_outputs)
        if not np.all(ok):
            raise ConfigError(f"multiclass objective needs labels 0..{self.n_outputs - 1}")
        return arr

    def init_score(self, y: FloatArray) -> FloatArray:
        counts = np.bincount(y.astype(np.int64), minlength=self.n_outputs).astype(np.float64)
        prior = np.clip(counts / counts.sum(), 1e-6, None)
        logp = np.log(prior)
        return np.asarray(logp - logp.mean(), dtype=np.float64)

    def _proba(self, raw: FloatArray) -> FloatArray:
        z = raw - raw.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)

    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]:
        p = self._proba(raw)
        onehot = np.eye(self.n_outputs)[y.astype(np.int64)]
        return p - onehot, p * (1 - p)

    def transform(self, raw: FloatArray) -> FloatArray:
        return self._proba(raw)

    def gradient_bounds(self) -> tuple[float, float, float, float]:
        return (-1.0, 1.0, 0.0, 0.25)


class _Squared(Objective):
    name = "regression"

    def init_score(self, y: FloatArray) -> FloatArray:
        return np.array([float(y.mean())])

    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]:
        return (raw[:, 0] - y)[:, None], np.ones((len(y), 1))

    def transform(self, raw: FloatArray) -> FloatArray:
        return np.asarray(raw[:, 0], dtype=np.float64)


def make_objective(name: str, n_classes: int | None = None) -> Objective:
    """``"binary"`` (logistic), ``"multiclass"`` (softmax, ``n_classes >= 2``) or
    ``"regression"`` (squared error)."""
    if name == "binary":
        return _Logistic(1)
    if name == "multiclass":
        if n_classes is None or n_classes < 2:
            raise ConfigError("the multiclass objective needs n_classes >= 2")
        return _Softmax(int(n_classes))
    if name == "regression":
        return _Squared(1)
    raise ConfigError(f"objective must be 'binary', 'multiclass' or 'regression', got {name!r}")


# --------------------------------------------------------------------------- plaintext model


@dataclass
class _Node:
    feature: int = -1
    bin: int = -1
    missing_left: bool = False
    left: int = -1
    right: int = -1
    weight: FloatArray | None = None


class PlainGBDT:
    """Plaintext histogram GBDT on pooled data: the reference the federated protocol matches.

    Parameters mirror :class:`~privfin.fl.vertical.secureboost.HeteroSecureBoost`. Learned
    attributes: ``edges_``, ``init_``, ``trees_``.
    """

    def __init__(
        self,
        *,
        n_trees: int = 5,
        learning_rate: float = 0.3,
        n_bins: int = 32,
        objective: str = "binary",
        n_classes: int | None = None,
        tree: TreeParams | None = None,
    ) -> None:
        self.n_trees = n_trees
        self.learning_rate = learning_rate
        self.n_bins = n_bins
        self.objective = objective
        self.n_classes = n_classes
        self.tree = tree or TreeParams()

    def fit(
        self, X: npt.ArrayLike, y: npt.ArrayLike, *, edges: list[FloatArray] | None = None
    ) -> PlainGBDT:
        """Train on ``X``, ``y``; ``edges``: given bin edges per feature (default: the quantile
        edges of ``X``)."""
        obj = make_objective(self.objective, self.n_classes)
        labels = obj.check_labels(y)
        if edges is None:
            self.edges_, bins = fit_bins(X, self.n_bins)
        else:
            self.edges_ = [np.asarray(e, dtype=np.float64) for e in edges]
            bins = apply_bins(X, self.edges_, self.n_bins)
        self.init_ = obj.init_score(labels)
        raw = np.tile(self.init_, (len(labels), 1))
        self.trees_: list[list[_Node]] = []
        for _ in range(self.n_trees):
            g, h = obj.grad_hess(labels, raw)
            nodes, leaf_of = self._grow(bins, g, h)
            for node_id, rows in leaf_of.items():
                w = nodes[node_id].weight
                if w is not None:
                    raw[rows] += w
            self.trees_.append(nodes)
        self._obj = obj
        return self

    def _grow(
        self, bins: npt.NDArray[np.uint8], g: FloatArray, h: FloatArray
    ) -> tuple[list[_Node], dict[int, IntArray]]:
        p = self.tree
        nodes = [_Node()]
        frontier = {0: np.arange(len(g), dtype=np.int64)}
        leaves: dict[int, IntArray] = {}
        for _depth in range(p.max_depth):
            nxt: dict[int, IntArray] = {}
            for node_id, rows in frontier.items():
                tg, th = g[rows].sum(axis=0), h[rows].sum(axis=0)
                hg, hh, cnt = histogram(bins, g, h, rows, self.n_bins)
                cand = best_split(hg, hh, cnt, tg, th, len(rows), p)
                if cand is None:
                    leaves[node_id] = rows
                    continue
                col = bins[rows, cand.feature]
                go_left = np.where(col == self.n_bins, cand.missing_left, col <= cand.bin)
                node = nodes[node_id]
                node.feature, node.bin, node.missing_left = (
                    cand.feature,
                    cand.bin,
                    cand.missing_left,
                )
                node.left, node.right = len(nodes), len(nodes) + 1
                nodes += [_Node(), _Node()]
                nxt[node.left], nxt[node.right] = rows[go_left], rows[~go_left]
            frontier = nxt
        leaves.update(frontier)
        for node_id, rows in leaves.items():
            w = leaf_weight(g[rows].sum(axis=0), h[rows].sum(axis=0), p.reg_lambda)
            nodes[node_id].weight = w * self.learning_rate
        return nodes, leaves

    @classmethod
    def from_trees(
        cls,
        edges: list[FloatArray],
        init: FloatArray,
        trees: list[dict[int, tuple[int, int, bool] | FloatArray]],
        *,
        n_bins: int,
        learning_rate: float,
        objective: str = "binary",
        n_classes: int | None = None,
        tree: TreeParams | None = None,
    ) -> PlainGBDT:
        """A model from trees grown elsewhere (a federated protocol), in heap numbering
        (children of ``i``: ``2i+1``, ``2i+2``): each node is ``(feature, bin, missing_left)``
        (a split) or its leaf weights (already multiplied by the learning rate)."""
        model = cls(
            n_trees=len(trees),
            learning_rate=learning_rate,
            n_bins=n_bins,
            objective=objective,
            n_classes=n_classes,
            tree=tree,
        )
        model.edges_ = [np.asarray(e, dtype=np.float64) for e in edges]
        model.init_ = np.asarray(init, dtype=np.float64)
        model.trees_ = []
        for heap in trees:
            nodes = [_Node()]
            todo = [(0, 0)]  # (heap id, list index)
            while todo:
                hid, at = todo.pop()
                if hid not in heap:
                    raise ConfigError(f"tree node {hid} is missing")
                spec = heap[hid]
                if isinstance(spec, tuple):
                    f, b, ml = spec
                    nodes[at].feature, nodes[at].bin, nodes[at].missing_left = f, b, ml
                    nodes[at].left, nodes[at].right = len(nodes), len(nodes) + 1
                    nodes += [_Node(), _Node()]
                    todo += [(2 * hid + 1, nodes[at].left), (2 * hid + 2, nodes[at].right)]
                else:
                    nodes[at].weight = np.asarray(spec, dtype=np.float64).reshape(-1)
            model.trees_.append(nodes)
        model._obj = make_objective(objective, n_classes)
        return model

    def decision_function(self, X: npt.ArrayLike) -> FloatArray:
        """Raw scores, shape ``(n, K)``."""
        bins = apply_bins(X, self.edges_, self.n_bins)
        raw = np.tile(self.init_, (bins.shape[0], 1))
        for nodes in self.trees_:
            at = np.zeros(bins.shape[0], dtype=np.int64)
            for _ in range(self.tree.max_depth):
                feat = np.array([n.feature for n in nodes])[at]
                inner = feat >= 0
                if not inner.any():
                    break
                rows = np.flatnonzero(inner)
                b = bins[rows, feat[rows]]
                thr = np.array([n.bin for n in nodes])[at[rows]]
                ml = np.array([n.missing_left for n in nodes])[at[rows]]
                left = np.where(b == self.n_bins, ml, b <= thr)
                lc = np.array([n.left for n in nodes])[at[rows]]
                rc = np.array([n.right for n in nodes])[at[rows]]
                at[rows] = np.where(left, lc, rc)
            k = len(self.init_)
            weights = np.stack([n.weight if n.weight is not None else np.zeros(k) for n in nodes])
            raw += weights[at]
        return raw

    def predict_proba(self, X: npt.ArrayLike) -> Any:
        """Class probabilities (classification) or predictions (regression)."""
        return self._obj.transform(self.decision_function(X))
