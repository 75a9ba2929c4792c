"""The client role of the federated histogram GBDT: sketch, gradient histograms, routing."""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.errors import InputError, ProtocolAbort
from privfin.fl.horizontal.aggregation import ClientAggregation
from privfin.fl.horizontal.gbdt.common import (
    CLIENT,
    FloatArray,
    GBDTParams,
    encode_node_hist,
    sketch_counts,
)
from privfin.fl.horizontal.gbdt.messages import GBFinish, GBLevel, GBSetup, GBTree
from privfin.fl.horizontal.gbdt.model import FedGBDTModel, Heap
from privfin.ml.trees import apply_bins, histogram, make_objective
from privfin.runtime import Context

__all__ = ["GBClient", "run_client"]

CMD = "hgb.cmd"


class GBClient:
    """One bank's side. What leaves it: its sketch vector and, per tree level, the gradient /
    hessian / count histograms of the requested nodes, both only inside secure aggregation
    (the server learns their sums over the active clients). Nothing else about its rows.

    It checks every command: the tree and depth follow on, splits name open nodes and valid
    features and bins, requested nodes are children of this level's splits (so the server
    can only ask for histograms a pooled GBDT would compute).
    """

    def __init__(
        self, ctx: Context, p: GBDTParams, server: str, n_clients: int, x: FloatArray, y: FloatArray
    ) -> None:
        if len(y) > p.bound:
            raise InputError(
                f"{len(y)} rows exceed the agreed bound {p.bound:g} of one client's sums: "
                "raise 'bound'"
            )
        self.ctx, self.p, self.server = ctx, p, server
        self.n_clients = n_clients
        self.x, self.y = x, y
        self.obj = make_objective("binary")
        self.model: FedGBDTModel | None = None
        self.bins: np.ndarray | None = None
        self.raw = np.zeros(len(y))
        self.g = np.zeros((len(y), 1))
        self.h = np.zeros((len(y), 1))
        self.node = np.zeros(len(y), dtype=np.int64)
        self.open: set[int] = set()
        self.at: tuple[int, int] = (-1, -1)  # (tree, depth) of the last level
        #: Splits announced in this tree's levels (the final tree must keep them).
        self.announced: dict[int, tuple[int, int, bool]] = {}
        self.rounds = 0
        self.agg = ClientAggregation(
            ctx, p.aggregation, server, ctx.parties_with(CLIENT), prefix="hgb",
            timeout=p.client_timeout,
        )  # fmt: skip

    # ------------------------------------------------------------------ aggregation
    def contribute(self, seq: int, vec: FloatArray) -> bool:
        """One aggregation round: ``True`` if this client's vector is in the sum."""
        sa = self.p.secagg(self.n_clients, vec.size)
        ok = self.agg.run(sa, seq, vec)
        self.rounds += 1
        return ok

    def sketch_vector(self) -> FloatArray:
        return sketch_counts(self.x, self.y, self.p)

    def level_vector(self, build: list[int]) -> FloatArray:
        """The histograms of the nodes ``build``, concatenated (:func:`encode_node_hist`)."""
        assert self.bins is not None
        parts = []
        for nd in build:
            rows = np.flatnonzero(self.node == nd)
            hg, hh, cnt = histogram(self.bins, self.g, self.h, rows, self.p.n_bins)
            parts.append(encode_node_hist(hg, hh, cnt))
        return np.concatenate(parts)

    # ------------------------------------------------------------------ commands
    def _abort(self, why: str) -> ProtocolAbort:
        return ProtocolAbort(f"hfl_gbdt: {why}", party=self.server)

    def on_setup(self, msg: GBSetup) -> None:
        p = self.p
        if self.model is not None:
            raise self._abort("a second setup")
        if msg.counts.size != p.n_features or np.any(msg.counts > p.n_bins - 1):
            raise self._abort("bin edges for the wrong number of features or bins")
        edges = np.split(msg.edges, np.cumsum(msg.counts)[:-1])
        if any(np.any(np.diff(e) <= 0) for e in edges):
            raise self._abort("bin edges are not increasing")
        self.model = FedGBDTModel(
            edges=list(edges),
            init=float(msg.init),
            n_bins=p.n_bins,
            learning_rate=p.learning_rate,
            max_depth=p.max_depth,
        )
        self.bins = apply_bins(self.x, self.model.edges, p.n_bins)
        self.raw[:] = msg.init

    def _route(self, splits: np.ndarray) -> set[int]:
        """Apply a level's splits; returns the new open nodes (their children)."""
        assert self.bins is not None and self.model is not None
        children: set[int] = set()
        for nd, f, b, ml in splits.tolist():
            if nd not in self.open:
                raise self._abort(f"a split of node {nd}, which is not open")
            if f >= self.p.n_features or b >= self.model.edges[f].size:
                raise self._abort(f"a split on feature {f}, bin {b}: out of range")
            rows = np.flatnonzero(self.node == nd)
            col = self.bins[rows, f]
            left = np.where(col == self.p.n_bins, bool(ml), col <= b)
            self.node[rows] = np.where(left, 2 * nd + 1, 2 * nd + 2)
            children |= {2 * nd + 1, 2 * nd + 2}
        return children

    def on_level(self, msg: GBLevel) -> list[int]:
        if self.model is None:
            raise self._abort("a level before the setup")
        n_done = len(self.model.trees)
        if msg.tree != n_done:
            raise self._abort(f"tree {msg.tree} announced, {n_done} expected")
        if msg.depth == 0:
            if msg.splits.size:
                raise self._abort("splits at depth 0")
            self.g, self.h = self.obj.grad_hess(self.y, self.raw[:, None])
            self.node[:] = 0
            self.announced = {}
            self.open = {0}
        else:
            if self.at != (msg.tree, msg.depth - 1) or msg.depth >= self.p.max_depth:
                raise self._abort(f"depth {msg.depth} of tree {msg.tree} out of order")
            self.open = self._route(msg.splits)
            for nd, f, b, ml in msg.splits.tolist():
                self.announced[int(nd)] = (int(f), int(b), bool(ml))
        self.at = (msg.tree, msg.depth)
        build = [int(v) for v in msg.build]
        if not set(build) <= self.open:
            raise self._abort("histograms requested for nodes that are not open")
        return build

    def on_tree(self, msg: GBTree) -> None:
        assert self.model is not None
        if msg.tree != len(self.model.trees):
            raise self._abort(f"tree {msg.tree} sent, {len(self.model.trees)} expected")
        heap: Heap = {int(nd): (int(f), int(b), bool(ml)) for nd, f, b, ml in msg.splits.tolist()}
        if any(heap.get(nd) != rule for nd, rule in self.announced.items()):
            raise self._abort(f"tree {msg.tree} differs from the splits announced while growing it")
        for nd, w in zip(msg.leaves.tolist(), msg.weights.tolist(), strict=True):
            if nd in heap:
                raise self._abort(f"node {nd} both split and leaf")
            heap[int(nd)] = np.array([w])
        for nd, spec in heap.items():
            if isinstance(spec, tuple) and (
                spec[0] >= self.p.n_features or spec[1] >= self.model.edges[spec[0]].size
            ):
                raise self._abort(f"node {nd} splits out of range")
        one = FedGBDTModel(
            edges=self.model.edges,
            init=0.0,
            n_bins=self.p.n_bins,
            learning_rate=self.p.learning_rate,
            max_depth=self.p.max_depth,
            trees=[heap],
        )
        try:
            self.raw += one.decision_function(self.x)
        except Exception as exc:
            raise self._abort(f"tree {msg.tree} is malformed ({exc})") from None
        self.model.trees.append(heap)

    def run(self) -> dict[str, Any]:
        ch, p = self.ctx.channel, self.p
        self.agg.setup()
        included = self.contribute(0, self.sketch_vector())
        while True:
            msg = ch.recv(self.server, CMD, timeout=p.client_timeout)
            if isinstance(msg, GBFinish):
                if msg.done and self.model is not None:
                    return {"role": "client", "model": self.model, "rounds": self.rounds}
                self.ctx.log.info("left the training: %s", msg.reason)
                return {"role": "client", "model": None, "rounds": self.rounds}
            if not included:
                raise self._abort("a command after this client was dropped")
            if isinstance(msg, GBSetup):
                self.on_setup(msg)
            elif isinstance(msg, GBLevel):
                build = self.on_level(msg)
                included = self.contribute(msg.seq, self.level_vector(build))
            elif isinstance(msg, GBTree):
                self.on_tree(msg)
            else:
                raise self._abort(f"unexpected {type(msg).__name__}")


def run_client(
    ctx: Context, p: GBDTParams, server: str, n_clients: int, x: FloatArray, y: FloatArray
) -> dict[str, Any]:
    """Follow the server's commands until it says finish; returns the final model."""
    return GBClient(ctx, p, server, n_clients, x, y).run()
