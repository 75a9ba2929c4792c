"""Gradient inversion: the server reconstructs a client's training rows from its update.

The attack is the analytic one of "inverting gradients" work (Phong et al. 2017; Geiping et al.,
NeurIPS 2020, §3 on fully connected layers; Fowl et al. 2022): for any layer ``z = W x + b``,
``dL/dW = (dL/dz) xᵀ`` and ``dL/db = dL/dz``, so for one example each row of the weight gradient
divided by the matching bias gradient **is** the input ``x``. A FedAvg client update after one
local step is ``−lr`` times that gradient, so the ratio survives. For a batch of ``B`` rows each
hidden unit ``j`` gives ``Σ_i a_ij x_i`` with ``Σ_i a_ij = 1`` — a weighted mix that comes close
to one row whenever that row dominates the unit. For a batch the attacker then runs an
optimisation-based inversion (DLG, Zhu et al. NeurIPS 2019: find inputs whose gradient matches
the observed one), solved here by alternating least squares on the first layer (its gradient
is linear in the inputs once the backpropagated error is fixed) over every labelling of the
batch, keeping the inputs whose full gradient matches best
(:func:`gradient_matching_inversion`).

It runs against the real ``hfl`` component (in-process, every message captured on the memory
hub): with ``secure_aggregation=False`` (the unprotected control) the server reads each
client's ``PlainUpdate``; with secure aggregation it sees each client's ``MaskedInput`` (which
it decodes with the public fixed-point encoding, exactly as it would decode the sum) and the
sum. Metric: the cosine similarity between the attacker's best reconstruction and the nearest
true row of the attacked client, averaged over clients and runs (1 = exact; a random guess
scores about 0 with one candidate, more with the best of several: the detail reports the
same metric for as many random candidates). What the *sum* reveals is reported in the detail:
it is what secure aggregation releases by design (a mix over all clients).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.assess.attacks._metrics import value_result
from privfin.assess.model import AttackResult
from privfin.config import Settings
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.fl.horizontal.fedavg.component import hfl_component
from privfin.fl.horizontal.fedavg.messages import PlainUpdate, RoundPlan
from privfin.fl.horizontal.secagg.messages import MaskedInput
from privfin.fl.horizontal.secagg.quantize import Quantizer
from privfin.runtime import simulate

__all__ = ["gradient_inversion", "invert_update"]

Arr = npt.NDArray[np.float64]

FEATURES = 20
HIDDEN = 16
LR = 0.1


def invert_update(update: Arr, d: int, model: str, hidden: int = HIDDEN, top: int = 4) -> Arr:
    """Candidate input rows from a FedAvg update ``[n·Δw, n·loss, n]`` of a ``model``
    (``"logistic"``: one candidate; ``"mlp"``: one per hidden unit, the ``top`` units with the
    largest bias change first)."""
    w = np.asarray(update, dtype=np.float64)[:-2]
    if model == "logistic":
        return np.asarray((w[:d] / (w[d] if w[d] != 0 else 1e-300))[None, :], dtype=np.float64)
    dw1 = w[: d * hidden].reshape(d, hidden)
    db1 = w[d * hidden : d * hidden + hidden]
    order = np.argsort(-np.abs(db1))[:top]
    safe = np.where(db1[order] == 0, 1e-300, db1[order])
    return np.asarray((dw1[:, order] / safe).T, dtype=np.float64)


def _sigmoid(z: Arr) -> Arr:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def gradient_matching_inversion(
    update: Arr,
    w_global: Arr,
    d: int,
    batch: int,
    *,
    hidden: int = HIDDEN,
    lr: float = LR,
    iters: int = 150,
    restarts: int = 4,
    seed: int = 0,
) -> Arr:
    """Optimisation-based inversion of a one-step MLP update of ``batch`` rows (DLG-style
    gradient matching, Zhu et al. 2019, solved by alternating least squares).

    The attacker knows the global model it sent and the learning rate (both public to the
    server), so the update gives the mean gradient ``g``. The first layer's gradient is linear
    in the inputs, ``g_W1 = Xᵀ Da(X, y)``: starting from the analytic candidates and from
    random points, for every labelling ``y`` of the batch it alternates "compute ``Da`` at
    ``X``" and "solve ``Xᵀ Da = g_W1`` for ``X`` by least squares", then keeps the ``X`` whose
    full gradient (every layer) matches ``g`` best. Labels are not assumed known: all
    ``2^batch`` labellings are tried (fine for small batches)."""
    u = np.nan_to_num(np.asarray(update, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n = u[-1] if abs(u[-1]) > 1e-12 else 1.0
    grad = -(u[:-2] / n) / lr
    h = hidden
    w1 = w_global[: d * h].reshape(d, h)
    b1 = w_global[d * h : d * h + h]
    w2 = w_global[d * h + h : d * h + 2 * h]
    b2 = float(w_global[-1])
    g_w1 = grad[: d * h].reshape(d, h)
    rng = np.random.default_rng(seed)
    labellings = np.array(list(itertools.product([0.0, 1.0], repeat=batch)))
    ys = np.repeat(labellings, restarts, axis=0)  # (K, B)
    k = len(ys)
    x = rng.normal(size=(k, batch, d))
    x[::restarts] = invert_update(u, d, "mlp", hidden, top=batch)[None, :batch, :]

    def forward(x: Arr) -> tuple[Arr, Arr, Arr]:
        a = np.tanh(x @ w1 + b1)  # (K, B, h)
        r = (_sigmoid(a @ w2 + b2) - ys) / batch  # (K, B)
        da = r[..., None] * w2 * (1 - a * a)  # (K, B, h)
        return a, r, da

    eye = 1e-12 * np.eye(batch)
    for _ in range(iters):
        _, _, da = forward(x)
        gram = da @ np.swapaxes(da, 1, 2) + eye  # (K, B, B)
        # least squares of Da^T X = g_W1^T (normal equations, batched over K starts)
        x = np.asarray(np.linalg.solve(gram, da @ g_w1.T), dtype=np.float64)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    a, r, da = forward(x)
    full = np.concatenate(
        [
            (np.swapaxes(x, 1, 2) @ da).reshape(k, -1),
            da.sum(axis=1),
            np.einsum("kbh,kb->kh", a, r),
            r.sum(axis=1, keepdims=True),
        ],
        axis=1,
    )
    loss = np.sum((full - grad) ** 2, axis=1)
    return np.asarray(x[int(np.argmin(loss))], dtype=np.float64)


def best_cosine(candidates: Arr, rows: Arr) -> float:
    """Mean over the true ``rows`` of the best cosine similarity any candidate reaches."""
    c = np.nan_to_num(candidates, nan=0.0, posinf=0.0, neginf=0.0)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-300)
    r = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    return float(np.mean(np.max(r @ c.T, axis=1)))


def _run(rows_per_client: int, clients: int, model: str, secure: bool, seed: int) -> tuple[
    dict[str, Arr], MemoryHub
]:  # fmt: skip
    rng = np.random.default_rng(seed)
    data = {f"bank{k}": rng.normal(size=(rows_per_client, FEATURES)) for k in range(clients)}
    inputs = {
        name: {"X": x, "y": (rng.random(len(x)) < 0.5).astype(np.float64)}
        for name, x in data.items()
    }
    params: dict[str, Any] = {
        "n_features": FEATURES,
        "model": model,
        "hidden": HIDDEN,
        "rounds": 1,
        "lr": LR,
        "local_epochs": 1,
        "batch_size": max(rows_per_client, 1),
        "secure_aggregation": secure,
    }
    hub = MemoryHub()
    roles = {"server": ["server"], **{c: ["client"] for c in data}}
    simulate(
        hfl_component, roles, params=params, inputs=inputs, seed=seed, hub=hub,
        settings=Settings(mode="development"), timeout=120,
    )  # fmt: skip
    return data, hub


def _server_view(hub: MemoryHub, secure: bool) -> tuple[dict[str, Arr], Arr]:
    """Per client, the vector the server received from it in round 0, as the server decodes
    it (masked vectors through the public fixed-point decoding), and the global model the
    server sent for that round."""
    seen: dict[str, Arr] = {}
    q = Quantizer()
    sent: Arr | None = None
    for key, payload in hub.wire:
        if key.sender == "server" and key.tag == "hfl.plan" and sent is None:
            sent = np.asarray(codec.decode(payload, expect=RoundPlan).weights, dtype=np.float64)
        if key.receiver != "server":
            continue
        if not secure and key.tag.endswith(".plain"):
            seen[key.sender] = np.asarray(codec.decode(payload, expect=PlainUpdate).update)
        if secure and key.tag.endswith(".masked"):
            y = codec.decode(payload, expect=MaskedInput).y
            seen[key.sender] = q.decode_sum(np.asarray(y))
    if sent is None:
        raise RuntimeError("the server sent no round plan")
    return seen, sent


def gradient_inversion(
    *, secure: bool, batch: int = 1, model: str = "logistic", quick: bool = True, seed: int = 0
) -> AttackResult:
    """Invert what the server sees of each client's round-0 update (see the module docstring).

    ``secure``: attack the masked vectors of secure aggregation (protected) or the plain
    updates (control); ``batch``: rows per client; ``model``: ``"logistic"`` or ``"mlp"``.
    """
    clients = 3
    runs = 3 if quick else 10
    sims: list[float] = []
    sum_sims: list[float] = []
    guesses: list[float] = []
    analytic: list[float] = []
    guess_rng = np.random.default_rng(seed + 7)
    for r in range(runs):
        data, hub = _run(batch, clients, model, secure, seed * 100 + r)
        view, w_global = _server_view(hub, secure)
        if set(view) != set(data):
            raise RuntimeError(f"captured updates of {sorted(view)}, expected {sorted(data)}")
        for name, rows in data.items():
            candidates = invert_update(view[name], FEATURES, model)
            if batch > 1 and model == "mlp":
                analytic.append(best_cosine(candidates, rows))
                candidates = gradient_matching_inversion(
                    view[name], w_global, FEATURES, batch, seed=seed,
                    iters=100 if quick else 300, restarts=3 if quick else 8,
                )  # fmt: skip
            sims.append(best_cosine(candidates, rows))
            guesses.append(best_cosine(guess_rng.normal(size=candidates.shape), rows))
        if secure:  # the released sum (by design), attacked the same way
            total = np.sum([view[c] for c in data], axis=0)
            sum_sims += [
                best_cosine(invert_update(total, FEATURES, model), rows) for rows in data.values()
            ]
    value = float(np.mean(sims))
    what = "masked vectors (secure aggregation)" if secure else "plain per-client updates"
    detail = (
        f"inversion of the server's view: {what}; hfl component, {model}, {clients} "
        f"clients x {batch} row(s), one local full-batch step, {runs} runs; "
        f"random guess (as many random candidates): {np.mean(guesses):.3f}"
    )
    if analytic:
        detail += (
            f"; batch: gradient matching by alternating least squares over all labellings "
            f"(the analytic per-unit candidates alone: {np.mean(analytic):.3f})"
        )
    if secure:
        detail += (
            f"; the same attack on the released sum (a mix of all clients, by design): "
            f"{np.mean(sum_sims):.3f}"
        )
    target = (
        "hfl: server's view under secure aggregation"
        if secure
        else "hfl without secure aggregation (plain updates)"
    )
    return value_result(
        f"gradient-inversion/{'single' if batch == 1 else f'batch{batch}'}-{model}",
        target, protected=secure, trials=len(sims), metric="mean_best_cosine", value=value,
        detail=detail,
    )  # fmt: skip
