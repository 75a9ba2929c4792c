"""Two-party ECDH-PSI, receiver role (learns the intersection, or only its size).

Flow (see SPEC.md §2): the receiver sends ``a·H(x)`` for its items; the sender answers with
``b·H(y)`` for its items (in a random order) and ``b·(a·H(x))`` truncated to 16 bytes, in the
receiver's order; the receiver computes ``a·(b·H(y))`` and matches.
"""

from __future__ import annotations

import itertools
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

__all__ = ["run_dp_receiver", "run_receiver"]


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


def run_dp_receiver(
    ctx: Context,
    prepared: PreparedIds,
    sender: str,
    params: Mapping[str, Any],
    law: Any,
    labels: list[str],
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Run the receiver of a DP PSI-cardinality (SPEC.md §10), one count per segment.

    For each segment ``k``: send ``a_k·H(x)`` for every own item and ``a_k·H_k(i)`` for the
    ``slots`` dummy indices (fresh key ``a_k``); receive the sender's ``n_s + slots``
    blinded items (its segment's items, its matching dummies, filler) and the shuffled
    fingerprints of ``b_k·a_k`` of ours; count the matches. The count is ``|X ∩ Y_k| + N_k``
    with ``N_k`` the sender's secret dummy count: this party never learns ``|X ∩ Y_k|``.

    Returns
    -------
    dict
        The release: per segment the revealed size, the estimate ``revealed - shift`` and
        its interval at ``confidence`` (clamped to ``[0, min(n_r, n_s)]``), plus epsilon,
        delta, shift, slots and the privacy unit.

    Security
    --------
    The DP guarantee holds against a semi-honest receiver (one that includes its dummies);
    see SPEC.md §10 for what a malicious one could do. A sender that repeats an item (to
    bias the count) or sends rows of the wrong shape or number is detected and aborts the
    job.
    """
    from privfin.psi.dpca import PROTOCOL, dummy_points, require_distinct

    n_r = len(prepared)
    n_s = handshake(ctx, PROTOCOL, params, n_r, [sender])[sender]
    slots = int(law.slots)
    curve = str(params.get("curve", "ristretto255"))
    dst = suite_domain(ctx, "ecdh", curve)
    segments: dict[str, Any] = {}
    for k, label in enumerate(labels):
        key = suite_key(ctx, f"psi.dpca.receiver.key.{k}", curve)
        own = hash_and_blind(ctx, key, prepared, dst, "psi.blind")
        dummies = dummy_points(ctx, key, np.arange(slots, dtype=np.int64), k, curve)
        send_stream(ctx, sender, f"dp{k}.a", itertools.chain(own, [dummies]))
        total = n_s + slots
        incoming = recv_stream(ctx, sender, f"dp{k}.b", total, POINT_BYTES)
        fb = np.empty((total, FINGERPRINT_BYTES), dtype=np.uint8)
        pos = 0
        for blinded in blind_stream(ctx, key, incoming, sender, "psi.reblind", total):
            fb[pos : pos + blinded.shape[0]] = fingerprints(blinded)
            pos += blinded.shape[0]
        fab = collect(
            recv_stream(ctx, sender, f"dp{k}.ab", n_r + slots, FINGERPRINT_BYTES),
            n_r + slots,
            FINGERPRINT_BYTES,
        )
        require_distinct(fb, sender, "item")
        require_distinct(fab, sender, "fingerprint")
        revealed = int(np.count_nonzero(rows_in(fb, fab)))
        est = law.estimate(revealed, confidence, upper=min(n_r, n_s))
        segments[label] = {"revealed": revealed, **est.to_json()}
    return {
        "query": "psi_cardinality",
        "segments": segments,
        "confidence": confidence,
        "epsilon": float(law.epsilon),
        "delta": float(law.delta),
        "shift": int(law.shift),
        "slots": slots,
        "mechanism": "dummy items: shifted discrete Laplace conditioned on [0, slots]",
        "unit": "one customer in the intersection (add/remove), per segment",
        "set_sizes": {"receiver": n_r, "sender": n_s},
    }
