"""The server role of horizontal FL: sample, broadcast, aggregate securely, update."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from privfin.config import require_insecure_allowed
from privfin.dp.accounting import Accountant
from privfin.errors import PeerTimeout, ProtocolAbort
from privfin.fl.horizontal.aggregation import ServerAggregation
from privfin.fl.horizontal.fedavg.common import HFLParams
from privfin.fl.horizontal.fedavg.messages import PlainUpdate, RoundPlan
from privfin.fl.horizontal.secagg import SecAggThresholdError
from privfin.ml.metrics import roc_auc
from privfin.runtime import Context

__all__ = ["run_server"]


def _sample(ctx: Context, clients: list[str], k: int) -> list[str]:
    pool = list(clients)
    chosen = []
    for _ in range(k):
        chosen.append(pool.pop(ctx.random.below(len(pool))))
    return sorted(chosen)


def robust_mean_update(updates: list[np.ndarray], how: str, trim: float) -> np.ndarray:
    """Coordinate-wise median or trimmed mean of the clients' (unweighted) model deltas, from
    updates ``[n·Δw, n·loss, n]``; returned in the same form with ``n = 1`` (so the server's
    ``Σ n·Δw / Σ n`` is the robust estimate)."""
    deltas = np.stack([u[:-2] / u[-1] for u in updates])
    if how == "median":
        est = np.median(deltas, axis=0)
    else:
        b = int(np.floor(trim * len(updates)))
        srt = np.sort(deltas, axis=0)
        est = srt[b : len(updates) - b].mean(axis=0)
    loss = float(np.mean([u[-2] / u[-1] for u in updates]))
    return np.concatenate([est, [loss, 1.0]])


def _plain_sum(
    ctx: Context, p: HFLParams, selected: list[str], round_id: int, dim: int
) -> tuple[np.ndarray, list[str]]:
    deadline = time.monotonic() + p.round_deadline
    total = np.zeros(dim)
    updates: list[np.ndarray] = []
    got = []
    for c in selected:
        try:
            msg = ctx.channel.recv(
                c,
                f"hfl.{round_id}.plain",
                expect=PlainUpdate,
                timeout=max(0.0, deadline - time.monotonic()),
            )
        except PeerTimeout:
            continue
        if msg.round != round_id or msg.update.shape != (dim,) or not msg.update[-1] >= 1:
            raise ProtocolAbort(f"{c!r} sent a malformed update", party=c)
        total += msg.update
        updates.append(msg.update)
        got.append(c)
    if p.aggregator != "mean" and updates:
        total = robust_mean_update(updates, p.aggregator, p.trim_fraction)
    return total, got


def run_server(
    ctx: Context,
    p: HFLParams,
    clients: list[str],
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
) -> dict[str, Any]:
    """Run ``p.rounds`` rounds; returns the final parameters and the per-round history."""
    if not p.secure_aggregation:
        require_insecure_allowed(
            ctx.settings,
            "horizontal FL without secure aggregation (the server sees every update)",
            "secure_aggregation=True",
        )
    model = p.make_model()
    rng = np.random.default_rng(int.from_bytes(ctx.random.bytes(8), "big"))
    w = p.initial_weights(model, rng)
    k = p.sampled(len(clients))
    dim = model.n_params + 2  # [n·Δw, n·loss, n]
    sa = p.secagg(k, dim)
    agg = ServerAggregation(ctx, p.aggregation, clients, prefix="hfl", timeout=p.round_deadline)
    if p.secure_aggregation:
        sa.check_clients(k)
        agg.setup()
    gv = p.mechanism()
    acc = Accountant("rdp") if gv is not None else None
    # FedAdam (Reddi et al. 2021): the mean update is a pseudo-gradient for server-side Adam.
    m_t = np.zeros(model.n_params)
    v_t = np.full(model.n_params, 1e-6)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, np.ndarray] | None = None
    failed = 0
    task = ctx.progress.task("hfl.rounds", total=p.rounds)
    for r in range(p.rounds):
        ctx.cancel.raise_if_cancelled()
        start = time.monotonic()
        selected = _sample(ctx, clients, k)
        for c in clients:
            plan = RoundPlan(round=r, selected=c in selected, done=False, weights=w)
            ctx.channel.send(c, "hfl.plan", plan)
        entry: dict[str, Any] = {"round": r, "selected": selected}
        try:
            if p.secure_aggregation:
                res = agg.run(selected, sa, r)
                total, survivors, dropped = res.total, res.survivors, res.dropped
            else:
                total, survivors = _plain_sum(ctx, p, selected, r, dim)
                dropped = {c: "update" for c in selected if c not in survivors}
                if not survivors:
                    raise SecAggThresholdError(f"round {r}: no client sent an update in time")
        except SecAggThresholdError as exc:
            failed += 1
            ctx.log.warning("round %d failed: %s", r, exc)
            entry.update(failed=str(exc), seconds=time.monotonic() - start)
            history.append(entry)
            task.advance()
            if failed >= p.max_failed_rounds:
                raise
            continue
        failed = 0
        n_rows = total[-1]
        if n_rows < 0.5:
            raise ProtocolAbort(f"round {r}: the aggregated row count is {n_rows:g}")
        entry.update(survivors=survivors, dropped=dropped)
        if gv is None or acc is None:
            delta = total[:-2] / n_rows
            entry.update(rows=round(float(n_rows)), train_loss=float(total[-2] / n_rows))
        else:
            units = np.rint(total[:-2]).astype(np.int64)
            # Fixed denominator (the sampled count): it does not depend on any one client.
            delta = gv.noise_sum(units, ctx.random) / k
            gv.account(acc, model.n_params)
            entry["epsilon"] = acc.epsilon(p.dp_delta)
        if p.server_optimiser == "fedadam":
            m_t = 0.9 * m_t + 0.1 * delta
            v_t = 0.99 * v_t + 0.01 * delta * delta
            w = w + p.server_lr * m_t / (np.sqrt(v_t) + 1e-3)
        else:
            w = w + delta
        if x_val is not None and y_val is not None:
            prob = model.predict_proba(w, x_val)
            entry["val_auc"] = roc_auc(y_val, prob)
            if best is None or entry["val_auc"] > best[0]:
                best = (entry["val_auc"], r, w.copy())
        entry["seconds"] = time.monotonic() - start
        history.append(entry)
        ctx.metrics.add("hfl.rounds")
        task.advance()
        if p.patience is not None and best is not None and r - best[1] >= p.patience:
            ctx.log.info("early stop after round %d (best round %d)", r, best[1])
            break
    if p.patience is not None and best is not None:
        w = best[2]
    for c in clients:
        ctx.channel.send(
            c, "hfl.plan", RoundPlan(round=len(history), selected=False, done=True, weights=w)
        )
    out: dict[str, Any] = {
        "role": "server",
        "weights": w,
        "history": history,
        "rounds": len(history),
    }
    if gv is not None and acc is not None:
        out["dp"] = {
            "epsilon": acc.epsilon(p.dp_delta) if acc.entries else 0.0,
            "delta": p.dp_delta,
            "noise_multiplier": gv.noise_multiplier,
            "effective_noise_multiplier": gv.effective_noise_multiplier(model.n_params),
            "clip": gv.clip,
            "unit": "one client (all its rows), add/remove",
            "accounting": "RDP, one Gaussian mechanism per completed round, no amplification "
            "by sampling (clients are sampled without replacement, fixed size)",
            "trust": "noise added by the server after secure aggregation: the server sees the "
            "sum without noise; everyone who sees the model gets (epsilon, delta)",
        }
    return out
