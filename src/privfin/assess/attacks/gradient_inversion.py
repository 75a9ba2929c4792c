"""Gradient inversion: the server reconstructs a client's training rows from its update.

The attack is the analytic one of "inverting gradients" work (Phong et al. 2017; Geiping et al.,
NeurIPS 2020, §3 on fully connected layers; Fowl et al. 2022): for any layer ``z = W x + b``,
``dL/dW = (dL/dz) xᵀ`` and ``dL/db = dL/dz``, so for one example each row of the weight gradient
divided by the matching bias gradient **is** the input ``x``. A FedAvg client update after one
local step is ``−lr`` times that gradient, so the ratio survives. For a batch of ``B`` rows each
hidden unit ``j`` gives ``Σ_i a_ij x_i`` with ``Σ_i a_ij = 1`` — a weighted mix that comes close
to one row whenever that row dominates the unit; the attacker keeps the candidates of the units
with the largest bias gradient.

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

from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.assess.attacks._metrics import value_result
from privfin.assess.model import AttackResult
from privfin.config import Settings
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.fl.horizontal.fedavg.component import hfl_component
from privfin.fl.horizontal.fedavg.messages import PlainUpdate
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


def _server_view(hub: MemoryHub, secure: bool) -> dict[str, Arr]:
    """Per client, the vector the server received from it in round 0, as the server decodes
    it (masked vectors through the public fixed-point decoding)."""
    seen: dict[str, Arr] = {}
    q = Quantizer()
    for key, payload in hub.wire:
        if key.receiver != "server":
            continue
        if not secure and key.tag.endswith(".plain"):
            seen[key.sender] = np.asarray(codec.decode(payload, expect=PlainUpdate).update)
        if secure and key.tag.endswith(".masked"):
            y = codec.decode(payload, expect=MaskedInput).y
            seen[key.sender] = q.decode_sum(np.asarray(y))
    return seen


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
    guess_rng = np.random.default_rng(seed + 7)
    for r in range(runs):
        data, hub = _run(batch, clients, model, secure, seed * 100 + r)
        view = _server_view(hub, secure)
        if set(view) != set(data):
            raise RuntimeError(f"captured updates of {sorted(view)}, expected {sorted(data)}")
        for name, rows in data.items():
            candidates = invert_update(view[name], FEATURES, model)
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
        f"analytic inversion of the server's view: {what}; hfl component, {model}, {clients} "
        f"clients x {batch} row(s), one local full-batch step, {runs} runs; "
        f"random guess (as many random candidates): {np.mean(guesses):.3f}"
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
