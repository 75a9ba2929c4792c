"""RR22 PSI, the receiver's role (SPEC.md §8b): OKVS encoding, its VOLE half, matching."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto import okvs
from privfin.crypto import ot as otm
from privfin.crypto.vole import VoleMessage, VoleReceiver
from privfin.errors import ProtocolAbort
from privfin.psi.common import base_ots_sent, handshake, hash_domain, job_random
from privfin.psi.ids import PreparedIds
from privfin.psi.kkrt import Matcher, digests, value_bytes
from privfin.psi.messages import (
    CHUNK_ROWS,
    RR22_BASE_OTS,
    Chunk,
    Indices,
    Rr22Extend,
    Rr22Reply,
    Rr22Setup,
    Rr22Table,
    Rr22Values,
    Rr22Vole,
)
from privfin.psi.rr22 import (
    _PROTOCOL,
    OKVS_PARAMS,
    _h,
    _Keys,
    vole_params,
)
from privfin.runtime import Context

__all__ = ["run_rr22_receiver"]

#: threads that compute the receiver's VOLE output ``C``
_THREADS = min(2, os.cpu_count() or 1)


def run_rr22_receiver(
    ctx: Context,
    prepared: PreparedIds,
    sender: str,
    params: Mapping[str, Any],
    *,
    reveal_to_sender: bool,
) -> npt.NDArray[np.int64]:
    """Run the RR22 receiver: returns the positions in ``prepared`` of the intersecting items.

    Security
    --------
    Semi-honest. Learns the intersection and ``|Y|``; the sender learns ``|X|`` (and the
    intersection if ``reveal_to_sender``). Every message is checked for size and order."""
    n_r = len(prepared)
    n_s = handshake(ctx, _PROTOCOL, params, n_r, [sender])[sender]
    rnd = job_random(ctx, "psi.rr22.receiver.seed.key")
    t0 = time.perf_counter()
    k0, k1, shares = base_ots_sent(ctx, sender, rnd, RR22_BASE_OTS, "rr22", Rr22Setup, Rr22Reply)
    keys = _Keys.derive(hash_domain(ctx, _PROTOCOL), *shares)
    t1 = time.perf_counter()
    ctx.metrics.add("psi.seconds.base_ot", t1 - t0)

    vp = vole_params(n_r, keys.code)
    receiver = VoleReceiver(vp, rnd)
    u, t_rows = otm.IknpReceiver(k0, k1).extend(receiver.choices)
    ctx.channel.send(sender, "rr22.u", Rr22Extend(ots=vp.padded_ots, u=u.tobytes()))
    d = digests(prepared, keys.ids)
    store = okvs.encode(d, _h(keys.value, d), rnd, params=OKVS_PARAMS)
    t2 = time.perf_counter()
    ctx.metrics.add("psi.seconds.okvs_encode", t2 - t1)

    msg = ctx.channel.recv(sender, "rr22.vole", expect=Rr22Vole)
    if (msg.trees, msg.depth) != (vp.trees, vp.depth):
        raise ProtocolAbort(
            f"party {sender!r} sent a VOLE of {msg.trees} trees of depth {msg.depth}; "
            f"expected {vp.trees} of depth {vp.depth}",
            party=sender,
        )
    vm = VoleMessage(
        masked=np.frombuffer(msg.masked, np.uint8).reshape(vp.trees, vp.depth, 2, 16),
        sums=np.frombuffer(msg.sums, np.uint8).reshape(vp.trees, 16),
    )
    a = receiver.finish_a(t_rows, vm, otm.CrHash(keys.ot_hash))
    t3 = time.perf_counter()
    ctx.metrics.add("psi.seconds.vole", t3 - t2)

    masked = a ^ store.table
    del a
    ctx.channel.send(sender, "rr22.table", Rr22Table(seed=store.seed, slots=vp.n))
    for lo in range(0, vp.n, CHUNK_ROWS):
        rows = np.ascontiguousarray(masked[lo : lo + CHUNK_ROWS])
        ctx.channel.send(sender, "rr22.masked", Chunk(offset=lo, rows=rows))
    ctx.metrics.add("psi.bytes_table", float(masked.size))
    del masked
    ctx.metrics.add("psi.seconds.table_send", time.perf_counter() - t3)
    # C while the sender takes in the table and decodes: on two threads, since the sender
    # idles once its values are out and this is the longer path (0.45-0.7 s on one)
    c = receiver.output_c(threads=_THREADS)
    width = value_bytes(n_r, n_s)
    own = _h(keys.out, store.decode_encoded(c))[:, :width]  # d's hashes kept from encoding
    matcher = Matcher(
        np.ascontiguousarray(own), np.arange(n_r, dtype=np.int64), np.zeros(n_r, np.int64), width
    )
    t4 = time.perf_counter()
    ctx.metrics.add("psi.seconds.table_send_decode", t4 - t3)

    at = 0
    while at < n_s:
        vals = ctx.channel.recv(sender, "rr22.values", expect=Rr22Values)
        r = vals.rows
        if vals.offset != at or r.shape[1] != width or at + r.shape[0] > n_s:
            raise ProtocolAbort(
                f"party {sender!r} sent values at offset {vals.offset} of width {r.shape[1]}; "
                f"expected offset {at}, width {width}, {n_s} rows",
                party=sender,
            )
        matcher.add(r, at)
        at += r.shape[0]
    out, positions = matcher.result()
    ctx.metrics.add("psi.seconds.values_match", time.perf_counter() - t4)
    if reveal_to_sender:
        ctx.channel.send(sender, "result", Indices(values=positions.astype(np.int64)))
    return out.astype(np.int64)
