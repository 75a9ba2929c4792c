"""Two-party ECDH-PSI, sender role (learns nothing but the receiver's set size, unless the
intersection is revealed to it too)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto.ristretto import POINT_BYTES
from privfin.errors import ProtocolAbort
from privfin.psi.common import (
    U8,
    blind_stream,
    collect,
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
from privfin.psi.messages import FINGERPRINT_BYTES, Count, Indices
from privfin.runtime import Context

__all__ = ["run_dp_sender", "run_sender"]


def run_sender(
    ctx: Context,
    prepared: PreparedIds,
    receiver: str,
    params: Mapping[str, Any],
    *,
    cardinality_only: bool,
    reveal_to_sender: bool,
) -> npt.NDArray[np.int64] | int | None:
    """Run the sender.

    Returns
    -------
    numpy.ndarray, int or None
        With ``reveal_to_sender``: positions in ``prepared.keys`` of the intersecting items
        (or the size if ``cardinality_only``); otherwise ``None`` (the sender learns nothing
        beyond the receiver's set size).

    Security
    --------
    Semi-honest. The sender sends ``b·H(y)`` in a uniformly random order (so its input order
    is hidden) and never its ids or unblinded hashes; its key ``b`` never leaves it. Points from
    the receiver are validated before use. In cardinality mode the re-blinded receiver points
    are returned in a fresh random order, so the receiver learns only the count.
    """
    protocol = "ecdh-cardinality" if cardinality_only else "ecdh"
    n_s = len(prepared)
    n_r = handshake(ctx, protocol, params, n_s, [receiver])[receiver]
    curve = str(params.get("curve", "ristretto255"))
    key = suite_key(ctx, f"psi.{protocol}.sender.key", curve)
    rand = job_random(ctx, f"psi.{protocol}.sender.seed.key")
    dst = suite_domain(ctx, "ecdh", curve)
    perm = random_permutation(rand, n_s)
    t0 = time.perf_counter()
    own = hash_and_blind(ctx, key, prepared, dst, "psi.blind", perm)
    sent = send_stream(ctx, receiver, "b", own)
    t1 = time.perf_counter()
    ctx.metrics.add("psi.seconds.own_hash_blind_send", t1 - t0)
    incoming = recv_stream(ctx, receiver, "a", n_r, POINT_BYTES)
    blinded = blind_stream(ctx, key, incoming, receiver, "psi.reblind", n_r)
    if cardinality_only:
        fab = collect((fingerprints(c) for c in blinded), n_r, FINGERPRINT_BYTES)
        shuffled = fab[random_permutation(rand, n_r)]
        sent += send_stream(ctx, receiver, "ab", [shuffled])
    else:
        sent += send_stream(ctx, receiver, "ab", _fingerprint_chunks(blinded))
    ctx.metrics.add("psi.points_sent", float(sent))
    ctx.metrics.add("psi.seconds.peer_recv_reblind_send", time.perf_counter() - t1)
    if not reveal_to_sender:
        return None
    if cardinality_only:
        count: Count = ctx.channel.recv(receiver, "result", expect=Count)
        if count.value > min(n_s, n_r):
            raise ProtocolAbort("receiver reported an impossible size", party=receiver)
        return count.value
    idx: Indices = ctx.channel.recv(receiver, "result", expect=Indices)
    if idx.values.size and int(idx.values[-1]) >= n_s:
        raise ProtocolAbort("receiver sent an index beyond our set", party=receiver)
    matched: npt.NDArray[np.int64] = perm[idx.values]
    return matched


def _fingerprint_chunks(chunks: Iterator[U8]) -> Iterator[U8]:
    for c in chunks:
        yield fingerprints(c)


def run_dp_sender(
    ctx: Context,
    prepared: PreparedIds,
    receiver: str,
    params: Mapping[str, Any],
    law: Any,
    segments: list[npt.NDArray[np.int64]],
) -> None:
    """Run the sender of a DP PSI-cardinality (SPEC.md §10); it learns nothing (the
    receiver's set size).

    For each segment ``k`` (positions of its items in ``prepared``): draw the dummy count
    ``N_k`` from ``law`` (from a checkpointed seed: a restarted sender draws the same), and
    send, under a fresh key ``b_k`` and in a uniformly random order, ``b_k·H(y)`` for the
    segment's items, ``b_k·H_k(i)`` for the matching dummies ``i < N_k`` and for filler
    indices ``i >= slots`` (which match nothing) up to ``n_s + slots`` rows: the list's length
    reveals neither ``N_k`` nor the segment's size. Then re-blind the receiver's ``n_r +
    slots`` points with ``b_k`` and return their fingerprints shuffled.

    Security
    --------
    ``N_k``, the segment sizes and the keys never leave this party. A receiver that repeats
    a point is detected (abort); one that replaces its dummy points by others would learn
    the exact size, undetected: the DP guarantee assumes a semi-honest receiver (SPEC.md §10).
    """
    from privfin.psi.dpca import PROTOCOL, blind_positions, dummy_points, require_distinct

    n_s = len(prepared)
    n_r = handshake(ctx, PROTOCOL, params, n_s, [receiver])[receiver]
    slots = int(law.slots)
    curve = str(params.get("curve", "ristretto255"))
    dst = suite_domain(ctx, "ecdh", curve)
    for k, positions in enumerate(segments):
        key = suite_key(ctx, f"psi.dpca.sender.key.{k}", curve)
        rand = job_random(ctx, f"psi.dpca.sender.seed.{k}")
        matching = int(law.draw(rand))
        filler = slots - matching + (n_s - positions.size)
        dummy_idx = np.concatenate([np.arange(matching), np.arange(slots, slots + filler)]).astype(
            np.int64
        )
        total = n_s + slots
        own = np.empty((total, POINT_BYTES), dtype=np.uint8)
        own[: positions.size] = collect(
            blind_positions(ctx, key, prepared, positions, dst), positions.size, POINT_BYTES
        )
        own[positions.size :] = dummy_points(ctx, key, dummy_idx, k, curve)
        send_stream(ctx, receiver, f"dp{k}.b", [own[random_permutation(rand, total)]])
        del own
        incoming = recv_stream(ctx, receiver, f"dp{k}.a", n_r + slots, POINT_BYTES)
        blinded = blind_stream(ctx, key, incoming, receiver, "psi.reblind", n_r + slots)
        fab = collect((fingerprints(c) for c in blinded), n_r + slots, FINGERPRINT_BYTES)
        require_distinct(fab, receiver, "point")
        shuffled = fab[random_permutation(rand, n_r + slots)]
        send_stream(ctx, receiver, f"dp{k}.ab", [shuffled])
