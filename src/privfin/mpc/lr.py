"""SS-LR: logistic regression trained on secret-shared data, and the ``ss_lr`` component.

Data parties secret-share their features and labels (vertical: each holds some columns of the
same aligned rows; horizontal: each holds some rows of the same columns) to the computing
parties, which run minibatch gradient descent entirely on shares::

    z = X_b @ w;   p = sigmoid(z);   g = X_b.T @ (p - y_b) / b;   w -= lr * (g + l2 * w)

with the sigmoid of :func:`privfin.mpc.functions.sigmoid` (max error < 2e-3). Batches are
visited in a fixed order (or shuffled with a public seed), so runs differ only by the +-1 ulp
of truncation: the trained model and its AUC are stable run to run.

Security property (semi-honest): computing parties see shares and masked openings only; the
model is revealed only to result parties (``reveal_model=True``) or stays shared among the
computing parties for joint scoring. Leakage: the shapes (rows, features per party).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from privfin.data.validate import check_labels, column_of
from privfin.errors import ConfigError, ProtocolAbort
from privfin.mpc import functions as F
from privfin.mpc.ring import U64, encode_fixed
from privfin.mpc.session import Session, reuse_ots_wanted
from privfin.mpc.stats import _table
from privfin.mpc.tensor import PlainTensor, SharedTensor, concatenate
from privfin.runtime import Context

__all__ = ["plaintext_logistic", "ss_lr", "train_logistic"]


#: bits of the logits' ring above their scale 2f with ``t1`` and plaintext blocks: valid for
#: ``|z| < 2**(_LOGIT_HEADROOM - 2)`` (the truncation needs ``|x| < 2**(ring - 2)``)
_LOGIT_HEADROOM = 16
#: bits of the gradient's ring above its scale 2f (plaintext blocks, ``ot``): valid for
#: ``|X_b^T (p - y_b)| < 2**19``, the bound the step's truncation already requires
_GRAD_HEADROOM = 21
#: ``q / 2**_RATE_BITS`` is the quantised rate's mantissa in [0.5, 1) (:func:`step_scale`)
_RATE_BITS = 11
#: most OTs (bits × elements of the plaintext blocks, both owners) kept for reuse
#: (``reuse_ots``): 48 bytes each over the two parties, 1.6 GB at the cap; larger jobs take
#: fresh OTs per product (the decision uses public shapes and announced bits only)
MAX_FIXED_OTS = 1 << 25


def step_scale(learning_rate: float, batch: int) -> tuple[int, int]:
    """``(q, s)`` with ``q / 2**s`` the learning rate per row ``learning_rate / batch`` to
    11 significant bits (``2**10 <= q < 2**11``): the gradient step is one integer product and
    one truncation. The plaintext reference uses the same quantised rate."""
    c = learning_rate / batch
    if not c > 0:
        raise ConfigError("learning_rate must be positive")
    s = 10 - int(np.floor(np.log2(c)))
    return round(c * 2.0**s), s


class _Design:
    """The design matrix as column blocks, in column order: shared blocks, blocks a computing
    party holds in plaintext (:class:`PlainTensor`) and the intercept's column of ones.

    Without plaintext blocks it is one shared matrix (the intercept a public column) and
    the products are Beaver matrix products. With them (two computing parties, the ``ot``
    provider) ``X_b w`` is the sum of the plaintext blocks' products (one OT exchange for
    both owners, :meth:`Session.plain_matmul`), one Beaver product for the shared blocks
    (if any) and the intercept (local); ``X_b^T e`` likewise, block by block."""

    def __init__(
        self,
        blocks: Sequence[SharedTensor | PlainTensor],
        intercept: bool,
        s: Session,
        *,
        reuse: bool = False,
        block: int = 1,
    ) -> None:
        self.s = s
        self.blocks = list(blocks)
        self.full = list(blocks)
        self.intercept = intercept
        self.plain = any(isinstance(b, PlainTensor) for b in self.blocks)
        self.rows = self.blocks[0].shape[0]
        if any(b.shape[0] != self.rows or len(b.shape) != 2 for b in self.blocks):
            raise ConfigError("the feature blocks do not have the same number of rows")
        #: reused OTs on the plaintext blocks' bits (:meth:`Session.plain_fix`), extended
        #: once for every row; ``sel`` the rows of this batch
        self.fixed: object | None = None
        plain_blocks = [b for b in self.blocks if isinstance(b, PlainTensor)]
        self.reuse = (
            reuse
            and self.plain
            and s.engine.plain_fixed
            and all(b.bits is not None for b in plain_blocks)
            # kept in memory (48 bytes per OT over both parties): beyond, fresh OTs
            and sum(int(b.bits or 0) * b.shape[0] * b.shape[1] for b in plain_blocks)
            <= MAX_FIXED_OTS
        )
        self.sel: slice | np.ndarray = slice(0, self.rows)
        if self.reuse:
            plain = [b for b in self.blocks if isinstance(b, PlainTensor)]
            self.fixed = s.plain_fix(plain, block)
        if not self.plain:
            shared = [b for b in self.blocks if isinstance(b, SharedTensor)]
            if intercept:
                shared.append(s.public(np.ones((self.rows, 1))))
            self.x = concatenate(shared, axis=1) if len(shared) > 1 else shared[0]
        #: rss3: the successor's component of X, exchanged once (then only w and e travel)
        self.x_next: U64 | None = None
        self.paired = not self.plain and s.engine.replicated
        if self.paired:
            self.x_next = s.engine.rss_next(self.x.share, self.x.shape)
        self.cols = sum(b.shape[1] for b in self.blocks) + int(intercept)

    def take(self, key: Any) -> _Design:
        """The rows ``key`` (a slice or an index array)."""
        out = _Design.__new__(_Design)
        out.__dict__.update(self.__dict__)
        if self.plain:
            out.blocks = [b[key] for b in self.blocks]
            out.rows = out.blocks[0].shape[0]
            out.sel = key if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        else:
            out.x = self.x[key]
            out.rows = out.x.shape[0]
            if self.x_next is not None:
                out.x_next = self.x_next[key]
        return out

    def _paired(self, x: SharedTensor, x_next: U64 | None, y: SharedTensor) -> SharedTensor:
        m, k = x.shape
        z = self.s.engine.rss_matmul_paired(x.share, x_next, y.share, m, k, 1)
        return SharedTensor(
            self.s, None if z is None else z.reshape(m), (m,), x.frac_bits + y.frac_bits
        )

    def _spans(self) -> list[tuple[SharedTensor | PlainTensor, int, int]]:
        out, at = [], 0
        for b in self.blocks:
            out.append((b, at, at + b.shape[1]))
            at += b.shape[1]
        return out

    def ring_bits(self, sigmoid: str) -> int:
        """The ring of the logits ``X_b w``: ``2 f + 16`` bits when they go straight into
        ``t1``'s truncation and their products are Gilboa products with plaintext blocks
        (``ot``: fewer OTs and correction bits, see :meth:`Engine.trunc`; valid for logits
        ``|z| < 2**14``), else 64."""
        s = self.s
        ring = 2 * s.frac_bits + _LOGIT_HEADROOM
        if sigmoid != "t1" or not self.plain or ring >= 64 or not s.engine.ring_trunc:
            return 64
        return ring

    def forward(self, w: SharedTensor, ring_bits: int = 64) -> SharedTensor:
        """``X_b w``, untruncated (scale ``2 f`` for ``w`` at ``f``); with ``ring_bits <
        64`` correct modulo ``2**ring_bits`` only (plaintext blocks)."""
        s = self.s
        if self.paired:
            return self._paired(self.x, self.x_next, w)
        if not self.plain:
            return s.matmul(self.x, w, truncate=False)
        spans = self._spans()
        shared = [(b, lo, hi) for b, lo, hi in spans if isinstance(b, SharedTensor)]
        plain = [(b, w[lo:hi]) for b, lo, hi in spans if isinstance(b, PlainTensor)]
        if self.reuse:
            terms = s.plain_fixed_matmul(
                self.fixed,
                self.sel,
                self._fixed_pairs(plain),
                transpose=False,
                ring_bits=ring_bits,
            )
        else:
            terms = s.plain_matmul(plain, ring_bits=ring_bits)
        if shared:
            xs = concatenate([b for b, _, _ in shared], axis=1)
            ws = concatenate([w[lo:hi] for _, lo, hi in shared])
            terms.append(s.matmul(xs, ws, truncate=False))
        z = terms[0]
        for t in terms[1:]:
            z = z + t
        if self.intercept:  # the column of ones at scale f times the last weight
            z = z + w[self.cols - 1 :].rescale(z.frac_bits)
        return z

    def _fixed_pairs(
        self, pairs: list[tuple[PlainTensor, SharedTensor]]
    ) -> list[tuple[PlainTensor, PlainTensor, SharedTensor]]:
        """``(full block, its rows of this batch, operand)`` per pair, for the OT reuse."""
        full = {id(t): f for t, f in zip(self.blocks, self.full, strict=True)}
        out = []
        for t, y in pairs:
            f = full[id(t)]
            assert isinstance(f, PlainTensor)
            out.append((f, t, y))
        return out

    def grad_ring_bits(self) -> int:
        """The ring of the gradient ``X_b^T e`` with plaintext blocks and ``ot``: ``2 f + 21``
        bits (``|X_b^T e| < 2**19``, the bound the step already needs), truncated by ``f``
        into Z_2^64 before the step's rate multiplies it; else 64."""
        ring = 2 * self.s.frac_bits + _GRAD_HEADROOM + (_RATE_BITS if self.reuse else 0)
        if not self.plain or ring >= 64 or not self.s.engine.ring_trunc:
            return 64
        return ring

    def can_fold_rate(self) -> bool:
        """Whether :meth:`backward` can fold the step's rate ``q / 2**11`` into the
        plaintext blocks (every block plaintext, ``f >= 11``)."""
        return (
            self.plain
            and all(isinstance(b, PlainTensor) for b in self.blocks)
            and self.s.frac_bits >= _RATE_BITS
        )

    def backward(
        self, e: SharedTensor, ring_bits: int = 64, rate: int | None = None
    ) -> SharedTensor:
        """``X_b^T e``, untruncated, one entry per column (the intercept's last); with
        ``ring_bits < 64`` correct modulo ``2**ring_bits`` only (plaintext blocks).

        ``rate`` (``q`` of :func:`step_scale`, :meth:`can_fold_rate`): ``(q / 2**11) X_b^T e``
        instead, the same scale and magnitude bound: each owner multiplies its plaintext
        block by ``q / 2**11`` locally (rounded to its fixed point: an error of at most
        ``2**-(f+1)`` per element, the size of the encoding's own) and the intercept's
        ``Σ e`` is multiplied exactly by ``q·2**(f−11)``, so the step needs a single
        truncation."""
        s = self.s
        if rate is not None:
            return self._backward_rate(e, ring_bits, rate)
        if self.paired:
            return self._paired(self.x.T, None if self.x_next is None else self.x_next.T, e)
        if not self.plain:
            return s.matmul(self.x.T, e, truncate=False)
        spans = self._spans()
        shared = [b for b, _, _ in spans if isinstance(b, SharedTensor)]
        plain = [b for b, _, _ in spans if isinstance(b, PlainTensor)]
        if self.reuse:
            products = s.plain_fixed_matmul(
                self.fixed,
                self.sel,
                self._fixed_pairs([(b, e) for b in plain]),
                transpose=True,
                ring_bits=ring_bits,
            )
        else:
            products = s.plain_matmul([(b.T, e) for b in plain], ring_bits=ring_bits)
        got = {id(b): t for b, t in zip(plain, products, strict=True)}
        if shared:
            g = s.matmul(concatenate(shared, axis=1).T, e, truncate=False)
            at = 0
            for b in shared:
                got[id(b)] = g[at : at + b.shape[1]]
                at += b.shape[1]
        parts = [got[id(b)] for b in self.blocks]
        if self.intercept:
            total = e.sum().reshape(1)
            parts.append(total.rescale(total.frac_bits + s.frac_bits))
        return concatenate(parts)

    def _backward_rate(self, e: SharedTensor, ring_bits: int, q: int) -> SharedTensor:
        s = self.s
        if not self.can_fold_rate() or not 0 < q < 1 << _RATE_BITS:
            raise ConfigError("the rate folds only into plaintext blocks at f >= 11")
        plain = [b for b in self.blocks if isinstance(b, PlainTensor)]
        parts = s.plain_matmul([(_rate_scaled(b, q).T, e) for b in plain], ring_bits=ring_bits)
        if self.intercept:
            total = e.sum().reshape(1)
            k = q << (s.frac_bits - _RATE_BITS)
            share = None if total.share is None else total.share * np.uint64(k)
            parts.append(SharedTensor(s, share, (1,), total.frac_bits + s.frac_bits))
        return concatenate(parts)


