"""The client role of horizontal FL: train locally when sampled, send the update masked."""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.errors import ProtocolAbort
from privfin.fl.horizontal.aggregation import ClientAggregation
from privfin.fl.horizontal.fedavg.common import CLIENT, HFLParams
from privfin.fl.horizontal.fedavg.messages import PlainUpdate, RoundPlan
from privfin.fl.horizontal.fedavg.models import local_train
from privfin.runtime import Context

__all__ = ["run_client"]


def run_client(
    ctx: Context, p: HFLParams, server: str, n_clients: int, x: np.ndarray, y: np.ndarray
) -> dict[str, Any]:
    """Follow the server's rounds until it says done; returns the final model.

    What leaves this party: its update ``[n·Δw, n·loss, n]`` inside secure aggregation (the
    server learns only the sum over the round's survivors), or in clear in the insecure
    mode without it.
    """
    model = p.make_model()
    rng = np.random.default_rng(int.from_bytes(ctx.random.bytes(8), "big"))
    sa = p.secagg(p.sampled(n_clients), model.n_params + 2)
    n = float(len(y))
    gv = p.mechanism()
    agg = ClientAggregation(
        ctx, p.aggregation, server, ctx.parties_with(CLIENT), prefix="hfl",
        timeout=p.client_timeout,
    )  # fmt: skip
    if p.secure_aggregation:
        agg.setup()
    rounds = 0
    expected = 0
    # With the public init_seed every party knows the round-0 model: refuse another one.
    agreed = None if p.init_seed is None else p.initial_weights(model, rng)
    while True:
        plan = ctx.channel.recv(server, "hfl.plan", expect=RoundPlan, timeout=p.client_timeout)
        if plan.weights.shape != (model.n_params,):
            raise ProtocolAbort("the server sent a model of the wrong size", party=server)
        if agreed is not None:
            if not np.array_equal(plan.weights, agreed):
                raise ProtocolAbort(
                    "the server's first model is not the one of the agreed init_seed",
                    party=server,
                )
            agreed = None
        if plan.done:
            return {"role": "client", "weights": plan.weights, "rounds_trained": rounds}
        if plan.round != expected:
            raise ProtocolAbort(f"round {plan.round} announced, {expected} expected", party=server)
        expected += 1
        if not plan.selected:
            continue
        w, loss = local_train(model, plan.weights, x, y, p.optimiser, rng)
        if gv is None:
            update = np.concatenate([n * (w - plan.weights), [n * loss, n]])
        else:  # client-level DP: the clipped, grid-rounded update only (no loss, no count)
            units = gv.round((w - plan.weights)[None, :])[0].astype(np.float64)
            update = np.concatenate([units, [0.0, 1.0]])
        if p.secure_aggregation:
            if agg.run(sa, plan.round, update):
                rounds += 1
        else:
            ctx.channel.send(
                server, f"hfl.{plan.round}.plain", PlainUpdate(round=plan.round, update=update)
            )
            rounds += 1
