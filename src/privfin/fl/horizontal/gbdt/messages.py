"""Typed messages of the federated histogram GBDT (wire names ``hfl.gbdt.*``; tag
``hgb.cmd``, server -> client). Histograms themselves travel through secure aggregation
(tags ``hgb.<seq>.*``). Every message checks its sizes, types and ranges when decoded."""

from __future__ import annotations

import numpy as np

from privfin.federation.codec import Message, wire_message

__all__ = ["MAX_NODES", "GBFinish", "GBLevel", "GBSetup", "GBTree"]

#: Most nodes of one tree (depth 16).
MAX_NODES = 1 << 17
#: Most edges in a setup message (features x bins).
MAX_EDGES = 1 << 24


def _check_int(v: int, hi: int, what: str) -> None:
    if not 0 <= v < hi:
        raise ValueError(f"{what} out of range")


def _check_splits(splits: np.ndarray) -> None:
    if splits.dtype != np.int64 or splits.ndim != 2 or splits.shape[1] != 4:
        raise ValueError("splits must be an int64 array of rows [node, feature, bin, missing_left]")
    if splits.shape[0] > MAX_NODES:
        raise ValueError("too many splits")
    if splits.size and (
        np.any(splits[:, :3] < 0)
        or np.any(splits[:, 0] >= MAX_NODES)
        or np.any(splits[:, 2] > 255)
        or np.any((splits[:, 3] != 0) & (splits[:, 3] != 1))
    ):
        raise ValueError("a split is out of range")


def _check_nodes(nodes: np.ndarray, what: str) -> None:
    if nodes.dtype != np.int64 or nodes.ndim != 1 or nodes.size > MAX_NODES:
        raise ValueError(f"{what} must be a 1-d int64 array")
    if nodes.size and (np.any(nodes < 0) or np.any(nodes >= MAX_NODES)):
        raise ValueError(f"{what}: a node id is out of range")
    if np.unique(nodes).size != nodes.size:
        raise ValueError(f"{what}: repeated node")


@wire_message("hfl.gbdt.Setup")
class GBSetup(Message, frozen=True, kw_only=True):
    """Server -> active clients after the sketch: the agreed bin edges (all features
    concatenated, ``counts[j]`` of feature ``j``) and the initial score (log-odds of the
    pooled positive rate)."""

    edges: np.ndarray
    counts: np.ndarray
    init: float

    def __post_init__(self) -> None:
        if self.edges.dtype != np.float64 or self.edges.ndim != 1 or self.edges.size > MAX_EDGES:
            raise ValueError("edges must be a 1-d float64 array")
        if self.counts.dtype != np.int64 or self.counts.ndim != 1:
            raise ValueError("counts must be a 1-d int64 array")
        if np.any(self.counts < 0) or int(self.counts.sum()) != self.edges.size:
            raise ValueError("edge counts do not add up")
        if not np.all(np.isfinite(self.edges)) or not np.isfinite(self.init):
            raise ValueError("edges and init must be finite")


@wire_message("hfl.gbdt.Level")
class GBLevel(Message, frozen=True, kw_only=True):
    """Server -> active clients: route the rows of the previous level by ``splits`` (rows
    ``[node, feature, bin, missing_left]``), then send the histograms of the nodes ``build``
    (in this order) through aggregation round ``seq``. ``depth == 0`` starts (or restarts)
    tree ``tree`` from the current model's gradients."""

    seq: int
    tree: int
    depth: int
    splits: np.ndarray
    build: np.ndarray

    def __post_init__(self) -> None:
        _check_int(self.seq, 2**31, "seq")
        _check_int(self.tree, 10_000, "tree")
        _check_int(self.depth, 16, "depth")
        _check_splits(self.splits)
        _check_nodes(self.build, "build")
        if self.build.size == 0:
            raise ValueError("a level builds at least one node")


@wire_message("hfl.gbdt.Tree")
class GBTree(Message, frozen=True, kw_only=True):
    """Server -> active clients: tree ``tree`` is final: its splits and its leaves with their
    weights (learning rate applied)."""

    tree: int
    splits: np.ndarray
    leaves: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        _check_int(self.tree, 10_000, "tree")
        _check_splits(self.splits)
        _check_nodes(self.leaves, "leaves")
        if self.weights.dtype != np.float64 or self.weights.shape != (self.leaves.size,):
            raise ValueError("one float64 weight per leaf")
        if not np.all(np.isfinite(self.weights)):
            raise ValueError("leaf weights must be finite")


@wire_message("hfl.gbdt.Finish")
class GBFinish(Message, frozen=True, kw_only=True):
    """Server -> client: training is over for this client: ``done`` (every tree sent) or not
    (it was dropped, or the job failed: ``reason``)."""

    done: bool
    reason: str = ""

    def __post_init__(self) -> None:
        if len(self.reason) > 2000:
            raise ValueError("reason too long")
