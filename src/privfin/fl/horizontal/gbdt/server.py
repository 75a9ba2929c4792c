"""The server role of the federated histogram GBDT: bin edges from the aggregated sketch,
splits from aggregated histograms only, trees level by level."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from privfin.errors import ConfigError, ProtocolAbort
from privfin.fl.horizontal.aggregation import ServerAggregation
from privfin.fl.horizontal.gbdt.common import (
    FloatArray,
    GBDTParams,
    NodeHist,
    check_node_hist,
    edges_from_sketch,
    split_node_hists,
)
from privfin.fl.horizontal.gbdt.messages import GBFinish, GBLevel, GBSetup, GBTree
from privfin.fl.horizontal.gbdt.model import FedGBDTModel, Heap
from privfin.fl.horizontal.secagg import SecAggResult, SecAggThresholdError
from privfin.ml.metrics import roc_auc
from privfin.ml.trees import best_split, leaf_weight
from privfin.runtime import Context

__all__ = ["GBServer", "run_server"]

CMD = "hgb.cmd"

_Totals = tuple[FloatArray, FloatArray, int]


class _Restart(Exception):
    """Clients dropped during a tree: grow it again with the survivors."""


class GBServer:
    """Learns, per aggregation, only the sum over the active clients: the pooled sketch (so the
    pooled per-feature marginals at the sketch's resolution, the total row and positive counts)
    and, per level, the pooled gradient/hessian/count histograms of the requested nodes — what
    a GBDT on the pooled rows computes — plus who dropped when (see SPEC.md)."""

    def __init__(
        self,
        ctx: Context,
        p: GBDTParams,
        clients: list[str],
        x_val: FloatArray | None,
        y_val: FloatArray | None,
    ) -> None:
        self.ctx, self.p = ctx, p
        self.n_clients = len(clients)
        self.active = sorted(clients)
        self.x_val, self.y_val = x_val, y_val
        self.seq = 0
        self.tp = p.tree_params()
        self.dropped: dict[str, str] = {}
        self.agg = ServerAggregation(
            ctx, p.aggregation, clients, prefix="hgb", timeout=p.round_deadline
        )

    # ------------------------------------------------------------------ aggregation
    def aggregate(self, dim: int) -> SecAggResult:
        """One aggregation round over the active clients; clients whose vectors are missing
        from the sum are told they are out and leave the active set."""
        sa = self.p.secagg(self.n_clients, dim)
        try:
            sa.check_clients(len(self.active))
        except ConfigError as exc:
            raise SecAggThresholdError(f"too few active clients left: {exc}") from None
        res = self.agg.run(self.active, sa, self.seq)
        self.seq += 1
        gone = [c for c in self.active if c not in res.survivors]
        if gone:
            for c in gone:
                self.dropped[c] = f"aggregation {self.seq - 1} ({res.dropped.get(c, '?')})"
            self.ctx.channel.broadcast(
                CMD, GBFinish(done=False, reason="dropped (late in an aggregation)"), peers=gone
            )
            self.active = list(res.survivors)
        return res

    def _leaf(self, t: _Totals) -> FloatArray:
        return leaf_weight(t[0], t[1], self.p.reg_lambda) * self.p.learning_rate

    def _splittable(self, t: _Totals) -> bool:
        tp = self.tp
        return t[2] >= 2 * tp.min_samples_leaf and float(t[1].sum()) >= 2 * tp.min_child_weight

    # ------------------------------------------------------------------ one tree
    def grow(self, tree: int) -> Heap:
        p = self.p
        heap: Heap = {}
        totals: dict[int, _Totals] = {}
        hists: dict[int, NodeHist] = {}
        err: dict[int, float] = {}  # error bound per slot of each node's histogram
        open_nodes = [0]
        build = [0]
        derive: dict[int, tuple[int, int]] = {}  # node -> (parent, built sibling)
        splits = np.zeros((0, 4), dtype=np.int64)
        for depth in range(p.max_depth):
            if not open_nodes:
                break
            msg = GBLevel(
                seq=self.seq,
                tree=tree,
                depth=depth,
                splits=splits,
                build=np.asarray(build, dtype=np.int64),
            )
            self.ctx.channel.broadcast(CMD, msg, peers=self.active)
            before = list(self.active)
            res = self.aggregate(len(build) * p.node_dim)
            if res.survivors != before:
                raise _Restart(", ".join(c for c in before if c not in res.survivors))
            for nd, hist in zip(build, split_node_hists(res.total, len(build), p), strict=True):
                err[nd] = res.error_bound
                check_node_hist(hist, totals.get(nd), err[nd], f"node {nd} of tree {tree}")
                hists[nd] = hist
                if nd == 0:
                    totals[0] = hist.totals()
            for nd, (parent, sib) in derive.items():
                # parent - sibling: their errors add up (and accumulate down derived chains).
                hists[nd] = hists[parent].minus(hists[sib])
                err[nd] = err[parent] + err[sib]
                check_node_hist(hists[nd], totals[nd], err[nd], f"node {nd} of tree {tree}")
            rows: list[list[int]] = []
            next_open: list[int] = []
            build, derive = [], {}
            for nd in open_nodes:
                hist, t = hists[nd], totals[nd]
                cand = best_split(hist.g, hist.h, hist.cnt, t[0], t[1], t[2], self.tp)
                if cand is None:
                    heap[nd] = self._leaf(t)
                    continue
                heap[nd] = (cand.feature, cand.bin, cand.missing_left)
                rows.append([nd, cand.feature, cand.bin, int(cand.missing_left)])
                lt: _Totals = (cand.left_g, cand.left_h, cand.left_count)
                rt: _Totals = (t[0] - cand.left_g, t[1] - cand.left_h, t[2] - cand.left_count)
                left, right = 2 * nd + 1, 2 * nd + 2
                totals[left], totals[right] = lt, rt
                kids = [
                    c
                    for c in (left, right)
                    if depth + 1 < p.max_depth and self._splittable(totals[c])
                ]
                for c in (left, right):
                    if c not in kids:
                        heap[c] = self._leaf(totals[c])
                if kids:
                    # Histogram subtraction: build the child with fewer rows, derive the other.
                    small, large = (left, right) if lt[2] <= rt[2] else (right, left)
                    build.append(small)
                    derive[large] = (nd, small)
                    next_open += kids
            for nd in [n for n in derive if n not in next_open]:
                del derive[nd]
            # Keep only the parents of the nodes the next level derives.
            parents = {par for par, _ in derive.values()}
            hists = {nd: h for nd, h in hists.items() if nd in parents}
            splits = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
            open_nodes = next_open
        return heap

    # ------------------------------------------------------------------ the job
    def _fail(self, reason: str) -> None:
        self.ctx.channel.broadcast(CMD, GBFinish(done=False, reason=reason), peers=self.active)

    def run(self) -> dict[str, Any]:
        p = self.p
        history: list[dict[str, Any]] = []
        restarts = 0
        try:
            self.agg.setup()
            # Clients dropped here are simply out: the sketch is the survivors' sum.
            res = self.aggregate(p.sketch_dim)
            n_rows, n_pos = float(res.total[-2]), float(res.total[-1])
            if not (n_rows >= 1 and 0 <= n_pos <= n_rows):
                raise ProtocolAbort("the aggregated sketch has impossible row counts")
            edges = edges_from_sketch(res.total, p)
            rate = min(max(n_pos / n_rows, 1e-6), 1 - 1e-6)
            init = float(np.log(rate / (1 - rate)))
            model = FedGBDTModel(
                edges=edges,
                init=init,
                n_bins=p.n_bins,
                learning_rate=p.learning_rate,
                max_depth=p.max_depth,
            )
            setup = GBSetup(
                edges=np.concatenate([np.zeros(0), *edges]),
                counts=np.array([e.size for e in edges], dtype=np.int64),
                init=init,
            )
            self.ctx.channel.broadcast(CMD, setup, peers=self.active)
            task = self.ctx.progress.task("hfl_gbdt.trees", total=p.n_trees)
            tree = 0
            while tree < p.n_trees:
                self.ctx.cancel.raise_if_cancelled()
                start = time.monotonic()
                try:
                    heap = self.grow(tree)
                except _Restart as exc:
                    restarts += 1
                    self.ctx.log.warning("tree %d restarts without %s", tree, exc)
                    if restarts > p.max_restarts:
                        raise ProtocolAbort(
                            f"more than max_restarts={p.max_restarts} trees restarted after "
                            "dropouts"
                        ) from None
                    continue
                splits = [[nd, *v[:2], int(v[2])] for nd, v in heap.items() if isinstance(v, tuple)]
                leaves = [(nd, float(v[0])) for nd, v in heap.items() if not isinstance(v, tuple)]
                msg = GBTree(
                    tree=tree,
                    splits=np.asarray(splits, dtype=np.int64).reshape(-1, 4),
                    leaves=np.asarray([nd for nd, _ in leaves], dtype=np.int64),
                    weights=np.asarray([w for _, w in leaves], dtype=np.float64),
                )
                self.ctx.channel.broadcast(CMD, msg, peers=self.active)
                model.trees.append(heap)
                entry: dict[str, Any] = {
                    "tree": tree,
                    "clients": list(self.active),
                    "leaves": len(leaves),
                    "seconds": time.monotonic() - start,
                }
                if self.x_val is not None and self.y_val is not None:
                    entry["val_auc"] = roc_auc(self.y_val, model.predict_proba(self.x_val)[:, 1])
                history.append(entry)
                self.ctx.metrics.add("hfl_gbdt.trees")
                task.advance()
                tree += 1
        except ProtocolAbort as exc:
            self._fail(f"training failed: {exc}")
            raise
        self.ctx.channel.broadcast(CMD, GBFinish(done=True), peers=self.active)
        return {
            "role": "server",
            "model": model,
            "history": history,
            "clients": list(self.active),
            "dropped": dict(self.dropped),
            "restarts": restarts,
            "aggregations": self.seq,
        }


def run_server(
    ctx: Context,
    p: GBDTParams,
    clients: list[str],
    x_val: FloatArray | None,
    y_val: FloatArray | None,
) -> dict[str, Any]:
    """Train ``p.n_trees`` trees; returns the model, per-tree history and dropouts."""
    return GBServer(ctx, p, clients, x_val, y_val).run()
