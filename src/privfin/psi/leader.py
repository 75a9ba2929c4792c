"""n-party ECDH-PSI, leader role: learns the intersection of all sets and nothing else
beyond the set sizes (see SPEC.md §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto.ristretto import POINT_BYTES
from privfin.errors import ProtocolAbort
from privfin.psi.common import (
    blind_stream,
    fingerprints,
    handshake,
    hash_and_blind,
    job_random,
    random_permutation,
    recv_stream,
    send_stream,
    suite_domain,
    suite_key,
)
from privfin.psi.ids import PreparedIds
from privfin.psi.messages import FINGERPRINT_BYTES, Count, Masked, RevealedKeys
from privfin.runtime import Context

__all__ = ["run_leader"]


def run_leader(
    ctx: Context,
    prepared: PreparedIds,
    members: Sequence[str],
    params: Mapping[str, Any],
    *,
    cardinality_only: bool,
    reveal_all: bool,
) -> npt.NDArray[np.int64] | int:
    """Run the leader.

    1. Send ``a·H(x)`` for its items, in a random order, to every member.
    2. For each member ``i``: receive ``k_i·H(y)``, return the fingerprints of
       ``a·k_i·H(y)`` in a fresh random order (the member cannot map them back to its items).
    3. Receive from every member a vector with, per leader item, 0 if the member holds it and
       a uniform 64-bit value otherwise, plus pairwise masks between members that cancel in the
       sum. An item is in every set iff the sum is 0 (a false positive has probability 2**-64
       per item).

    Security
    --------
    The leader sees each member's points only blinded by that member's key, and of the
    membership vectors only their sum: so it learns the intersection (or, in cardinality mode,
    where members apply a common secret permutation, only its size) and the set sizes,
    but no pairwise or partial intersection. Collusion of the leader with all members but one
    reveals that member's intersection with the leader's set.
    """
    protocol = "ecdh-n-cardinality" if cardinality_only else "ecdh-n"
    n_l = len(prepared)
    counts = handshake(ctx, protocol, {**params, "members": list(members)}, n_l, members)
    curve = str(params.get("curve", "ristretto255"))
    key = suite_key(ctx, f"psi.{protocol}.leader.key", curve)
    rand = job_random(ctx, f"psi.{protocol}.leader.seed.key")
    dst = suite_domain(ctx, "ecdh-n", curve)
    order = random_permutation(rand, n_l)
    offset = 0
    for chunk in hash_and_blind(ctx, key, prepared, dst, "psi.blind", order):
        for member in members:
            send_stream(ctx, member, "a", [chunk], start=offset)
        offset += chunk.shape[0]
    for member in members:
        n_i = counts[member]
        fb = np.empty((n_i, FINGERPRINT_BYTES), dtype=np.uint8)
        pos = 0
        incoming = recv_stream(ctx, member, "b", n_i, POINT_BYTES)
        for blinded in blind_stream(ctx, key, incoming, member, "psi.reblind", n_i):
            fb[pos : pos + blinded.shape[0]] = fingerprints(blinded)
            pos += blinded.shape[0]
        send_stream(ctx, member, "ba", [fb[random_permutation(rand, n_i)]])
    total = np.zeros(n_l, dtype=np.uint64)
    for member, msg in ctx.channel.gather("masked", peers=members, expect=Masked).items():
        if msg.values.shape != (n_l,):
            raise ProtocolAbort(f"member {member!r} sent {msg.values.shape} values", party=member)
        with np.errstate(over="ignore"):
            total += msg.values
    in_all = total == 0
    if cardinality_only:
        size = int(np.count_nonzero(in_all))
        if reveal_all:
            ctx.channel.broadcast("result", Count(value=size), peers=members)
        return size
    matched = order[np.flatnonzero(in_all)].astype(np.int64)
    if reveal_all:
        revealed = sorted(prepared.keys[i] for i in matched)
        ctx.channel.broadcast("result", RevealedKeys(keys=revealed), peers=members)
    return matched
