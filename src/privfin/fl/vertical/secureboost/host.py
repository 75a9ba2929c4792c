"""Host role of hetero SecureBoost: encrypted histograms over its own bins, and its lookup table.

Security property (semi-honest guest): the host's feature values and bin edges never leave the
host; what leaves is (i) per node and per (permuted) feature, cumulative encrypted sums of the
guest's gradients, re-randomised, and (ii) left/right bits for the rows of the nodes split on
the host's features. Leakage to the guest: the decrypted per-bin gradient/hessian/count sums
(SPEC.md), the partitions of host splits, and at prediction the host's decisions for the rows
the guest queries. The host learns the instance space of every node (which rows are in it),
the GOSS sample, which of its splits won, and (only with ``share_gains_with_hosts``) their gains.

Against a deviating guest ([08]) the host checks, before computing anything, the key size, the
gradient layout (no slot wider than the honest one for ``n_rows``, ``precision_bits`` and the
public gradient bounds) and the instance spaces (a binary tree of the agreed depth, nodes of at
least ``2 * min_samples_leaf`` rows); what a guest can still learn is quantified in SPEC.md.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gmpy2
import numpy as np
import numpy.typing as npt

from privfin.config import require_peer_ou_allowed
from privfin.crypto.prg import SEED_BYTES, PrgRandom
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.fl.vertical.secureboost._common import HeRandom, load_public_key, numpy_rng
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
from privfin.fl.vertical.secureboost.model import HostModel, HostSplit
from privfin.fl.vertical.secureboost.packing import (
    PublicKeyBase,
    ciphertexts_from_bytes,
    ciphertexts_to_bytes,
    compress,
)
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.ml.trees import fit_bins
from privfin.runtime import Context

__all__ = ["run_host_predict", "run_host_train"]


def check_tree_start(msg: TreeStart, p: BoostParams, n_rows: int, guest: str) -> None:
    """Refuse a tree whose rows or gradient layout an honest guest would not send.

    The rows must be all ``n_rows`` rows, or exactly as many as GOSS keeps. The layout must
    have one count slot and one ``(g, h)`` pair per output, each slot at most as wide as the
    honest guest's (:meth:`BoostParams.max_widths`: ``n_rows``, ``precision_bits`` and the
    public gradient bounds). A wider slot would let the guest pack a per-row bit pattern
    (row ``i`` as ``2**i``) into its gradients and read the bin of every row of every host
    feature from one histogram (SPEC.md). Checked before any ciphertext is parsed.

    Raises
    ------
    ProtocolAbort
        Naming ``guest``.
    """
    used = int(msg.rows.size)
    if int(msg.rows.max()) >= n_rows:
        raise ProtocolAbort("gradient rows out of range", party=guest)
    expected = sum(p.goss_sizes(n_rows)) if p.goss else n_rows
    if used != expected:
        raise ProtocolAbort(
            f"the tree holds {used} rows, not the {expected} the parameters give", party=guest
        )
    limits = p.max_widths(used)
    if len(msg.widths) != len(limits):
        raise ProtocolAbort(
            f"gradient layout has {len(msg.widths)} slots, not {len(limits)}", party=guest
        )
    if any(w > lim for w, lim in zip(msg.widths, limits, strict=True)):
        raise ProtocolAbort(
            f"gradient slots {list(msg.widths)} are wider than the honest layout "
            f"{list(limits)} for {used} rows at precision_bits={p.precision_bits}",
            party=guest,
        )


class _TreeState:
    def __init__(
        self, msg: TreeStart, pk: PublicKeyBase, p: BoostParams, n_rows: int, guest: str,
        pool: ThreadPoolExecutor,
    ) -> None:  # fmt: skip
        check_tree_start(msg, p, n_rows, guest)
        self.tree = msg.tree
        self.rows = msg.rows.astype(np.int64)
        self.widths = list(msg.widths)
        self.width = sum(self.widths)
        if self.width > pk.capacity_bits:
            raise ProtocolAbort(
                "packed gradients do not fit the key's plaintext space", party=guest
            )
        try:
            self.cts = ciphertexts_from_bytes(msg.ct, pk, self.rows.size, executor=pool)
        except DecodeError as exc:
            raise ProtocolAbort(f"gradient ciphertexts refused: {exc}", party=guest) from None
        self.used = np.zeros(n_rows, dtype=bool)
        self.used[self.rows] = True
        self.node_of_row: npt.NDArray[np.int32] | None = None
        self.left: npt.NDArray[np.bool_] | None = None
        self.host_split: set[int] = set()
        self.depth = -1
        self.built: set[int] = set()


class _Host:
    def __init__(self, ctx: Context, X: npt.NDArray[np.float64], p: BoostParams, guest: str):
        self.ctx, self.X, self.p, self.guest = ctx, X, p, guest
        self.n_rows, self.n_features = X.shape
        self.rng = HeRandom(ctx.random)
        # A secret permutation hides which of the host's columns a split uses.
        self.perm = numpy_rng(ctx.random).permutation(self.n_features)
        self.edges, self.bins = fit_bins(X, p.n_bins)
        self.model = HostModel(party=ctx.party, n_features=self.n_features)
        self.groups = self._plan_groups()
        # Thresholds sent per (permuted) feature: those after a non-empty bin (SPEC.md).
        nb = p.n_bins
        self.keep = np.zeros((self.n_features, max(nb - 1, 0)), dtype=bool)
        for j in range(self.n_features):
            counts = np.bincount(self.bins[:, int(self.perm[j])], minlength=nb + 1)
            self.keep[j] = counts[: nb - 1] > 0
        # Uniform encryptions of zero for the histograms, made ahead while the host waits
        # for the guest (they do not depend on the ciphertexts): a stream of its own, so the
        # background thread never shares ``ctx.random``; each zero is used exactly once.
        self.zero_rng = HeRandom(PrgRandom(ctx.random.bytes(SEED_BYTES)))
        self.zeros: list[Any] = []
        self.zeros_pending: Future[list[Any]] | None = None
        self.sent_at_depth: dict[int, int] = {}

    # ------------------------------------------------------------------ re-randomisation
    def _make_zeros(self, count: int, executor: ThreadPoolExecutor | None = None) -> list[Any]:
        """``count`` uniform encryptions of zero (``r**n`` / ``h**r``, ``r`` uniform)."""
        return self.pk.raw_obfuscate_for_owner(
            [1] * count, rng=self.zero_rng, executor=executor, n_jobs=self.p.n_jobs
        )

    def _take_zeros(self, count: int, pool: ThreadPoolExecutor) -> list[Any]:
        if self.zeros_pending is not None:
            self.zeros += self.zeros_pending.result()
            self.zeros_pending = None
        if len(self.zeros) < count:
            self.zeros += self._make_zeros(count - len(self.zeros), pool)
        out, self.zeros = self.zeros[:count], self.zeros[count:]
        return out

    def _refill_zeros(self, depth: int, sent: int, bg: ThreadPoolExecutor) -> None:
        """Start making the zeros the next histogram request will likely need (as many as
        that depth took in the previous tree; at first ``sent`` times two, or ``sent`` for a
        new tree) while the guest decrypts, splits or encrypts."""
        self.sent_at_depth[depth] = sent
        nxt = depth + 1 if depth + 1 < self.p.max_depth else 0
        want = self.sent_at_depth.get(nxt, 2 * sent if nxt else sent) - len(self.zeros)
        if want > 0 and self.zeros_pending is None:
            self.zeros_pending = bg.submit(self._make_zeros, want)

    # ------------------------------------------------------------------ histograms
    def _bucket_sums(
        self, keys: npt.NDArray[np.int64], pos: npt.NDArray[np.int64], st: _TreeState
    ) -> tuple[list[int], list[Any]]:
        """Homomorphic sum of the rows' ciphertexts per distinct key (sorted keys)."""
        order = np.argsort(keys, kind="stable")
        sorted_pos = pos[order].tolist()
        uniq, counts = np.unique(keys[order], return_counts=True)
        cts = st.cts
        mod = self._mod
        sums: list[Any] = []
        at = 0
        with gmpy2.context(allow_release_gil=True):
            for c in counts.tolist():
                acc = cts[sorted_pos[at]]
                for i in sorted_pos[at + 1 : at + c]:
                    acc = acc * cts[i] % mod
                at += c
                sums.append(acc)
        return uniq.tolist(), sums

    def _plan_groups(self) -> list[list[int]]:
        """Group the (permuted) features whose histograms are built together.

        A group's rows are summed once per occupied cell of its joint bins (one addition per
        row), then each cell is added into every member's marginal (one addition per member
        and cell). Cost of a group: ``rows + len(group) * cells`` additions (a single feature:
        ``rows``). Greedy merging of the pair of groups that saves most, on all training rows;
        it depends only on the host's own bins and changes no sum (same ciphertexts)."""
        slots = self.p.n_bins + 1
        max_size = max(1, 62 // max(1, int(slots).bit_length()))
        n = int(self.n_rows)
        digits = [self.bins[:, int(self.perm[j])].astype(np.int64) for j in range(self.n_features)]

        def cost(group: list[int]) -> int:
            if len(group) == 1:
                return n
            key = np.zeros(n, dtype=np.int64)
            for j in group:
                key = key * slots + digits[j]
            return n + len(group) * int(np.unique(key).size)

        groups = [[j] for j in range(self.n_features)]
        costs = [cost(g) for g in groups]
        while len(groups) > 1:
            best: tuple[int, int, int, int] | None = None
            for a in range(len(groups)):
                for b in range(a + 1, len(groups)):
                    if len(groups[a]) + len(groups[b]) > max_size:
                        continue
                    c = cost(groups[a] + groups[b])
                    saving = costs[a] + costs[b] - c
                    if saving > 0 and (best is None or saving > best[0]):
                        best = (saving, a, b, c)
            if best is None:
                break
            _, a, b, c = best
            merged = groups[a] + groups[b]
            groups = [g for i, g in enumerate(groups) if i not in (a, b)] + [merged]
            costs = [x for i, x in enumerate(costs) if i not in (a, b)] + [c]
        # Largest first, so the thread pool's last task is a short one.
        order = sorted(range(len(groups)), key=lambda i: -costs[i])
        return [groups[i] for i in order]

    def _group_hist(
        self, js: list[int], pos: npt.NDArray[np.int64], st: _TreeState
    ) -> list[list[Any]]:
        """Per-bin sums of the features ``js`` (see :meth:`_plan_groups`): the rows are summed
        per occupied joint cell, then the cells are added into every feature's marginal."""
        slots = self.p.n_bins + 1
        rows = st.rows[pos]
        keys = np.zeros(rows.size, dtype=np.int64)
        for j in js:
            keys = keys * slots + self.bins[rows, int(self.perm[j])].astype(np.int64)
        uniq, sums = self._bucket_sums(keys, pos, st)
        mod = self._mod
        out: list[list[Any]] = [[gmpy2.mpz(1)] * slots for _ in js]
        if len(js) == 1:
            for key, total in zip(uniq, sums, strict=True):
                out[0][key] = total
            return out
        cells = np.asarray(uniq, dtype=np.int64)
        with gmpy2.context(allow_release_gil=True):
            for i in range(len(js)):
                col = ((cells // slots ** (len(js) - 1 - i)) % slots).tolist()
                hist = out[i]
                for b, total in zip(col, sums, strict=True):
                    hist[b] = hist[b] * total % mod
        return out

    def _node_hist(
        self, pos: npt.NDArray[np.int64], st: _TreeState, pool: ThreadPoolExecutor
    ) -> list[list[Any]]:
        parts = pool.map(lambda js: self._group_hist(js, pos, st), self.groups)
        hists: list[list[Any]] = [[] for _ in range(self.n_features)]
        for js, part in zip(self.groups, parts, strict=True):
            for j, hist in zip(js, part, strict=True):
                hists[j] = hist
        return hists

    def _check_nodes(self, msg: BuildHistograms, st: _TreeState) -> None:
        """Refuse instance spaces an honest guest would not send (SPEC.md): at depth ``d``
        every row is in no node (``-1``) or in a node of depth ``d`` whose parent held it at
        depth ``d - 1`` (all rows in the root at depth 0); a row of a node split on this
        host's feature went to the side this host answered; every node holds at least
        ``2 * min_samples_leaf`` of the tree's rows; histograms only of nodes with rows."""
        d = msg.depth
        nor = msg.node_of_row.astype(np.int64)
        active = nor >= 0
        if nor.size and int(nor.max()) >= 2 ** (d + 1) - 1:
            raise ProtocolAbort(f"node ids beyond depth {d}", party=self.guest)
        present, sizes = np.unique(nor[active & st.used], return_counts=True)
        if int(np.unique(nor[active]).size) != int(present.size) or (
            sizes.size and int(sizes.min()) < 2 * self.p.min_samples_leaf
        ):
            raise ProtocolAbort(
                f"a node holds fewer than {2 * self.p.min_samples_leaf} of the tree's rows",
                party=self.guest,
            )
        if d == 0:
            if not active.all() or (nor.size and int(nor.max()) != 0):
                raise ProtocolAbort("at depth 0 every row must be in the root", party=self.guest)
        else:
            prev = st.node_of_row
            if prev is None:  # pragma: no cover - sequence checked by the caller
                raise ProtocolAbort("histogram request out of sequence", party=self.guest)
            child = nor[active]
            if np.any((child - 1) // 2 != prev[active]) or np.any(child < 2**d - 1):
                raise ProtocolAbort(
                    "a row moved to a node that is not a child of its node", party=self.guest
                )
            if st.host_split and st.left is not None:
                mine = active & np.isin(prev, list(st.host_split))
                went_left = nor[mine] % 2 == 1
                if np.any(went_left != st.left[mine]):
                    raise ProtocolAbort(
                        "rows of a split on this host's feature went to the other side",
                        party=self.guest,
                    )
        if not np.isin(msg.nodes, present).all():
            raise ProtocolAbort("histograms requested for a node without rows", party=self.guest)

    def build(self, msg: BuildHistograms, st: _TreeState, pool: ThreadPoolExecutor) -> Histograms:
        if msg.tree != st.tree or msg.depth != st.depth + 1 or msg.node_of_row.size != self.n_rows:
            raise ProtocolAbort("histogram request out of sequence", party=self.guest)
        self._check_nodes(msg, st)
        st.host_split = set()
        st.left = None
        st.depth = msg.depth
        st.node_of_row = msg.node_of_row
        nodes = [int(x) for x in msg.nodes.tolist()]
        node_of_used = msg.node_of_row[st.rows]
        t0 = time.perf_counter()
        hists = {nd: self._node_hist(np.flatnonzero(node_of_used == nd), st, pool) for nd in nodes}
        # Splits may be requested for any node with rows (the guest derives the histogram of
        # the larger sibling itself).
        st.built = {int(x) for x in np.unique(msg.node_of_row).tolist() if x >= 0}
        t1 = time.perf_counter()
        self.ctx.metrics.add("secureboost.host.histogram_s", t1 - t0)
        # Cumulative sums over bins 0..n_bins-2 plus the missing slot, per feature.
        mod = self._mod
        nb = self.p.n_bins
        per_ct = max(1, self.pk.capacity_bits // st.width)
        packed: list[Any] = []
        keep = self.keep.tolist()
        for nd in nodes:
            flat: list[Any] = []
            for per_bin, kept in zip(hists[nd], keep, strict=True):
                acc = gmpy2.mpz(1)
                for c, k in zip(per_bin[: nb - 1], kept, strict=True):
                    acc = acc * c % mod
                    if k:
                        flat.append(acc)
                flat.append(per_bin[nb])
            packed += compress(flat, self.pk, st.width, per_ct, executor=pool)
        # Last operation before the histograms go back to the key's owner: uniform
        # re-randomisation (times a fresh r**n / h**r, r uniform, each used once). With the
        # DJN short-exponent randomiser a guest with smooth p - 1 (or, for one bit, any key
        # via Legendre symbols) would read, from each reply's random part, which of the rows
        # it encrypted with crafted randomness fell into the bin (SPEC.md).
        zeros = self._take_zeros(len(packed), pool)
        fresh = [gmpy2.mpz(c) * z % mod for c, z in zip(packed, zeros, strict=True)]
        per_node = int(self.keep.sum()) + self.n_features
        cts_per_node = -(-per_node // per_ct) if nodes else 0
        self.ctx.metrics.add("secureboost.host.compress_s", time.perf_counter() - t1)
        self.ctx.metrics.add("secureboost.host.histogram_ciphertexts", float(len(fresh)))
        return Histograms(
            tree=st.tree, depth=st.depth, nodes=msg.nodes, per_ct=per_ct,
            cts_per_node=cts_per_node, ct=ciphertexts_to_bytes(fresh, self.pk),
        )  # fmt: skip

    # ------------------------------------------------------------------ splits
    def split(self, msg: SplitRequest, st: _TreeState) -> SplitResult:
        if (
            msg.tree != st.tree
            or msg.depth != st.depth
            or st.node_of_row is None
            or st.left is not None
        ):
            raise ProtocolAbort("split request out of sequence", party=self.guest)
        left = np.zeros(self.n_rows, dtype=bool)
        for nd, j, t, ml, gain in zip(
            msg.nodes.tolist(), msg.features.tolist(), msg.bins.tolist(),
            msg.missing_left.tolist(), msg.gains.tolist(), strict=True,
        ):  # fmt: skip
            if nd not in st.built or j >= self.n_features or t > self.p.n_bins - 2:
                raise ProtocolAbort("split request for an unknown node or split", party=self.guest)
            f = int(self.perm[j])
            rows = np.flatnonzero(st.node_of_row == nd)
            b = self.bins[rows, f]
            left[rows] = np.where(b == self.p.n_bins, bool(ml), b <= t)
            edges = self.edges[f]
            threshold = float(edges[t]) if t < edges.size else float("inf")
            self.model.splits[(st.tree, nd)] = HostSplit(f, threshold, bool(ml))
            count, total = self.model.importance.get(f, (0, 0.0))
            self.model.importance[f] = (count + 1, total + float(gain))
            st.host_split.add(int(nd))
        st.left = left
        return SplitResult(tree=st.tree, depth=st.depth, left=np.packbits(left))

    # ------------------------------------------------------------------ main loop
    def run(self) -> HostModel:
        ch = self.ctx.channel
        setup = ch.recv(self.guest, "cmd", expect=Setup)
        if setup.n_rows != self.n_rows:
            raise ConfigError(
                f"host {self.ctx.party!r} has {self.n_rows} aligned rows but the guest has "
                f"{setup.n_rows}: run PSI alignment first"
            )
        if setup.n_bins != self.p.n_bins or setup.max_depth != self.p.max_depth:
            raise ProtocolAbort("guest and host disagree on n_bins/max_depth", party=self.guest)
        if setup.scheme != self.p.he_scheme:
            raise ProtocolAbort("guest uses another HE scheme than agreed", party=self.guest)
        if self.p.key_bits < 2048:
            self.p.check_keys(self.ctx.settings)
        if setup.scheme == "ou":
            # No well-formedness proof exists for an OU modulus (config.require_peer_ou_allowed).
            require_peer_ou_allowed(
                self.ctx.settings,
                f"SecureBoost host {self.ctx.party!r}, key of guest {self.guest!r}",
            )
        try:
            # Paillier: from_wire verifies the guest's proof that gcd(n, phi(n)) = 1.
            self.pk = load_public_key(
                setup.public_key,
                setup.scheme,
                self.rng,
                allow_small=self.p.key_bits < 2048,
                key_bits=self.p.key_bits,
            )
        except (DecodeError, ConfigError) as exc:
            raise ProtocolAbort(f"guest's public key refused: {exc}", party=self.guest) from None
        # The agreed size exactly (OU moduli may be up to 2 bits short): a larger key would
        # multiply this host's work.
        bits, agreed = int(self.pk.n).bit_length(), self.p.key_bits
        if not agreed - (2 if setup.scheme == "ou" else 0) <= bits <= agreed:
            raise ProtocolAbort(
                f"guest's key has {bits} bits, not the agreed key_bits={agreed}", party=self.guest
            )
        self._mod = gmpy2.mpz(self.pk.ciphertext_modulus)
        ch.send(
            self.guest,
            "info",
            HostInfo(n_features=self.n_features, thresholds=np.packbits(self.keep).tobytes()),
        )
        st: _TreeState | None = None
        with (
            ThreadPoolExecutor(self.p.n_jobs, thread_name_prefix="secureboost-host") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="secureboost-host-zeros") as bg,
        ):
            while True:
                self.ctx.cancel.raise_if_cancelled()
                msg = ch.recv(self.guest, "cmd")
                if isinstance(msg, TreeStart):
                    t0 = time.perf_counter()
                    st = _TreeState(msg, self.pk, self.p, self.n_rows, self.guest, pool)
                    self.ctx.metrics.add("secureboost.host.parse_s", time.perf_counter() - t0)
                elif isinstance(msg, BuildHistograms) and st is not None:
                    hist = self.build(msg, st, pool)
                    ch.send(self.guest, "hist", hist)
                    self._refill_zeros(hist.depth, len(hist.ct) // self.pk.ciphertext_bytes, bg)
                elif isinstance(msg, SplitRequest) and st is not None:
                    ch.send(self.guest, "part", self.split(msg, st))
                elif isinstance(msg, Finish):
                    ch.send(self.guest, "done", HostDone(n_splits=len(self.model.splits)))
                    return self.model
                else:
                    raise ProtocolAbort(
                        f"unexpected {type(msg).__name__} from the guest", party=self.guest
                    )


def run_host_train(
    ctx: Context, X: npt.NDArray[np.float64], params: BoostParams, guest: str,
    feature_names: list[str] | None = None,
) -> HostModel:  # fmt: skip
    """Run the host side of training; returns this host's lookup table and importance."""
    host = _Host(ctx, X, params, guest)
    host.model.feature_names = list(feature_names or [])
    return host.run()


def run_host_predict(
    ctx: Context, X: npt.NDArray[np.float64], model: HostModel, guest: str
) -> None:
    """Answer the guest's routing queries for the host's nodes (joint prediction)."""
    ch = ctx.channel
    start = ch.recv(guest, "cmd", expect=PredictStart)
    if start.n_rows != X.shape[0]:
        raise ConfigError(
            f"host {ctx.party!r} has {X.shape[0]} aligned rows but the guest has {start.n_rows}"
        )
    if X.shape[1] != model.n_features:
        raise ConfigError(f"the host model expects {model.n_features} features, got {X.shape[1]}")
    routes = _Routes(X.shape[0])
    while True:
        msg = ch.recv(guest, "cmd")
        if isinstance(msg, RouteQuery):
            try:
                left = model.go_left(X, msg.trees, msg.nodes, msg.rows)
            except ConfigError as exc:
                raise ProtocolAbort(f"bad routing query: {exc}", party=guest) from None
            routes.follow(msg.trees, msg.nodes, msg.rows, left, guest)
            ch.send(guest, "route", RouteAnswer(left=np.packbits(left), count=int(left.size)))
        elif isinstance(msg, Finish):
            ch.send(guest, "done", HostDone(n_splits=len(model.splits)))
            return
        else:
            raise ProtocolAbort(f"unexpected {type(msg).__name__} from the guest", party=guest)


class _Routes:
    """The host's record of where each row's prediction path went at its nodes: a guest may
    ask about a row only further down the path the host's earlier answers chose (each row
    once per query, strictly deeper, inside the subtree of the child answered). An honest
    guest does exactly that; without the check a guest could ask every (row, node) pair and
    read the left/right bit of every row at every host split instead of its path alone.
    Memory: one int32 per row and tree that has host nodes."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self._next: dict[int, npt.NDArray[np.int32]] = {}  # tree -> subtree root per row

    def follow(
        self,
        trees: npt.NDArray[Any],
        nodes: npt.NDArray[Any],
        rows: npt.NDArray[Any],
        left: npt.NDArray[np.bool_],
        guest: str,
    ) -> None:
        keys = trees.astype(np.int64) * self.n_rows + rows.astype(np.int64)
        if np.unique(keys).size != keys.size:
            raise ProtocolAbort("a routing query asks about a row twice in one tree", party=guest)
        nodes64 = nodes.astype(np.int64)
        for t in np.unique(trees):
            sel = np.flatnonzero(trees == t)
            root = self._next.setdefault(int(t), np.zeros(self.n_rows, dtype=np.int32))
            r, nd = root[rows[sel].astype(np.int64)].astype(np.int64), nodes64[sel]
            # heap numbering: node nd lies in the subtree of r iff (nd+1) >> (depth(nd) -
            # depth(r)) == r + 1, with depth(x) = bit_length(x + 1) - 1
            shift = _depth(nd) - _depth(r)
            inside = (shift >= 0) & (((nd + 1) >> np.maximum(shift, 0)) == r + 1)
            if not inside.all():
                raise ProtocolAbort(
                    "a routing query leaves the path the host's answers chose", party=guest
                )
            root[rows[sel].astype(np.int64)] = np.where(left[sel], 2 * nd + 1, 2 * nd + 2)


def _depth(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Depth of heap-numbered nodes (root 0 at depth 0)."""
    out: npt.NDArray[np.int64] = np.floor(np.log2(x.astype(np.float64) + 1.0)).astype(np.int64)
    return out
