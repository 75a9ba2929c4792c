"""RR22 PSI, the sender's role (SPEC.md §8b): its VOLE half and the values of its items."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto import gf128, okvs
from privfin.crypto import ot as otm
from privfin.crypto.vole import VoleSender
from privfin.errors import ProtocolAbort
from privfin.psi.common import (
    base_ots_received,
    handshake,
    hash_domain,
    job_random,
    random_permutation,
)
from privfin.psi.ids import PreparedIds
from privfin.psi.kkrt import digests, value_bytes
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

__all__ = ["run_rr22_sender"]


def run_rr22_sender(
    ctx: Context,
    prepared: PreparedIds,
    receiver: str,
    params: Mapping[str, Any],
    *,
    reveal_to_sender: bool,
) -> npt.NDArray[np.int64] | None:
    """Run the RR22 sender: returns the positions of the intersecting items if the receiver
    reveals them, else ``None`` (it learns only ``|X|``).

    Security
    --------
    Semi-honest. Its values are sent in a uniformly random order; the value of an item the
    receiver does not hold is ``H2(c + Δ·z)`` with ``z ≠ 0`` known to the receiver and ``Δ``
    not: pseudorandom to it (SPEC.md §8b)."""
    n_s = len(prepared)
    n_r = handshake(ctx, _PROTOCOL, params, n_s, [receiver])[receiver]
    rnd = job_random(ctx, "psi.rr22.sender.seed.key")
    t0 = time.perf_counter()
    s_bits, chosen_keys, shares = base_ots_received(
        ctx, receiver, rnd, RR22_BASE_OTS, "rr22", Rr22Setup, Rr22Reply
    )
    keys = _Keys.derive(hash_domain(ctx, _PROTOCOL), *shares)
    iknp = otm.IknpSender(s_bits, chosen_keys)
    t1 = time.perf_counter()
    ctx.metrics.add("psi.seconds.base_ot", t1 - t0)

    vp = vole_params(n_r, keys.code)
    ext = ctx.channel.recv(receiver, "rr22.u", expect=Rr22Extend)
    if ext.ots != vp.padded_ots:
        raise ProtocolAbort(
            f"party {receiver!r} extended {ext.ots} OTs, expected {vp.padded_ots}",
            party=receiver,
        )
    q = iknp.extend(np.frombuffer(ext.u, np.uint8).reshape(RR22_BASE_OTS, ext.ots // 8))
    sender = VoleSender(vp, iknp.delta, rnd)
    vm = sender.message(q, otm.CrHash(keys.ot_hash))
    del q
    ctx.channel.send(
        receiver,
        "rr22.vole",
        Rr22Vole(
            trees=vp.trees, depth=vp.depth, masked=vm.masked.tobytes(), sums=vm.sums.tobytes()
        ),
    )
    b = sender.output()  # while the receiver finishes its half of the VOLE
    perm = random_permutation(rnd, n_s)
    d = okvs.take_rows(digests(prepared, keys.ids), perm)  # (0.03 s, not 0.11, at 1M)
    delta = sender.delta_int
    # Δ·H1(y), computed while the receiver finishes its VOLE
    dh = gf128.mul_scalar(_h(keys.value, d), delta)
    t2 = time.perf_counter()
    ctx.metrics.add("psi.seconds.vole", t2 - t1)

    table = ctx.channel.recv(receiver, "rr22.table", expect=Rr22Table)
    if table.slots != vp.n:
        raise ProtocolAbort(
            f"party {receiver!r} announced {table.slots} OKVS slots, expected {vp.n}",
            party=receiver,
        )
    masked = np.empty((vp.n, 16), np.uint8)
    lo = 0
    while lo < vp.n:
        chunk = ctx.channel.recv(receiver, "rr22.masked", expect=Chunk)
        rows = chunk.rows
        want = min(CHUNK_ROWS, vp.n - lo)
        if chunk.offset != lo or rows.shape != (want, 16):
            raise ProtocolAbort(
                f"party {receiver!r} sent table rows {chunk.offset}+{rows.shape[0]} of width "
                f"{rows.shape[1]}; expected {lo}+{want} of width 16",
                party=receiver,
            )
        masked[lo : lo + want] = rows
        lo += want
    t3 = time.perf_counter()
    ctx.metrics.add("psi.seconds.table_recv", t3 - t2)
    k = b ^ gf128.mul_scalar(masked, delta)
    del b, masked
    width = value_bytes(n_r, n_s)
    vals = okvs.decode(k, table.seed, d, OKVS_PARAMS.band_words)
    vals ^= dh
    out = np.ascontiguousarray(_h(keys.out, vals)[:, :width])
    for a in range(0, n_s, CHUNK_ROWS):
        ctx.channel.send(
            receiver, "rr22.values", Rr22Values(offset=a, rows=out[a : a + CHUNK_ROWS])
        )
    ctx.metrics.add("psi.seconds.values_send", time.perf_counter() - t3)
    if not reveal_to_sender:
        return None
    idx: Indices = ctx.channel.recv(receiver, "result", expect=Indices)
    if idx.values.size and int(idx.values[-1]) >= n_s:
        raise ProtocolAbort("receiver sent an index beyond our set", party=receiver)
    matched: npt.NDArray[np.int64] = perm[idx.values]
    return matched
