"""Typed messages of hetero SecureBoost (wire names ``secureboost.*``).

Guest -> host messages travel under the tag ``cmd`` (one ordered stream of commands); host
replies under ``info``, ``hist``, ``part``, ``route`` and ``done``. Every message checks its
own shapes in ``__post_init__`` (a violation is a :class:`~privfin.errors.DecodeError` at the
receiver); ciphertexts are checked against the key (``0 < c < M``, ``gcd(c, n) = 1``) when the
receiver parses them (:func:`privfin.fl.vertical.secureboost.packing.ciphertexts_from_bytes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.federation.codec import Message, wire_message

__all__ = [
    "BuildHistograms",
    "Finish",
    "Histograms",
    "HostDone",
    "HostInfo",
    "PredictStart",
    "RouteAnswer",
    "RouteQuery",
    "Setup",
    "SplitRequest",
    "SplitResult",
    "TreeStart",
]

#: Largest number of rows, features, trees and depth a message may describe.
MAX_ROWS = 1 << 27
MAX_FEATURES = 1 << 16
MAX_TREES = 1 << 16
MAX_DEPTH = 16


def _check_array(arr: np.ndarray[Any, Any], name: str, dtype: str, ndim: int = 1) -> None:
    if arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D {dtype} array")
    if arr.size > MAX_ROWS:
        raise ValueError(f"{name} is too large")


def _check_nodes(nodes: np.ndarray[Any, Any]) -> None:
    _check_array(nodes, "nodes", "int32")
    if nodes.size and (nodes.min() < 0 or nodes.max() >= 2 ** (MAX_DEPTH + 1)):
        raise ValueError("node ids must lie in [0, 2**17)")
    if np.unique(nodes).size != nodes.size:
        raise ValueError("node ids must be distinct")


def _check_tree_depth(tree: int, depth: int) -> None:
    if not 0 <= tree < MAX_TREES or not 0 <= depth < MAX_DEPTH:
        raise ValueError("tree or depth out of range")


@wire_message("secureboost.Setup")
class Setup(Message, frozen=True, kw_only=True):
    """Guest -> host, once: the guest's public key and the public training parameters."""

    public_key: dict[str, Any]
    scheme: str
    n_rows: int
    n_bins: int
    max_depth: int

    def __post_init__(self) -> None:
        if self.scheme not in ("paillier", "ou"):
            raise ValueError("scheme must be 'paillier' or 'ou'")
        if not 1 <= self.n_rows <= MAX_ROWS:
            raise ValueError("n_rows out of range")
        if not 2 <= self.n_bins <= 255 or not 1 <= self.max_depth <= MAX_DEPTH:
            raise ValueError("n_bins or max_depth out of range")


@wire_message("secureboost.HostInfo")
class HostInfo(Message, frozen=True, kw_only=True):
    """Host -> guest, once: how many (anonymous) features the host contributes, and which bin
    thresholds it sends histograms for: ``thresholds`` is ``np.packbits`` of an
    ``(n_features, n_bins - 1)`` mask (permuted feature order), true where the host's bin is
    non-empty over all rows (a threshold after an empty bin repeats the previous one, so it
    is left out; the guest restores it exactly). Empty: every threshold."""

    n_features: int
    thresholds: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.n_features <= MAX_FEATURES:
            raise ValueError("n_features out of range")
        if len(self.thresholds) > MAX_FEATURES * 32:
            raise ValueError("thresholds mask too large")


@wire_message("secureboost.TreeStart")
class TreeStart(Message, frozen=True, kw_only=True):
    """Guest -> host, per tree: the encrypted packed gradients of the rows used by this tree.

    ``rows`` are the (sorted, distinct) row indices whose gradients are in ``ct`` (all rows,
    or the GOSS sample); ``widths`` the bit widths of the slots of one packed plaintext
    (count, then ``g_k``, ``h_k`` per output); ``ct`` the ciphertexts, fixed-width big-endian.
    """

    tree: int
    rows: np.ndarray
    widths: list[int]
    ct: bytes

    def __post_init__(self) -> None:
        _check_tree_depth(self.tree, 0)
        _check_array(self.rows, "rows", "uint32")
        if self.rows.size and np.any(np.diff(self.rows.astype(np.int64)) <= 0):
            raise ValueError("rows must be strictly increasing")
        if not 3 <= len(self.widths) <= 1 + 2 * 1024 or len(self.widths) % 2 == 0:
            raise ValueError("widths must list the count slot and one (g, h) pair per output")
        if any(not 1 <= w <= 4096 for w in self.widths):
            raise ValueError("slot widths must lie in [1, 4096]")
        if self.rows.size == 0 or len(self.ct) % self.rows.size:
            raise ValueError("ct must hold one fixed-width ciphertext per row")


@wire_message("secureboost.BuildHistograms")
class BuildHistograms(Message, frozen=True, kw_only=True):
    """Guest -> host, per level: the node of every row (``-1``: in no node being split) and the
    nodes (heap numbering: children of ``i`` are ``2i+1``, ``2i+2``) whose histograms to
    return. This reveals the instance space of every node to the host (SPEC.md)."""

    tree: int
    depth: int
    node_of_row: np.ndarray
    nodes: np.ndarray

    def __post_init__(self) -> None:
        _check_tree_depth(self.tree, self.depth)
        _check_array(self.node_of_row, "node_of_row", "int32")
        _check_nodes(self.nodes)
        if self.node_of_row.size and self.node_of_row.min() < -1:
            raise ValueError("node_of_row entries must be >= -1")