def _rate_scaled(block: PlainTensor, q: int) -> PlainTensor:
    """``round(X · q / 2**11)`` of a plaintext block (at its owner; the shape elsewhere)."""
    if block.value is None:
        return block
    v = block.value.view(np.int64) * np.int64(q) + np.int64(1 << (_RATE_BITS - 1))
    return PlainTensor(
        block.owner, (v >> np.int64(_RATE_BITS)).view(np.uint64), block.shape, block.frac_bits
    )


def _train_rss3_t1(
    s: Session,
    design: _Design,
    y: SharedTensor,
    iters: Sequence[tuple[int, Any]],
    epochs: int,
    *,
    learning_rate: float,
    l2: float,
    average: bool,
) -> SharedTensor:
    """:func:`train_logistic` with ``t1`` on replicated sharing in **two rounds per
    iteration** (same arithmetic, same truncations).

    ``X``'s and ``y``'s pairs travel once. The weights are kept as ``W`` (pairs held) minus
    the last step's truncated update ``u`` (additive components only), and the step's
    truncation is fused with the *next* batch's product ``X_{t+1}·u``
    (:meth:`Engine.rss_trunc_tmatmul_ex` on ``X_{t+1}ᵀ``), so the next logits
    ``X_{t+1}·W − X_{t+1}·u`` need no pair exchange; ``u``'s pair exchange rides on the next
    round (the logits' truncation, itself fused with ``X_tᵀ·``, see
    :func:`privfin.mpc.lr._Design`). Rounds: the logits' truncation-product and the step's
    truncation-product per iteration, plus one for ``X``'s pair and one for ``y``'s."""
    eng = s.engine
    f = s.frac_bits
    d = design.cols
    comp = eng.is_compute
    y_next = eng.rss_next(y.share, y.shape)
    half = encode_fixed(np.array([0.5]), f)[0]
    big_w = np.zeros(d, dtype=np.uint64) if comp else None
    big_wn = np.zeros(d, dtype=np.uint64) if comp else None
    pend_u: U64 | None = None  # own component of the last step's update, not yet paired
    pend_z: U64 | None = None  # X_t · (−u_{t−1}), additive
    acc: U64 | None = None
    count = 0
    task = s.ctx.progress.task("ss_lr.epochs", total=epochs)
    nxt_xb = design.take(iters[0][1])
    for t, (epoch, sel) in enumerate(iters):
        if t == 0 or iters[t - 1][0] != epoch:
            s.ctx.cancel.raise_if_cancelled()
        xb = nxt_xb
        b = xb.rows
        x, xn = xb.x.share, xb.x_next
        zl = eng.rss_local_matmul(x, xn, big_w, big_wn, b, d, 1)
        z = None if zl is None else np.asarray(zl.reshape(b), dtype=np.uint64)
        if z is not None and pend_z is not None:
            z = z + pend_z
        got = eng.rss_trunc_tmatmul_ex(
            z, x, xn, b, d, f + 3, pair_send=pend_u, pair_size=d if t > 0 else 0
        )
        yb = y[sel]
        own = nxt = None
        if comp:
            assert yb.share is not None and y_next is not None and x is not None
            assert big_w is not None and big_wn is not None and got is not None
            if t > 0:
                assert pend_u is not None and got[2] is not None
                big_w = big_w - pend_u  # W := W − u_{t−1}, now with its pair
                big_wn = big_wn - got[2]
            own = -yb.share + (half if eng.index == 0 else 0)  # 0.5 − y_b: the public 0.5
            nxt = -np.asarray(y_next[sel], np.uint64) + (half if eng.index == 2 else 0)
        g2 = eng.rss_local_matmul(
            None if x is None else x.T, None if xn is None else xn.T, own, nxt, d, b, 1
        )
        q, sh = step_scale(learning_rate, b)
        raw: U64 | None = None
        if comp:
            assert got is not None and g2 is not None and big_w is not None
            raw = (got[0] + g2.reshape(d)) * np.uint64(q)  # scale 2f + sh
            if l2:
                decay = np.uint64(round(learning_rate * l2 * 2.0**sh)) << np.uint64(f)
                raw = raw + big_w * decay
        if t + 1 < len(iters):
            nxt_xb = design.take(iters[t + 1][1])
            b2 = nxt_xb.rows
            xs, xns = nxt_xb.x.share, nxt_xb.x_next
            step = eng.rss_trunc_tmatmul_ex(
                raw,
                None if xs is None else xs.T,
                None if xns is None else xns.T,
                d,
                b2,
                f + sh,
            )
            if step is not None:
                pend_z = -step[0]
                pend_u = step[1]
        else:
            pend_u = eng.trunc(raw, (d,), f + sh)
        if average and epoch == epochs - 1:
            count += 1
            if comp:
                assert big_w is not None and pend_u is not None
                acc = big_w - pend_u if acc is None else acc + (big_w - pend_u)
        if t + 1 == len(iters) or iters[t + 1][0] != epoch:
            task.advance()
    if average:
        return SharedTensor(s, acc, (d,), f) * (1.0 / count)
    final = None if big_w is None or pend_u is None else big_w - pend_u
    return SharedTensor(s, final, (d,), f)


