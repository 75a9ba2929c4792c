"""KKRT PSI, the receiver's role (SPEC.md §8): cuckoo table, the wide OT extension's
receiver side, matching."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto import ot as otm
from privfin.errors import ProtocolAbort
from privfin.psi.common import (
    U8,
    base_ots_sent,
    handshake,
    hash_domain,
    job_random,
    prefetch,
)
from privfin.psi.ids import PreparedIds
from privfin.psi.kkrt import (
    _PROTOCOL,
    _STASH_CLASS,
    HASHES,
    STASH,
    Matcher,
    _ecb,
    _Keys,
    bin_positions,
    codes,
    cuckoo,
    digests,
    n_bins,
    out_hash,
    table_size,
    value_bytes,
)
from privfin.psi.messages import (
    KKRT_BATCH_BINS,
    KKRT_CODE_BITS,
    Indices,
    KkrtExtend,
    KkrtReply,
    KkrtSetup,
    KkrtValues,
)
from privfin.runtime import Context

__all__ = ["run_kkrt_receiver"]


def run_kkrt_receiver(
    ctx: Context,
    prepared: PreparedIds,
    sender: str,
    params: Mapping[str, Any],
    *,
    reveal_to_sender: bool,
) -> npt.NDArray[np.int64]:
    """Run the KKRT receiver: returns the positions in ``prepared`` of the intersecting items.

    Security
    --------
    Semi-honest. Learns the intersection and ``|Y|``; the sender learns ``|X|`` (and the
    intersection if ``reveal_to_sender``). Every message is checked for size and order."""
    n_r = len(prepared)
    n_s = handshake(ctx, _PROTOCOL, params, n_r, [sender])[sender]
    rnd = job_random(ctx, "psi.kkrt.receiver.seed.key")
    t0 = time.perf_counter()
    k0, k1, shares = base_ots_sent(ctx, sender, rnd, KKRT_CODE_BITS, "kkrt", KkrtSetup, KkrtReply)
    keys = _Keys.derive(hash_domain(ctx, _PROTOCOL), *shares)
    t1 = time.perf_counter()
    ctx.metrics.add("psi.seconds.base_ot", t1 - t0)

    m = table_size(n_r)
    total = n_bins(n_r)
    width = value_bytes(n_r, n_s)
    d = digests(prepared, keys.ids)
    pos = bin_positions(d, keys.bins, m)
    rng = np.random.default_rng(int.from_bytes(rnd.bytes(16), "big"))
    table, which, stashed = cuckoo(pos, m, STASH, rng)
    item = np.full(total, -1, dtype=np.int64)
    item[:m] = table
    item[m : m + stashed.size] = stashed
    cls = np.zeros(total, dtype=np.int64)
    cls[:m] = np.maximum(which, 0)
    cls[m:] = _STASH_CLASS
    bin_d = np.frombuffer(rnd.bytes(16 * total), dtype=np.uint8).reshape(total, 16).copy()
    real = item >= 0
    bin_d[real] = d[item[real]]
    del d, pos, table, which  # only the bins are needed from here on (memory at 10M)
    t2 = time.perf_counter()
    ctx.metrics.add("psi.seconds.digest_cuckoo", t2 - t1)

    code_enc = _ecb(keys.code)
    hash_enc = _ecb(keys.hash)
    g0 = otm.RowPrg(k0)
    g1 = otm.RowPrg(k1)
    own = np.empty((total, width), dtype=np.uint8)

    def extend() -> Iterator[U8]:
        """The matrix ``u`` batch by batch; fills in this party's own values on the way.
        Runs ahead of the sending loop in a background thread (:func:`prefetch`)."""
        progress = ctx.progress.task("psi.kkrt.extend", total=total)
        for lo in range(0, total, KKRT_BATCH_BINS):
            ctx.cancel.raise_if_cancelled()
            hi = min(total, lo + KKRT_BATCH_BINS)
            cols = (hi - lo) // 8
            ccol = otm.transpose_bits(codes(code_enc, bin_d[lo:hi], cls[lo:hi]))
            t = g0.next(cols)
            u = g1.next(cols)
            u ^= t
            u ^= ccol
            rows = otm.transpose_bits(t)
            own[lo:hi] = out_hash(hash_enc, rows, np.arange(lo, hi, dtype=np.int64), width)
            progress.advance(hi - lo)
            yield np.ascontiguousarray(u)

    sent = 0
    at_bin = 0
    for u in prefetch(ctx, extend()):
        cols = u.shape[1]
        ctx.channel.send(sender, "kkrt.u", KkrtExtend(offset=at_bin, cols=cols, u=u.tobytes()))
        at_bin += 8 * cols
        sent += u.size
    ctx.metrics.add("psi.bytes_u", float(sent))
    t3 = time.perf_counter()
    ctx.metrics.add("psi.seconds.extend_send", t3 - t2)

    classes = HASHES + STASH
    matcher = Matcher(own, item, cls, width)
    t4 = time.perf_counter()
    ctx.metrics.add("psi.seconds.match_setup", t4 - t3)
    at = 0
    while at < n_s:
        msg = ctx.channel.recv(sender, "kkrt.values", expect=KkrtValues)
        r = msg.rows
        if msg.offset != at or r.shape[1] != classes * width or at + r.shape[0] > n_s:
            raise ProtocolAbort(
                f"party {sender!r} sent OPRF values at offset {msg.offset} of width "
                f"{r.shape[1]}; expected offset {at}, width {classes * width}, {n_s} rows",
                party=sender,
            )
        matcher.add(r, at)  # matched as it arrives: the sender's values are never all held
        at += r.shape[0]
    out, positions = matcher.result()
    ctx.metrics.add("psi.seconds.values_match", time.perf_counter() - t4)
    if reveal_to_sender:
        idx = positions
        ctx.channel.send(sender, "result", Indices(values=idx.astype(np.int64)))
    return out.astype(np.int64)
