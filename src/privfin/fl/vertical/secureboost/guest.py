"""Guest role (label holder, key owner) of hetero SecureBoost: training and joint prediction.

Security property (semi-honest hosts): hosts see the guest's gradients and hessians only as
Paillier (or OU) ciphertexts under the guest's key (IND-CPA); labels, leaf weights and the
guest's feature values and split rules never leave the guest. Leakage to the hosts: the
instance space of every node (which rows it holds), the left/right partition of every split,
the GOSS sample if enabled, which of a host's splits won (their gains only with
``share_gains_with_hosts``), the slot widths (bit length of
the gradient range), and at prediction which rows reach which of the host's nodes. With
``complete_secure`` the first tree is built from guest features only and hosts learn nothing
about it. See SPEC.md.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.fl.vertical.secureboost._common import HeRandom, numpy_rng
from privfin.fl.vertical.secureboost.messages import (
    BuildHistograms,
    Finish,
    Histograms,
    HostDone,
    HostInfo,
    PredictStart,
    RouteAnswer,
    RouteQuery,
    Setup,
    SplitRequest,
    SplitResult,
    TreeStart,
)
from privfin.fl.vertical.secureboost.model import GuestModel, GuestNode
from privfin.fl.vertical.secureboost.packing import (
    GradientLayout,
    PublicKeyBase,
    add_plaintexts,
    ciphertexts_from_bytes,
    ciphertexts_to_bytes,
)
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.he import ou, paillier
from privfin.he.errors import OverflowDetected
from privfin.ml.trees import (
    SplitCandidate,
    best_split,
    fit_bins,
    histogram,
    leaf_weight,
    make_objective,
)
from privfin.runtime import Context

__all__ = ["predict_raw", "run_guest_predict", "run_guest_train"]

FloatArray = npt.NDArray[np.float64]


_Hist = tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]


@dataclass
class _Choice:
    owner: str  # "" for the guest, else a host name
    cand: SplitCandidate


class _Guest:
    def __init__(
        self, ctx: Context, X: FloatArray, y: Any, p: BoostParams, hosts: list[str],
        feature_names: list[str],
    ) -> None:  # fmt: skip
        self.ctx, self.p, self.hosts = ctx, p, hosts
        self.obj = make_objective(p.objective, p.n_classes)
        self.y = self.obj.check_labels(y)
        if X.shape[0] != self.y.size:
            raise ConfigError(f"X has {X.shape[0]} rows but y has {self.y.size} labels")
        self.n = X.shape[0]
        self.edges, self.bins = fit_bins(X, p.n_bins)
        self.tp = p.tree_params()
        self.rng = HeRandom(ctx.random)
        self.np_rng = numpy_rng(ctx.random)
        self.model = GuestModel(
            objective=p.objective, n_outputs=p.n_outputs, n_classes=p.n_classes,
            init_score=[], max_depth=p.max_depth, feature_names=list(feature_names),
            hosts=list(hosts),
        )  # fmt: skip
        self.host_features: dict[str, int] = {}

    # -------------------------------------------------------------------- setup
    def _setup(self) -> None:
        p = self.p
        p.check_keys(self.ctx.settings)
        small = p.key_bits < 2048
        t0 = time.perf_counter()
        self.pk: PublicKeyBase
        self.sk: paillier.PrivateKey | ou.PrivateKey
        if p.he_scheme == "paillier":
            self.pk, self.sk = paillier.generate_keypair(
                p.key_bits, rng=self.rng, insecure_allow_small_keys=small
            )
        else:
            self.pk, self.sk = ou.generate_keypair(
                p.key_bits, rng=self.rng, insecure_allow_small_keys=small
            )
        self.ctx.metrics.add("secureboost.guest.keygen_s", time.perf_counter() - t0)
        setup = Setup(
            public_key=self.pk.to_wire(), scheme=p.he_scheme, n_rows=self.n, n_bins=p.n_bins,
            max_depth=p.max_depth,
        )  # fmt: skip
        self.ctx.channel.broadcast("cmd", setup, peers=self.hosts)
        # Fixed-base tables and the encryption workers, while the hosts load the key and bin.
        self.pk.precompute(n_jobs=p.n_jobs)
        infos = self.ctx.channel.gather("info", peers=self.hosts, expect=HostInfo)
        self.host_features = {h: int(m.n_features) for h, m in infos.items()}
        self.host_slots = {h: self._slot_sources(h, m) for h, m in infos.items()}

    def _slot_sources(self, host: str, info: HostInfo) -> npt.NDArray[np.int64]:
        """Where each of a host's ``(n_features, n_bins)`` cumulative slots (thresholds
        ``0..n_bins-2``, then missing) sits in the values it sends; ``-1`` is zero.

        A threshold the host leaves out follows an empty bin: its cumulative sum equals the
        previous threshold's (zero before the first kept one), so the full histogram is
        restored exactly."""
        n_feat, nb = int(info.n_features), self.p.n_bins
        if info.thresholds:
            if len(info.thresholds) != -(-n_feat * (nb - 1) // 8):
                raise ProtocolAbort("threshold mask has the wrong size", party=host)
            bits = np.unpackbits(np.frombuffer(info.thresholds, dtype=np.uint8))
            keep = bits[: n_feat * (nb - 1)].reshape(n_feat, nb - 1).astype(bool)
        else:
            keep = np.ones((n_feat, nb - 1), dtype=bool)
        src = np.full((n_feat, nb), -1, dtype=np.int64)
        at = 0
        for j in range(n_feat):
            last = -1
            for t in range(nb - 1):
                if keep[j, t]:
                    last = at
                    at += 1
                src[j, t] = last
            src[j, nb - 1] = at
            at += 1
        return src

    # -------------------------------------------------------------------- sampling
    def _sample(self, g: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
        weights = np.ones(self.n)
        if not self.p.goss:
            return np.arange(self.n, dtype=np.int64), weights
        mag = np.abs(g).sum(axis=1)
        n_top, n_other = self.p.goss_sizes(self.n)
        order = np.argsort(-mag, kind="stable")
        top, rest = order[:n_top], order[n_top:]
        other = self.np_rng.choice(rest, size=n_other, replace=False)
        weights[other] = (1.0 - self.p.top_rate) / self.p.other_rate
        return np.sort(np.concatenate([top, other])).astype(np.int64), weights

    # -------------------------------------------------------------------- encryption
    def _randomizers(self, count: int) -> list[Any]:
        return self.pk.raw_randomizers(count, rng=self.rng, n_jobs=self.p.n_jobs)

    def _encrypt_and_send(
        self, tree: int, used: npt.NDArray[np.int64], g: FloatArray, h: FloatArray,
        pending: Future[list[Any]] | None,
    ) -> GradientLayout:  # fmt: skip
        t0 = time.perf_counter()
        bounds = self.p.gradient_bounds()
        if bounds is None and used.size:
            spread = float((g[used].max(axis=0) - g[used].min(axis=0)).max())
            if not spread <= 2.0**self.p.regression_range_bits:
                # No data-derived value in the message (it may reach peers as a reason).
                raise ConfigError(
                    "regression gradients span more than 2**regression_range_bits = "
                    f"{2.0**self.p.regression_range_bits:.4g} label units (hosts refuse wider "
                    "slots): scale the labels down or raise regression_range_bits"
                )
        layout = GradientLayout.make(g[used], h[used], used.size, self.p.precision_bits, bounds)
        if layout.width > self.pk.capacity_bits:
            raise ConfigError(
                f"packed gradients ({layout.width} bits per row) do not fit the key's "
                f"{self.pk.capacity_bits}-bit plaintext space: lower precision_bits, or use "
                "he_scheme='paillier' (about 3.7 times the capacity of OU at the same key size)"
            )
        plain = layout.encode(g[used], h[used])
        rand = pending.result() if pending is not None else []
        if len(rand) != len(plain):
            rand = self._randomizers(len(plain))
        cts = add_plaintexts(self.pk, rand, plain)
        msg = TreeStart(
            tree=tree, rows=used.astype(np.uint32), widths=list(layout.widths),
            ct=ciphertexts_to_bytes(cts, self.pk),
        )  # fmt: skip
        self.ctx.channel.broadcast("cmd", msg, peers=self.hosts)
        self.ctx.metrics.add("secureboost.guest.encrypt_s", time.perf_counter() - t0)
        return layout

    # -------------------------------------------------------------------- host histograms
    def _host_hists(
        self, host: str, msg: Histograms, layout: GradientLayout, nodes: list[int],
        totals: dict[int, tuple[FloatArray, FloatArray, int]],
    ) -> dict[int, _Hist]:  # fmt: skip
        """Decrypt and check one host's histograms: per node, cumulative (g, h, count) sums
        per threshold in slots ``0..n_bins-2`` and the missing slot at ``n_bins``."""
        if msg.nodes.tolist() != nodes:
            raise ProtocolAbort("histograms for other nodes than requested", party=host)
        n_feat = self.host_features[host]
        nb = self.p.n_bins
        src = self.host_slots[host]
        per_node = int(src.max()) + 1 if src.size else 0
        # Exactly the packing an honest host uses, so this key holder decrypts exactly
        # ceil(per_node / per_ct) plaintexts per requested node, no more.
        if msg.per_ct != max(1, self.pk.capacity_bits // layout.width):
            raise ProtocolAbort("histogram packing is not the agreed one", party=host)
        expected = -(-per_node // msg.per_ct)
        if msg.cts_per_node != expected:
            raise ProtocolAbort("histogram has the wrong number of ciphertexts", party=host)
        try:
            cts = ciphertexts_from_bytes(msg.ct, self.pk, expected * len(nodes))
        except DecodeError as exc:
            raise ProtocolAbort(f"histogram ciphertexts refused: {exc}", party=host) from None
        t0 = time.perf_counter()
        try:
            # The plaintexts stay here; OU refuses residues beyond its bound (no key recovery).
            plain = self.sk.raw_decrypt(cts, n_jobs=self.p.n_jobs)
        except OverflowDetected:
            raise ProtocolAbort(
                "histogram plaintext outside the key's plaintext bound (tampered?)", party=host
            ) from None
        self.ctx.metrics.add("secureboost.guest.decrypt_s", time.perf_counter() - t0)
        self.ctx.metrics.add("secureboost.guest.decryptions", float(len(cts)))
        out: dict[int, _Hist] = {}
        k = layout.n_outputs
        for i, nd in enumerate(nodes):
            chunk = plain[i * expected : (i + 1) * expected]
            gs, hs, cnt = layout.decode(chunk, msg.per_ct, per_node, party=host)
            # Append a zero row for the slots before a feature's first kept threshold.
            g3 = np.vstack([gs, np.zeros((1, k))])[src]
            h3 = np.vstack([hs, np.zeros((1, k))])[src]
            c2 = np.append(cnt, 0)[src]
            hg = np.zeros((n_feat, nb + 1, k))
            hh = np.zeros((n_feat, nb + 1, k))
            hc = np.zeros((n_feat, nb + 1), dtype=np.int64)
            hg[:, : nb - 1], hh[:, : nb - 1], hc[:, : nb - 1] = g3[:, :-1], h3[:, :-1], c2[:, :-1]
            hg[:, nb], hh[:, nb], hc[:, nb] = g3[:, -1], h3[:, -1], c2[:, -1]
            self._check_counts(host, hc, totals[nd][2])
            out[nd] = (hg, hh, hc)
        return out

    def _check_counts(self, host: str, hc: npt.NDArray[np.int64], total: int) -> None:
        nb = self.p.n_bins
        cum, miss = hc[:, : nb - 1], hc[:, nb]
        if hc.shape[0] and (
            np.any(cum < 0)
            or np.any(miss < 0)
            or np.any(np.diff(cum, axis=1) < 0)
            or np.any(cum[:, -1] + miss > total)
        ):
            raise ProtocolAbort("inconsistent histogram counts (tampered?)", party=host)

    # -------------------------------------------------------------------- one tree
    def _grow(
        self, tree: int, g: FloatArray, h: FloatArray, used: npt.NDArray[np.int64],
        use_hosts: bool, layout: GradientLayout | None,
    ) -> tuple[dict[int, GuestNode], npt.NDArray[np.int32]]:  # fmt: skip
        ch = self.ctx.channel
        p, tp = self.p, self.tp
        node_of_row = np.zeros(self.n, dtype=np.int32)
        used_mask = np.zeros(self.n, dtype=bool)
        used_mask[used] = True
        nodes: dict[int, GuestNode] = {}
        frontier = [0]
        leaves: list[int] = []
        prev_hists: dict[int, dict[str, _Hist]] = {}
        for depth in range(p.max_depth):
            totals: dict[int, tuple[FloatArray, FloatArray, int]] = {}
            requested: list[int] = []
            for nd in frontier:
                rows = np.flatnonzero((node_of_row == nd) & used_mask)
                tg, th = g[rows].sum(axis=0), h[rows].sum(axis=0)
                totals[nd] = (tg, th, int(rows.size))
                if rows.size >= 2 * tp.min_samples_leaf and th.sum() >= 2 * tp.min_child_weight:
                    requested.append(nd)
                else:
                    leaves.append(nd)
            if not requested:
                frontier = []
                break
            # Histogram subtraction at the guest: of two requested siblings whose parent's
            # host histograms are known, hosts send only the smaller; the other is
            # parent - smaller (in plaintext, after decryption).
            send: list[int] = []
            derive: dict[int, int] = {}
            for nd in requested:
                sib = nd + 1 if nd % 2 == 1 else nd - 1
                if nd > 0 and sib in requested and (nd - 1) // 2 in prev_hists:
                    small = nd if (totals[nd][2], nd) <= (totals[sib][2], sib) else sib
                    if nd != small:
                        derive[nd] = small
                        continue
                send.append(nd)
            if use_hosts:
                active = np.where(np.isin(node_of_row, requested), node_of_row, -1)
                msg = BuildHistograms(
                    tree=tree, depth=depth, node_of_row=active.astype(np.int32),
                    nodes=np.array(send, dtype=np.int32),
                )  # fmt: skip
                ch.broadcast("cmd", msg, peers=self.hosts)
            choices: dict[int, _Choice | None] = {}
            for nd in requested:
                rows = np.flatnonzero((node_of_row == nd) & used_mask)
                hg, hh, hc = histogram(self.bins, g, h, rows, p.n_bins)
                tg, th, tc = totals[nd]
                cand = best_split(hg, hh, hc, tg, th, tc, tp)
                choices[nd] = None if cand is None else _Choice("", cand)
            if use_hosts and layout is not None:
                t0 = time.perf_counter()
                hists = ch.gather("hist", peers=self.hosts, expect=Histograms)
                self.ctx.metrics.add("secureboost.guest.wait_hist_s", time.perf_counter() - t0)
                level_hists: dict[str, dict[int, _Hist]] = {}
                for host in self.hosts:
                    msg_h = hists[host]
                    if msg_h.tree != tree or msg_h.depth != depth:
                        raise ProtocolAbort("histograms out of sequence", party=host)
                    got = self._host_hists(host, msg_h, layout, send, totals)
                    for nd, small in derive.items():
                        pg, ph, pc = prev_hists[(nd - 1) // 2][host]
                        sg, sh, sc = got[small]
                        got[nd] = (pg - sg, ph - sh, pc - sc)
                        self._check_counts(host, got[nd][2], totals[nd][2])
                    level_hists[host] = got
                    cands = {
                        nd: best_split(*got[nd], *totals[nd], tp, cumulative=True)
                        for nd in requested
                    }
                    for nd, cand in cands.items():
                        cur = choices[nd]
                        # Host gains come from fixed-point sums: count near-ties (relative
                        # 1e-6) as ties, which the earlier party (guest, then hosts) wins.
                        if cand is not None and (
                            cur is None or cand.gain > cur.cand.gain * (1 + 1e-6) + 1e-12
                        ):
                            choices[nd] = _Choice(host, cand)
            # Ask hosts for the partitions of their splits (every host gets a request).
            go_left = np.zeros(self.n, dtype=bool)
            if use_hosts:
                for host in self.hosts:
                    mine = [nd for nd in requested if (c := choices[nd]) and c.owner == host]
                    cs = [choices[nd] for nd in mine]
                    req = SplitRequest(
                        tree=tree, depth=depth, nodes=np.array(mine, dtype=np.int32),
                        features=np.array([c.cand.feature for c in cs if c], dtype=np.int32),
                        bins=np.array([c.cand.bin for c in cs if c], dtype=np.int32),
                        missing_left=np.array([c.cand.missing_left for c in cs if c], dtype=bool),
                        # Gains come from decrypted host histograms: shared only on opt-in.
                        gains=np.array(
                            [c.cand.gain if p.share_gains_with_hosts else 0.0 for c in cs if c],
                            dtype=np.float64,
                        ),
                    )  # fmt: skip
                    ch.send(host, "cmd", req)
                for host in self.hosts:
                    res = ch.recv(host, "part", expect=SplitResult)
                    if res.tree != tree or res.depth != depth or res.left.size != -(-self.n // 8):
                        raise ProtocolAbort("split result out of sequence or malformed", party=host)
                    bits = np.unpackbits(res.left, count=self.n).astype(bool)
                    for nd in requested:
                        c = choices[nd]
                        if c is not None and c.owner == host:
                            sel = node_of_row == nd
                            go_left[sel] = bits[sel]
            if use_hosts:
                prev_hists = {
                    nd: {host: level_hists[host][nd] for host in self.hosts} for nd in requested
                }
            nxt: list[int] = []
            for nd in requested:
                c = choices[nd]
                if c is None:
                    leaves.append(nd)
                    continue
                sel = node_of_row == nd
                if c.owner == "":
                    f, t = c.cand.feature, c.cand.bin
                    b = self.bins[sel, f]
                    go_left[sel] = np.where(b == p.n_bins, c.cand.missing_left, b <= t)
                    e = self.edges[f]
                    thr = float(e[t]) if t < e.size else float("inf")
                    nodes[nd] = GuestNode("", f, thr, c.cand.missing_left, None)
                    cnt, tot = self.model.guest_importance.get(f, (0, 0.0))
                    self.model.guest_importance[f] = (cnt + 1, tot + c.cand.gain)
                else:
                    nodes[nd] = GuestNode(c.owner)
                    cnt, tot = self.model.host_importance.get(c.owner, (0, 0.0))
                    self.model.host_importance[c.owner] = (cnt + 1, tot + c.cand.gain)
                left_rows = sel & go_left
                if sel.sum() > 0 and (
                    not (left_rows & used_mask).any() or not (sel & ~go_left & used_mask).any()
                ):
                    raise ProtocolAbort("a split left a child empty (inconsistent partition)",
                                        party=c.owner or None)  # fmt: skip
                node_of_row[left_rows] = 2 * nd + 1
                node_of_row[sel & ~go_left] = 2 * nd + 2
                nxt += [2 * nd + 1, 2 * nd + 2]
            frontier = nxt
        leaves += frontier
        for nd in leaves:
            rows = np.flatnonzero((node_of_row == nd) & used_mask)
            w = leaf_weight(g[rows].sum(axis=0), h[rows].sum(axis=0), tp.reg_lambda)
            nodes[nd] = GuestNode(weight=[float(v) for v in w * p.learning_rate])
        return nodes, node_of_row

    # -------------------------------------------------------------------- training loop
    def run(self) -> tuple[GuestModel, FloatArray]:
        try:
            return self._run()
        finally:
            # The key's encryption process pool (if bulk encryption started one) ends here.
            pk = getattr(self, "pk", None)
            if pk is not None:
                pk.close()

    def _run(self) -> tuple[GuestModel, FloatArray]:
        p = self.p
        if self.hosts:
            self._setup()
        init = self.obj.init_score(self.y)
        self.model.init_score = [float(v) for v in init]
        raw = np.tile(init, (self.n, 1))
        task = self.ctx.progress.task("secureboost.trees", total=p.n_trees)
        with ThreadPoolExecutor(1, thread_name_prefix="secureboost-guest") as bg:
            pending: Future[list[Any]] | None = None
            for tree in range(p.n_trees):
                self.ctx.cancel.raise_if_cancelled()
                t0 = time.perf_counter()
                g, h = self.obj.grad_hess(self.y, raw)
                used, weights = self._sample(g)
                g, h = g * weights[:, None], h * weights[:, None]
                use_hosts = bool(self.hosts) and not (p.complete_secure and tree == 0)
                layout = None
                if use_hosts:
                    layout = self._encrypt_and_send(tree, used, g, h, pending)
                    pending = None
                    if tree + 1 < p.n_trees:
                        # Encryptions of zero for the next tree, while the hosts work.
                        pending = bg.submit(self._randomizers, used.size)
                nodes, node_of_row = self._grow(tree, g, h, used, use_hosts, layout)
                weights_by_node = {nd: np.array(n.weight) for nd, n in nodes.items() if n.is_leaf}
                for nd, w in weights_by_node.items():
                    raw[node_of_row == nd] += w
                self.model.trees.append(nodes)
                self.ctx.metrics.add("secureboost.guest.tree_s", time.perf_counter() - t0)
                task.advance()
            if pending is not None:
                pending.cancel()
        if self.hosts:
            self.ctx.channel.broadcast("cmd", Finish(n_trees=p.n_trees), peers=self.hosts)
            self.ctx.channel.gather("done", peers=self.hosts, expect=HostDone)
        return self.model, raw


def run_guest_train(
    ctx: Context, X: FloatArray, y: Any, params: BoostParams, hosts: list[str],
    feature_names: list[str] | None = None,
) -> tuple[GuestModel, FloatArray]:  # fmt: skip
    """Run the guest side of training.

    Returns
    -------
    (GuestModel, ndarray)
        The guest's model and the raw training scores (shape ``(n, K)``).
    """
    guest = _Guest(ctx, X, y, params, hosts, list(feature_names or []))
    return guest.run()


# ============================================================================ prediction


def _tree_arrays(
    tree: dict[int, GuestNode], size: int, hosts: list[str], k: int
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray, npt.NDArray[np.bool_], FloatArray
]:
    # owner code: -2 absent, -1 leaf, 0 guest, 1 + i host i
    owner = np.full(size, -2, dtype=np.int64)
    feature = np.zeros(size, dtype=np.int64)
    thr = np.full(size, np.inf)
    ml = np.zeros(size, dtype=bool)
    weights = np.zeros((size, k))
    for i, node in tree.items():
        if i >= size:
            raise ConfigError("model node id beyond max_depth")
        if node.is_leaf:
            owner[i] = -1
            weights[i] = node.weight or [0.0] * k
        elif node.owner == "":
            owner[i], feature[i], thr[i], ml[i] = 0, node.feature, node.threshold, node.missing_left
        else:
            if node.owner not in hosts:
                raise ConfigError(f"model refers to unknown host {node.owner!r}")
            owner[i] = 1 + hosts.index(node.owner)
    return owner, feature, thr, ml, weights


def predict_raw(
    ctx: Context | None, model: GuestModel, X: FloatArray, hosts: list[str]
) -> FloatArray:
    """Route every row through every tree; host nodes are resolved by querying their owners
    (at most ``max_depth`` rounds). With ``ctx=None`` the model must use guest nodes only."""
    n = X.shape[0]
    k = model.n_outputs
    size = 2 ** (model.max_depth + 1) - 1
    arrays = [_tree_arrays(t, size, model.hosts, k) for t in model.trees]
    n_trees = len(arrays)
    at = np.zeros((n_trees, n), dtype=np.int64)
    rows_all = np.arange(n)
    for _round in range(model.max_depth + 1):
        for _step in range(model.max_depth):
            for ti, (owner, feature, thr, ml, _) in enumerate(arrays):
                pos = at[ti]
                sel = np.flatnonzero(owner[pos] == 0)
                if sel.size == 0:
                    continue
                x = X[sel, feature[pos[sel]]]
                left = np.where(np.isnan(x), ml[pos[sel]], x < thr[pos[sel]])
                at[ti, sel] = np.where(left, 2 * pos[sel] + 1, 2 * pos[sel] + 2)
        pending = False
        for hi, host in enumerate(model.hosts):
            code = 1 + hi
            trees_q, rows_q = [], []
            for ti, (owner, *_rest) in enumerate(arrays):
                sel = np.flatnonzero(owner[at[ti]] == code)
                trees_q.append(np.full(sel.size, ti, dtype=np.int32))
                rows_q.append(sel)
            tq = np.concatenate(trees_q) if trees_q else np.zeros(0, np.int32)
            rq = np.concatenate(rows_q).astype(np.int64) if rows_q else np.zeros(0, np.int64)
            if tq.size == 0:
                continue
            pending = True
            if ctx is None:
                raise ConfigError("the model has host nodes: predict with all parties online")
            nq = at[tq, rq].astype(np.int32)
            ctx.channel.send(host, "cmd", RouteQuery(
                trees=tq.astype(np.int32), nodes=nq, rows=rq.astype(np.uint32)))  # fmt: skip
            ans = ctx.channel.recv(host, "route", expect=RouteAnswer)
            if ans.count != tq.size:
                raise ProtocolAbort("routing answer of the wrong size", party=host)
            left = np.unpackbits(ans.left, count=ans.count).astype(bool)
            at[tq, rq] = np.where(left, 2 * nq + 1, 2 * nq + 2)
        if not pending:
            break
    raw = np.tile(np.array(model.init_score), (n, 1))
    for ti, (owner, _f, _t, _m, weights) in enumerate(arrays):
        if np.any(owner[at[ti]] != -1):
            raise ProtocolAbort("a row did not reach a leaf (inconsistent model)")
        raw += weights[at[ti]]
    del rows_all
    return raw


def run_guest_predict(
    ctx: Context, model: GuestModel, X: FloatArray, hosts: list[str]
) -> FloatArray:
    """Joint prediction at the guest: returns raw scores ``(n, K)``; hosts learn no score."""
    if X.shape[0] == 0:
        raise ConfigError("nothing to predict: X has no rows")
    ctx.channel.broadcast(
        "cmd", PredictStart(n_rows=X.shape[0], n_trees=len(model.trees)), peers=hosts
    )
    raw = predict_raw(ctx, model, X, hosts)
    ctx.channel.broadcast("cmd", Finish(n_trees=len(model.trees)), peers=hosts)
    ctx.channel.gather("done", peers=hosts, expect=HostDone)
    return raw
