"""Two-party ECDH-PSI, receiver role (learns the intersection, or only its size).

Flow (see SPEC.md §2): the receiver sends ``a·H(x)`` for its items; the sender answers with
``b·H(y)`` for its items (in a random order) and ``b·(a·H(x))`` truncated to 16 bytes, in the
receiver's order; the receiver computes ``a·(b·H(y))`` and matches.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto.ristretto import POINT_BYTES
from privfin.psi.common import (
    blind_stream,
    collect,
    fingerprints,
    handshake,
    hash_and_blind,
    recv_stream,
    rows_in,
    send_stream,
    suite_domain,
    suite_key,
)
from privfin.psi.ids import PreparedIds
from privfin.psi.messages import FINGERPRINT_BYTES, Count, Indices
from privfin.runtime import Context

__all__ = ["run_receiver"]


def run_receiver(
    ctx: Context,
    prepared: PreparedIds,
    sender: str,
    params: Mapping[str, Any],
    *,
    cardinality_only: bool,
    reveal_to_sender: bool,
) -> npt.NDArray[np.int64] | int:
    """Run the receiver.

    Returns
    -------
    numpy.ndarray or int
        Positions in ``prepared.keys`` of the intersecting items (unordered), or the
        intersection size if ``cardinality_only``.

    Security
    --------
    Semi-honest. The receiver learns the intersection (or its size) and the sender's set size;
    the sender learns the receiver's set size, and the intersection (or its size) only if
    ``reveal_to_sender``. Points from the sender are validated before use.
    """
    protocol = "ecdh-cardinality" if cardinality_only else "ecdh"
    n_r = len(prepared)
    n_s = handshake(ctx, protocol, params, n_r, [sender])[sender]
    curve = str(params.get("curve", "ristretto255"))
    key = suite_key(ctx, f"psi.{protocol}.receiver.key", curve)
    dst = suite_domain(ctx, "ecdh", curve)
    t0 = time.perf_counter()
    sent = send_stream(ctx, sender, "a", hash_and_blind(ctx, key, prepared, dst, "psi.blind"))
    ctx.metrics.add("psi.points_sent", float(sent))
    t1 = time.perf_counter()
    ctx.metrics.add("psi.seconds.own_hash_blind_send", t1 - t0)

    # a·(b·H(y)) for the sender's items, fingerprinted.
    incoming = recv_stream(ctx, sender, "b", n_s, POINT_BYTES)
    fb = np.empty((n_s, FINGERPRINT_BYTES), dtype=np.uint8)
    pos = 0
    for blinded in blind_stream(ctx, key, incoming, sender, "psi.reblind", n_s):
        fb[pos : pos + blinded.shape[0]] = fingerprints(blinded)
        pos += blinded.shape[0]
    t2 = time.perf_counter()
    ctx.metrics.add("psi.seconds.peer_recv_reblind", t2 - t1)
    fab = collect(recv_stream(ctx, sender, "ab", n_r, FINGERPRINT_BYTES), n_r, FINGERPRINT_BYTES)
    t3 = time.perf_counter()
    ctx.metrics.add("psi.seconds.wait_double_blinded", t3 - t2)
    mine = rows_in(fab, fb)
    ctx.metrics.add("psi.seconds.match", time.perf_counter() - t3)
    if cardinality_only:
        size = int(np.count_nonzero(mine))
        if reveal_to_sender:
            ctx.channel.send(sender, "result", Count(value=size))
        return size
    matched = np.flatnonzero(mine).astype(np.int64)
    if reveal_to_sender:
        theirs = np.flatnonzero(rows_in(fb, fab[matched])).astype(np.int64)
        ctx.channel.send(sender, "result", Indices(values=theirs))
    return matched
