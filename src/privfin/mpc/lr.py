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
from privfin.errors import ConfigError
from privfin.mpc import functions as F
from privfin.mpc.session import Session
from privfin.mpc.stats import _table
from privfin.mpc.tensor import SharedTensor, concatenate
from privfin.runtime import Context

__all__ = ["plaintext_logistic", "ss_lr", "train_logistic"]


def step_scale(learning_rate: float, batch: int) -> tuple[int, int]:
    """``(q, s)`` with ``q / 2**s`` the learning rate per row ``learning_rate / batch`` to
    11 significant bits (``2**10 <= q < 2**11``): the gradient step is one integer product and
    one truncation. The plaintext reference uses the same quantised rate."""
    c = learning_rate / batch
    if not c > 0:
        raise ConfigError("learning_rate must be positive")
    s = 10 - int(np.floor(np.log2(c)))
    return round(c * 2.0**s), s


def train_logistic(
    x: SharedTensor,
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
) -> SharedTensor:
    """Minibatch gradient descent for logistic regression on shared ``x`` (n x d) and ``y``.

    Returns the shared weights (``d + 1`` with the intercept last if ``fit_intercept``).
    ``shuffle_seed`` is public (all parties must use the same batches). ``sigmoid`` is a
    method of :func:`privfin.mpc.functions.sigmoid` (``auto``: piecewise-linear with a
    dealer, polynomial otherwise). ``average=True`` returns the average of the iterates of
    the last epoch (Polyak-Ruppert averaging: local additions and one truncation), which
    removes most of the minibatch noise of a constant learning rate.

    One iteration: ``z = X_b w`` (Beaver matmul, kept untruncated at scale 2f), the sigmoid
    (piecewise: one batched knot comparison fused with the segment products, one truncation),
    ``X_b^T (p - y_b)`` (Beaver matmul, untruncated) and the step ``q/2**s`` times it (plus
    the L2 term), truncated once: 12 rounds with the piecewise sigmoid, 4 with ``t1``.
    Requires ``|X_b^T (p - y_b)| * 2**(2f + 11) < 2**62`` (e.g. batch 1024, |x| <= 500 at
    f = 16) and, for the piecewise sigmoid's windowed comparison, logits ``|z| < 2**21``.
    """
    s = x.session
    n = x.shape[0]
    f = s.frac_bits
    if fit_intercept:
        x = concatenate([x, s.public(np.ones((n, 1)))], axis=1)
    d = x.shape[1]
    w = s.public(np.zeros(d))
    order = np.arange(n)
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    task = s.ctx.progress.task("ss_lr.epochs", total=epochs)
    acc: SharedTensor | None = None
    for epoch in range(epochs):
        s.ctx.cancel.raise_if_cancelled()
        if rng is not None:
            order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb = x[idx] if rng is not None else x[start : start + batch_size]
            yb = y[idx] if rng is not None else y[start : start + batch_size]
            z = s.matmul(xb, w, truncate=False)  # scale 2f
            p = F.sigmoid(z, sigmoid, fast_compare=True)  # scale f; needs |z| < 2**21
            grad = s.matmul(xb.T, p - yb, truncate=False)  # scale 2f
            q, sh = step_scale(learning_rate, len(idx))
            prod = grad * q  # integer product: the scale becomes 2f + sh
            raw = SharedTensor(s, prod.share, prod.shape, 2 * f + sh)
            if l2:
                decay = w.rescale(2 * f) * round(learning_rate * l2 * 2.0**sh)
                raw = raw + SharedTensor(s, decay.share, decay.shape, 2 * f + sh)
            w = w - s.truncate(raw, f + sh)
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
        :func:`privfin.mpc.functions.sigmoid` for each one's accuracy and rounds).
    average:
        Return the average of the last epoch's iterates (default false).
    reveal_model:
        ``true`` (default): result parties receive the coefficients. ``false``: the model stays
        secret-shared; each computing party returns (and stores as artifact ``ss_lr.w``) its
        share.
    triples, dealer, frac_bits, truncation, paillier_bits:
        See :class:`~privfin.mpc.session.Session`.

    Returns
    -------
    At a result party: ``{"features": [...], "coef": [...], "intercept": float}``. At a
    computing party with ``reveal_model=false``: ``{"features": [...], "share": [...]}``.
    Elsewhere ``None``.
    """
    s = Session.from_params(ctx, params)
    partition = params.get("partition", "vertical")
    spec = params.get("features")
    label = params.get("label")
    names: list[str] = []
    if partition == "vertical":
        if not isinstance(spec, Mapping) or not isinstance(label, Mapping):
            raise ConfigError(
                "vertical ss_lr needs features: {party: [columns]} and label: {party, column}"
            )
        parts = []
        for owner in sorted(spec):
            cols = [str(c) for c in spec[owner]]
            names += cols
            parts.append(s.share(owner, _load(inputs, cols, owner) if ctx.party == owner else None))
        x = concatenate(parts, axis=1)
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
    if y.shape != (x.shape[0],):
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