@wire_message("secureboost.Histograms")
class Histograms(Message, frozen=True, kw_only=True):
    """Host -> guest: per requested node, the cumulative encrypted (g, h, count) sums of every
    (permuted) feature and bin threshold plus the missing-value slot, packed ``per_ct`` bins
    per ciphertext and re-randomised. ``ct`` holds ``len(nodes) * cts_per_node`` ciphertexts."""

    tree: int
    depth: int
    nodes: np.ndarray
    per_ct: int
    cts_per_node: int
    ct: bytes

    def __post_init__(self) -> None:
        _check_tree_depth(self.tree, self.depth)
        _check_nodes(self.nodes)
        if not 1 <= self.per_ct <= 4096 or not 0 <= self.cts_per_node <= MAX_ROWS:
            raise ValueError("per_ct or cts_per_node out of range")
        total = self.nodes.size * self.cts_per_node
        if (total == 0) != (len(self.ct) == 0) or (total and len(self.ct) % total):
            raise ValueError("ct does not hold len(nodes) * cts_per_node ciphertexts")


@wire_message("secureboost.SplitRequest")
class SplitRequest(Message, frozen=True, kw_only=True):
    """Guest -> host: split these nodes on the host's (permuted) feature ``features[i]`` at bin
    threshold ``bins[i]``; missing values go left where ``missing_left[i]``. ``gains`` (for the
    host's own feature importance) are zero unless the parties opted in to sharing them
    (``share_gains_with_hosts``): they derive from decrypted histograms (SPEC.md)."""

    tree: int
    depth: int
    nodes: np.ndarray
    features: np.ndarray
    bins: np.ndarray
    missing_left: np.ndarray
    gains: np.ndarray

    def __post_init__(self) -> None:
        _check_tree_depth(self.tree, self.depth)
        _check_nodes(self.nodes)
        _check_array(self.features, "features", "int32")
        _check_array(self.bins, "bins", "int32")
        _check_array(self.missing_left, "missing_left", "bool")
        _check_array(self.gains, "gains", "float64")
        n = self.nodes.size
        if not (self.features.size == self.bins.size == self.missing_left.size == n):
            raise ValueError("split arrays must have one entry per node")
        if self.gains.size != n or not np.all(np.isfinite(self.gains)):
            raise ValueError("gains must be finite, one per node")
        if n and (self.features.min() < 0 or self.bins.min() < 0 or self.bins.max() > 254):
            raise ValueError("feature or bin index out of range")


@wire_message("secureboost.SplitResult")
class SplitResult(Message, frozen=True, kw_only=True):
    """Host -> guest: ``np.packbits`` of a bool per training row: goes left (meaningful only
    for the rows of the nodes the host split)."""

    tree: int
    depth: int
    left: np.ndarray

    def __post_init__(self) -> None:
        _check_tree_depth(self.tree, self.depth)
        _check_array(self.left, "left", "uint8")


@wire_message("secureboost.Finish")
class Finish(Message, frozen=True, kw_only=True):
    """Guest -> host: training (or prediction) is over."""

    n_trees: int

    def __post_init__(self) -> None:
        if not 0 <= self.n_trees < MAX_TREES:
            raise ValueError("n_trees out of range")


@wire_message("secureboost.HostDone")
class HostDone(Message, frozen=True, kw_only=True):
    """Host -> guest: acknowledgement of :class:`Finish` (the host stored its model)."""

    n_splits: int


@wire_message("secureboost.RouteQuery")
class RouteQuery(Message, frozen=True, kw_only=True):
    """Guest -> host, prediction: for each query ``i``, does row ``rows[i]`` go left at the
    host's node ``nodes[i]`` of tree ``trees[i]``? Reveals to the host which rows reach which
    of its nodes."""

    trees: np.ndarray
    nodes: np.ndarray
    rows: np.ndarray

    def __post_init__(self) -> None:
        _check_array(self.trees, "trees", "int32")
        _check_array(self.nodes, "nodes", "int32")
        _check_array(self.rows, "rows", "uint32")
        if not self.trees.size == self.nodes.size == self.rows.size:
            raise ValueError("trees, nodes and rows must have the same length")


@wire_message("secureboost.RouteAnswer")
class RouteAnswer(Message, frozen=True, kw_only=True):
    """Host -> guest: ``np.packbits`` of one bool (goes left) per query."""

    left: np.ndarray
    count: int

    def __post_init__(self) -> None:
        _check_array(self.left, "left", "uint8")
        if self.left.size != (self.count + 7) // 8:
            raise ValueError("left must hold count bits")


@wire_message("secureboost.PredictStart")
class PredictStart(Message, frozen=True, kw_only=True):
    """Guest -> host: a joint prediction over ``n_rows`` aligned rows begins."""

    n_rows: int
    n_trees: int

    def __post_init__(self) -> None:
        if not 1 <= self.n_rows <= MAX_ROWS or not 0 <= self.n_trees < MAX_TREES:
            raise ValueError("n_rows or n_trees out of range")