def _train_masked(
    s: Session,
    design: _Design,
    y: SharedTensor,
    iters: Sequence[tuple[int, Any]],
    epochs: int,
    *,
    learning_rate: float,
    l2: float,
    average: bool,
    sigmoid: str,
) -> SharedTensor:
    """:func:`train_logistic` with the dealer's masked design (:meth:`Engine.mask_design`):
    **9 rounds per iteration** with the piecewise sigmoid (was 12; 7 with ``and_fan_in: 4``),
    2 with ``t1`` (was 4); same arithmetic and truncations.

    ``X − A`` and ``y − β`` are opened once; each iteration then opens only ``k``-vectors and
    the sigmoid's own values: the step's truncation rides on the next batch's product
    (:meth:`Engine.design_forward`: ``c`` and ``V − B`` in one round) and the sigmoid's
    truncation carries the gradient ``X_bᵀ (p − y_b)`` (:meth:`Engine.design_backward`: no
    opening besides ``c``). The last step is truncated alone (one more round in all)."""
    eng = s.engine
    f = s.frac_bits
    n, d = design.x.shape
    h = eng.mask_design(design.x.share, y.share, n, d)
    w = s.public(np.zeros(d))
    raw: SharedTensor | None = None
    bits = 0
    acc: SharedTensor | None = None
    count = 0
    task = s.ctx.progress.task("ss_lr.epochs", total=epochs)
    half = int(encode_fixed(np.array([0.5]), f)[0])
    for t, (epoch, sel) in enumerate(iters):
        if t == 0 or iters[t - 1][0] != epoch:
            s.ctx.cancel.raise_if_cancelled()
        m = h.count(sel)
        got = eng.design_forward(h, sel, w.share, None if raw is None else raw.share, bits)
        if raw is not None:
            w = SharedTensor(s, None if got is None else got[0], (d,), f)
            if average and iters[t - 1][0] == epochs - 1:
                acc = w if acc is None else acc + w
                count += 1
        z = SharedTensor(s, None if got is None else got[1], (m,), 2 * f)
        if sigmoid == "t1":  # 0.5 + z/8: one truncation from 2f to f - 3, plus 0.5
            sc, cut, offset = z, f + 3, half
        else:
            sc = F.sigmoid_untruncated(z, fast_compare=True)  # scale 2f + 16; |z| < 2**21
            cut, offset = sc.frac_bits - f, 0
        yb = y[sel]
        back = eng.design_backward(h, sel, sc.share, yb.share, cut, offset)
        grad = SharedTensor(s, None if back is None else back[1], (d,), 2 * f)
        q, sh = step_scale(learning_rate, m)
        gs = grad.frac_bits
        prod = grad * q  # integer product: the scale becomes gs + sh
        raw = SharedTensor(s, prod.share, prod.shape, gs + sh)
        if l2:
            decay = w.rescale(gs) * round(learning_rate * l2 * 2.0**sh)
            raw = raw + SharedTensor(s, decay.share, decay.shape, gs + sh)
        bits = gs - f + sh
        if t + 1 == len(iters) or iters[t + 1][0] != epoch:
            task.advance()
    assert raw is not None
    w = w - s.truncate(raw, bits)
    if average:
        acc = w if acc is None else acc + w
        return acc * (1.0 / (count + 1))
    return w


