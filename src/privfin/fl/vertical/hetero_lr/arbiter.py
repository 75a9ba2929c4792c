"""Arbiter role (mode ``"arbiter"``): holds the Paillier key and decrypts masked gradients.

It sees only uniformly masked, packed gradient integers (statistical distance ``2**-stat_bits``
from uniform) and, with early stopping on, each party's squared weight change per epoch. It
decrypts for each party exactly the packed size of its AGREED number of gradient entries
(``feature_counts``; a different announced count aborts) and only
requests whose every slot is a masked value (``_wire.decrypt_for``).
"""

from __future__ import annotations

from typing import Any

from privfin.fl.vertical.hetero_lr._wire import (
    announce_key,
    decrypt_for,
    new_keypair,
    receive_features,
    sync_stop,
)
from privfin.fl.vertical.hetero_lr.common import (
    LRParams,
    agreed_entries,
    batch_plan,
    min_batch_rows,
)
from privfin.fl.vertical.hetero_lr.messages import Plan
from privfin.runtime import Context

__all__ = ["run_arbiter"]


def run_arbiter(ctx: Context, params: LRParams, guest: str, hosts: list[str]) -> dict[str, Any]:
    """Serve decryptions for ``params.max_iter`` epochs (fewer on early stopping)."""
    pk, sk = new_keypair(ctx, params)
    parties = [guest, *hosts]
    announce_key(ctx, pk, parties)
    plan: Plan = ctx.channel.recv(guest, "plan", expect=Plan)
    entries = agreed_entries(params, guest, hosts, plan.n_rows)
    counts = {party: receive_features(ctx, party, entries[party]) for party in parties}
    # Batch sizes are public (the seed only permutes rows).
    floor = min_batch_rows(entries)
    sizes = [len(rows) for rows in batch_plan(0, plan.n_rows, params.batch_size, 0, False, floor)]
    epochs = 0
    for _ in range(params.max_iter):
        epochs += 1
        for m in sizes:
            for party in parties:
                bound = params.bound_bits(len(hosts), m, guest=party == guest)
                decrypt_for(ctx, party, sk, params, count=counts[party], bound_bits=bound)
        if sync_stop(ctx, params, ctx.party, [ctx.party, *parties], 0.0):
            break
    return {"role": "arbiter", "n_iter": epochs}
