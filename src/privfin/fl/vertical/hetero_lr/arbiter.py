"""Arbiter role (mode ``"arbiter"``): holds the Paillier key and decrypts masked gradients.

It sees only uniformly masked, packed gradient integers (statistical distance ``2**-stat_bits``
from uniform) and, with early stopping on, each party's squared weight change per epoch. It
decrypts for each party exactly the packed size of its AGREED number of gradient entries
(``feature_counts``; a different announced count aborts) and only
requests whose every slot is a masked value (``_wire.decrypt_for``). The row count that fixes
every batch's bound comes from no single party: the guest's ``Plan`` and every host's
``RowCount`` must agree (:func:`agreed_rows`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from privfin.errors import ProtocolAbort
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
from privfin.fl.vertical.hetero_lr.messages import Plan, RowCount
from privfin.runtime import Context

__all__ = ["agreed_rows", "run_arbiter"]


def agreed_rows(guest_rows: int, host_rows: Mapping[str, RowCount], guest: str) -> int:
    """The row count every data party announced to the arbiter (the guest in its
    :class:`Plan`, each host in a :class:`RowCount`).

    The arbiter sizes every request from it (the public bound ``B`` grows with ``log2 m``), so
    it trusts no single party: a guest that told the arbiter more rows than the hosts would
    pack its own request to match and get the honest hosts' requests refused in their name
    (red team a6b). Any disagreement → :class:`ProtocolAbort` at setup, before anything is
    decrypted, naming a party that disagrees with a strict majority of the data parties or,
    without a strict majority (one host), the guest: its count is the one the protocol
    distributes, every host has checked it against its own rows, so a host announcing
    another count means the guest told the arbiter something else — or that host lies, which
    costs the run (an abort at setup, nothing decrypted) and nothing more.
    """
    counts = {guest: guest_rows, **{h: msg.n_rows for h, msg in host_rows.items()}}
    if len(set(counts.values())) == 1:
        return guest_rows
    top, votes = Counter(counts.values()).most_common(1)[0]
    majority = votes * 2 > len(counts)
    offender = (
        min((p for p, v in counts.items() if v != top), key=lambda p: p != guest)
        if majority
        else guest
    )
    detail = ", ".join(f"{p!r}: {v}" for p, v in sorted(counts.items()))
    raise ProtocolAbort(
        f"the data parties announced different row counts to the arbiter ({detail}); "
        f"{offender!r} disagrees with "
        + ("the majority" if majority else "the hosts")
        + ": refused, nothing decrypted",
        party=offender,
    )


def run_arbiter(ctx: Context, params: LRParams, guest: str, hosts: list[str]) -> dict[str, Any]:
    """Serve decryptions for ``params.max_iter`` epochs (fewer on early stopping)."""
    pk, sk = new_keypair(ctx, params)
    parties = [guest, *hosts]
    announce_key(ctx, pk, parties)
    plan: Plan = ctx.channel.recv(guest, "plan", expect=Plan)
    n_rows = agreed_rows(plan.n_rows, ctx.channel.gather("rows", peers=hosts, expect=RowCount),
                         guest)  # fmt: skip
    entries = agreed_entries(params, guest, hosts, n_rows)
    counts = {party: receive_features(ctx, party, entries[party]) for party in parties}
    # Batch sizes are public (the seed only permutes rows).
    floor = min_batch_rows(entries)
    sizes = [len(rows) for rows in batch_plan(0, n_rows, params.batch_size, 0, False, floor)]
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