def train_logistic(
    x: SharedTensor | Sequence[SharedTensor | PlainTensor],
    y: SharedTensor,
    *,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 0.5,
    l2: float = 0.0,
    fit_intercept: bool = True,
    shuffle_seed: int | None = None,
    sigmoid: str = "auto",
    average: bool = False,
    reuse_ots: bool = False,
    masked: bool = True,
) -> SharedTensor:
    """Minibatch gradient descent for logistic regression on shared ``x`` (n x d) and ``y``.

    Returns the shared weights (``d + 1`` with the intercept last if ``fit_intercept``).
    ``shuffle_seed`` is public (all parties must use the same batches). ``sigmoid`` is a
    method of :func:`privfin.mpc.functions.sigmoid` (``auto``: piecewise-linear with a
    dealer, polynomial otherwise). ``average=True`` returns the average of the iterates of
    the last epoch (Polyak-Ruppert averaging: local additions and one truncation), which
    removes most of the minibatch noise of a constant learning rate.

    ``x`` is one shared matrix or column blocks (shared ones, and :class:`PlainTensor` blocks a
    computing party holds in plaintext: products through OT with the ``ot`` provider, see
    :class:`_Design`). One iteration: ``z = X_b w`` (Beaver matmul, or Gilboa products for
    plaintext blocks, or a replicated product with ``rss3``, whose ``X`` pair travels once;
    kept untruncated at scale 2f), the sigmoid
    (piecewise: one batched knot comparison fused with the segment products, one truncation),
    ``X_b^T (p - y_b)`` (Beaver matmul, untruncated) and the step ``q/2**s`` times it (plus
    the L2 term), truncated once: 12 rounds with the piecewise sigmoid, 4 with ``t1``. With
    the dealer (``masked``, default) ``X`` and ``y`` are opened once masked and both
    truncations ride on other openings (:func:`_train_masked`): 9 rounds (7 with
    ``and_fan_in: 4``), 2 with ``t1``.
    Requires ``|X_b^T (p - y_b)| * 2**(2f + 11) < 2**62`` (e.g. batch 1024, |x| <= 500 at
    f = 16) and, for the piecewise sigmoid's windowed comparison, logits ``|z| < 2**21``.

    With plaintext blocks and ``ot`` the gradient is a product modulo ``2**(2f + 21)``
    (:meth:`_Design.grad_ring_bits`): with every block plaintext the rate's mantissa is
    folded into it (:meth:`_Design.backward`) and one truncation makes the step; with a
    shared block it is truncated by ``f`` into Z_2^64 before the rate multiplies it (one
    more round per iteration). With ``t1`` the logits are a product
    modulo ``2**(2f + 16)``, which requires ``|z| < 2**14`` (src/privfin/mpc/SPEC.md,
    "Products modulo a smaller ring").
    """
    s = y.session
    assert isinstance(s, Session)
    design = _Design(
        [x] if isinstance(x, SharedTensor) else x,
        fit_intercept,
        s,
        reuse=reuse_ots,
        block=batch_size,
    )
    n = design.rows
    f = s.frac_bits
    w = s.public(np.zeros(design.cols))
    order = np.arange(n)
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    # the truncations of every iteration are known now: pairs made interactively (ot) are
    # generated ahead in bulk, off the online path (the step's, and t1's of the logits)
    ring = design.ring_bits(sigmoid)
    g_ring = design.grad_ring_bits()
    fold = g_ring < 64 and design.can_fold_rate() and not design.reuse
    plan: list[tuple[int, ...]] = []
    for _ in range(epochs):
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            if sigmoid == "t1":
                plan.append((b, f + 3) if ring == 64 else (b, f + 3, ring))
            sh = step_scale(learning_rate, b)[1]
            if design.reuse:  # one truncation of q·X^T e by f + sh
                plan.append(
                    (design.cols, f + sh) if g_ring == 64 else (design.cols, f + sh, g_ring)
                )
            elif g_ring < 64 and fold:  # one truncation from Z_2^g_ring
                plan.append((design.cols, f + sh - _RATE_BITS, g_ring))
            elif g_ring < 64:  # the gradient to scale f, then the step's truncation by sh
                plan += [(design.cols, f, g_ring), (design.cols, sh)]
            else:
                plan.append((design.cols, f + sh))
    s.engine.prefetch_trunc(plan)
    task = s.ctx.progress.task("ss_lr.epochs", total=epochs)
    if design.paired and sigmoid == "t1":
        # rss3 with t1: two rounds per iteration (_train_rss3_t1)
        iters = []
        for epoch in range(epochs):
            if rng is not None:
                order = rng.permutation(n)
            for start in range(0, n, batch_size):
                sel = order[start : start + batch_size] if rng is not None else None
                iters.append((epoch, sel if sel is not None else slice(start, start + batch_size)))
        return _train_rss3_t1(
            s, design, y, iters, epochs, learning_rate=learning_rate, l2=l2, average=average
        )
    method = ("piecewise" if s.engine.packed_bits else "poly") if sigmoid == "auto" else sigmoid
    if (
        masked
        and s.engine.masked_design
        and not design.plain
        and not design.paired
        and method in ("piecewise", "t1")
    ):
        # the dealer's masked design: X and y opened once, truncations fused (_train_masked)
        keys = []
        for epoch in range(epochs):
            if rng is not None:
                order = rng.permutation(n)
            for start in range(0, n, batch_size):
                sel = order[start : start + batch_size] if rng is not None else None
                keys.append((epoch, sel if sel is not None else slice(start, start + batch_size)))
        return _train_masked(
            s,
            design,
            y,
            keys,
            epochs,
            learning_rate=learning_rate,
            l2=l2,
            average=average,
            sigmoid=method,
        )
    acc: SharedTensor | None = None
    for epoch in range(epochs):
        s.ctx.cancel.raise_if_cancelled()
        if rng is not None:
            order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb = design.take(idx if rng is not None else slice(start, start + batch_size))
            yb = y[idx] if rng is not None else y[start : start + batch_size]
            z = xb.forward(w, ring)  # scale 2f
            if ring < 64:  # t1 = 0.5 + z/8: one truncation from Z_2^ring to scale f
                cut = s.truncate(z, z.frac_bits - f + 3, ring_bits=ring)
                p = SharedTensor(s, cut.share, cut.shape, f) + 0.5
            else:
                p = F.sigmoid(z, sigmoid, fast_compare=True)  # scale f; needs |z| < 2**21
            q, sh = step_scale(learning_rate, len(idx))
            if design.reuse:  # X_b^T (q·e): the rate's integer q joins e (exact), ring g_ring
                grad = xb.backward((p - yb) * q, g_ring)  # q X_b^T e at scale 2f
                gs = grad.frac_bits
                raw = SharedTensor(s, grad.share, grad.shape, gs + sh)
                if l2:
                    decay = w.rescale(gs) * round(learning_rate * l2 * 2.0**sh)
                    raw = raw + SharedTensor(s, decay.share, decay.shape, gs + sh)
                w = w - s.truncate(raw, gs - f + sh, ring_bits=g_ring)
                if average and epoch == epochs - 1:
                    acc = w if acc is None else acc + w
                continue
            if fold:  # (q/2**11) X_b^T e, one truncation by f + sh - 11 from Z_2^g_ring
                grad = xb.backward(p - yb, g_ring, rate=q)  # scale 2f
                shift = f + sh - _RATE_BITS
                # the update (q / 2**sh) X_b^T e at scale f + shift (= 2f + sh - 11)
                raw = SharedTensor(s, grad.share, grad.shape, f + shift)
                if l2:
                    decay = w * round(learning_rate * l2 * 2.0**shift)
                    raw = raw + SharedTensor(s, decay.share, decay.shape, f + shift)
                w = w - s.truncate(raw, shift, ring_bits=g_ring)
                if average and epoch == epochs - 1:
                    acc = w if acc is None else acc + w
                continue
            grad = xb.backward(p - yb, g_ring)  # scale 2f
            if g_ring < 64:  # from Z_2^g_ring to scale f first (one more round)
                grad = s.truncate(grad, f, ring_bits=g_ring)
            gs = grad.frac_bits
            prod = grad * q  # integer product: the scale becomes gs + sh
            raw = SharedTensor(s, prod.share, prod.shape, gs + sh)
            if l2:
                decay = w.rescale(gs) * round(learning_rate * l2 * 2.0**sh)
                raw = raw + SharedTensor(s, decay.share, decay.shape, gs + sh)
            w = w - s.truncate(raw, gs - f + sh)
            if average and epoch == epochs - 1:
                acc = w if acc is None else acc + w
        task.advance()
    if acc is not None:
        return acc * (1.0 / len(range(0, n, batch_size)))
    return w


def plaintext_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 0.5,
    l2: float = 0.0,
    fit_intercept: bool = True,
    average: bool = False,
) -> np.ndarray:
    """The plaintext reference of :func:`train_logistic` (same schedule, exact sigmoid)."""
    n = x.shape[0]
    if fit_intercept:
        x = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(x.shape[1])
    acc = np.zeros_like(w)
    for epoch in range(epochs):
        for start in range(0, n, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            p = 1.0 / (1.0 + np.exp(-(xb @ w)))
            q, sh = step_scale(learning_rate, len(xb))
            w = w - (q / 2.0**sh) * (xb.T @ (p - yb)) - learning_rate * l2 * w
            if average and epoch == epochs - 1:
                acc += w
    if average:
        return acc / len(range(0, n, batch_size))
    return w


def _load(inputs: Mapping[str, Any], cols: Sequence[str], party: str) -> np.ndarray:
    return _table(inputs, cols, party)


def _labels(inputs: Mapping[str, Any], col: str, party: str) -> np.ndarray:
    """The label column: every row 0 or 1 (:class:`~privfin.errors.InputError` otherwise)."""
    table = inputs.get("table")
    if table is None:
        raise ConfigError(f"data party {party!r} has no 'table' input")
    source = f"data party {party!r}: input 'table'"
    values = column_of(table, col, what="label", source=source)
    return check_labels(values, col, source="input 'table'")


def ss_lr(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """Train SS-LR on secret-shared data.

    Parameters (``params``)
    -----------------------
    partition:
        ``"vertical"``: ``features`` ``{party: [column, ...]}`` and ``label``
        ``{"party": p, "column": c}``. ``"horizontal"``: ``features`` ``[column, ...]`` and
        ``label`` ``column`` held by every data party.
    epochs, batch_size, learning_rate, l2, fit_intercept, shuffle_seed:
        Training parameters (defaults 5, 256, 0.5, 0, true, none).
    sigmoid:
        ``auto`` (default), ``piecewise``, ``poly``, ``t1`` or ``t3`` (see
        :func:`privfin.mpc.functions.sigmoid` for each one's accuracy and rounds). With
        ``t1`` and ``ot`` the logits are products modulo ``2**(2f + 16)``: valid for
        ``|x·w| < 2**14``.
    average:
        Return the average of the last epoch's iterates (default false).
    reuse_ots:
        With ``ot``, each computing party's plaintext columns choose the OTs of the products
        with their bits, extended once for all rows and reused by every product (forward,
        backward, every epoch) under fresh hash tweaks (about 16 % fewer bytes); ``false``:
        the shared operand's bits choose fresh OTs per product (src/privfin/mpc/SPEC.md).
        Default: reused when the job states ``feature_bound``, fresh otherwise — so nothing
        about the data is announced unless asked for.
    feature_bound:
        With ``reuse_ots``: every feature value of a computing party is ``|x| < bound``
        (public; the owner refuses its data otherwise, before sending anything). With
        ``reuse_ots: true`` and no bound, each owner announces the bit count of its own
        largest ``|x|`` (``⌈log2 max|x|⌉`` of its columns: a leak the job asked for).
    reveal_model:
        ``true`` (default): result parties receive the coefficients. ``false``: the model stays
        secret-shared; each computing party returns (and stores as artifact ``ss_lr.w``) its
        share.
    triples, dealer, frac_bits, truncation, paillier_bits, and_fan_in:
        See :class:`~privfin.mpc.session.Session`.

    Returns
    -------
    At a result party: ``{"features": [...], "coef": [...], "intercept": float}``. At a
    computing party with ``reveal_model=false``: ``{"features": [...], "share": [...]}``.
    Elsewhere ``None``.
    """
    partition = params.get("partition", "vertical")
    spec = params.get("features")
    raw_bound = params.get("feature_bound")
    bound = None if raw_bound is None else float(raw_bound)
    if bound is not None and isinstance(spec, Mapping) and ctx.party in spec:
        # a feature owner checks the job's bound on its own data before anything is sent
        # (the session's setup included)
        own = _load(inputs, [str(c) for c in spec[ctx.party]], ctx.party)
        if own.size and not float(np.abs(own).max()) < bound:
            raise ConfigError(
                f"data party {ctx.party!r}: a value of its features exceeds the job's "
                f"feature_bound {bound}"
            )
    s = Session.from_params(ctx, params)
    reuse = reuse_ots_wanted(params, bound) and s.engine.plain_fixed
    label = params.get("label")
    names: list[str] = []
    if partition == "vertical":
        if not isinstance(spec, Mapping) or not isinstance(label, Mapping):
            raise ConfigError(
                "vertical ss_lr needs features: {party: [columns]} and label: {party, column}"
            )
        parts: list[SharedTensor | PlainTensor] = []
        for owner in sorted(spec):
            cols = [str(c) for c in spec[owner]]
            names += cols
            value = _load(inputs, cols, owner) if ctx.party == owner else None
            if s.engine.plain_products and owner in s.roles.compute:
                # a computing party's own columns stay with it in plaintext (OT products)
                block = s.plain_input(owner, value, bits=reuse, bound=bound)
                if block.shape[1] != len(cols):
                    raise ProtocolAbort(
                        f"data party {owner!r} announced {block.shape[1]} columns, the job "
                        f"declares {len(cols)}",
                        party=owner,
                    )
                parts.append(block)
            else:
                parts.append(s.share(owner, value))
        x: SharedTensor | list[SharedTensor | PlainTensor] = parts
        lp, lc = str(label["party"]), str(label["column"])
        y = s.share(lp, _labels(inputs, lc, lp) if ctx.party == lp else None)
    elif partition == "horizontal":
        if not isinstance(spec, Sequence) or isinstance(spec, str) or not isinstance(label, str):
            raise ConfigError("horizontal ss_lr needs features: [columns] and label: column")
        names = [str(c) for c in spec]
        xs, ys = [], []
        for owner in s.roles.data:
            mine = ctx.party == owner
            xs.append(s.share(owner, _load(inputs, names, owner) if mine else None))
            ys.append(s.share(owner, _labels(inputs, label, owner) if mine else None))
        x = concatenate(xs, axis=0)
        y = concatenate(ys, axis=0)
    else:
        raise ConfigError(f"partition must be 'vertical' or 'horizontal', got {partition!r}")
    rows = x.shape[0] if isinstance(x, SharedTensor) else x[0].shape[0]
    if y.shape != (rows,):
        raise ConfigError("labels and features do not have the same number of rows")
    fit_intercept = bool(params.get("fit_intercept", True))
    w = train_logistic(
        x,
        y,
        epochs=int(params.get("epochs", 5)),
        batch_size=int(params.get("batch_size", 256)),
        learning_rate=float(params.get("learning_rate", 0.5)),
        l2=float(params.get("l2", 0.0)),
        fit_intercept=fit_intercept,
        shuffle_seed=params.get("shuffle_seed"),
        sigmoid=str(params.get("sigmoid", "auto")),
        average=bool(params.get("average", False)),
        reuse_ots=reuse,
    )
    ctx.metrics.set("ss_lr.rounds", float(s.engine.rounds))
    if not params.get("reveal_model", True):
        if w.share is None:
            return None
        ctx.artifacts.put("ss_lr.w", w.share.tobytes())
        return {"features": names, "share": w.share.tolist(), "frac_bits": w.frac_bits}
    out: Any = None
    for party in s.roles.result:
        got = w.reveal(party, label="ss_lr.w")
        if got is not None:
            coef = got[:-1] if fit_intercept else got
            out = {
                "features": names,
                "coef": coef.tolist(),
                "intercept": float(got[-1]) if fit_intercept else 0.0,
            }
    return out
