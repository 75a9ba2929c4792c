"""Two-party RR22-class PSI: silent VOLE + OKVS (SPEC.md §8b).

Raghuraman–Rindal (CCS 2022), semi-honest, over GF(2^128). The receiver R encodes
``P = Encode({(x, H1(x))})`` in a random-band OKVS (:mod:`privfin.crypto.okvs`) of ``m``
slots and sends ``A' = A + P``, where ``(A, C)`` is its share of a random VOLE of length ``m``
(:mod:`privfin.crypto.vole`) and the sender S holds ``(Δ, B)`` with ``C = B + A·Δ``. S
computes ``K = B + Δ·A' = C + Δ·P`` and sends, in a random order, ``H2(Decode(K, y) + Δ·H1(y))``
truncated to ℓ bytes for each of its items; since decoding is linear and ``Decode(P, x) =
H1(x)``, the value of a common item equals R's ``H2(Decode(C, x))``. R matches.

Ids are hashed to 16-byte digests (KKRT's AES Merkle–Damgård, under a key both parties fix
after their inputs); ``H1``, ``H2`` are ``π_k(v) ⊕ v`` with fixed-key AES under two more such
keys. Everything is vectorised (AES over whole buffers, the OKVS and VOLE kernels).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto import gf128, okvs
from privfin.crypto import ot as otm
from privfin.crypto.ristretto import POINT_BYTES, InvalidPointError
from privfin.crypto.vole import VoleMessage, VoleParams, VoleReceiver, VoleSender
from privfin.errors import ProtocolAbort
from privfin.psi import _aes
from privfin.psi.common import U8, handshake, hash_domain, job_random, random_permutation
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
from privfin.runtime import Context

__all__ = ["OKVS_PARAMS", "run_rr22_receiver", "run_rr22_sender", "slots", "vole_params"]

_PROTOCOL = "rr22"
#: The OKVS of R's set (band 128 bits, m = ⌈1.25·n⌉ + 128; failure rate in crypto/SPEC.md).
OKVS_PARAMS = okvs.DEFAULT_PARAMS


@dataclass(frozen=True)
class _Keys:
    """Public keys both parties derive from their two shares (fixed after the inputs)."""

    ids: bytes
    value: bytes
    out: bytes
    ot_hash: bytes
    code: bytes

    @classmethod
    def derive(cls, dst: bytes, share_r: bytes, share_s: bytes) -> _Keys:
        def one(label: bytes) -> bytes:
            h = hashlib.sha256(b"privfin.psi.rr22.v1/" + label + b"/" + share_r + share_s + dst)
            return h.digest()[:16]

        return cls(*(one(x) for x in (b"ids", b"value", b"out", b"ot-hash", b"code")))


def slots(n_r: int) -> int:
    """OKVS slots (= VOLE length) for a receiver set of ``n_r`` items."""
    return OKVS_PARAMS.slots(n_r)


def vole_params(n_r: int, code_seed: bytes) -> VoleParams:
    return VoleParams.for_outputs(slots(n_r), code_seed)


def _h(key: bytes, rows: U8) -> U8:
    """``π_key(v) ⊕ v`` for every 16-byte row."""
    enc = _aes.ecb(key)
    return np.asarray(_aes.perm(enc, rows) ^ rows, dtype=np.uint8)


# ----------------------------------------------------------------------------- receiver


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
    base = otm.BaseOtSender(rnd)
    share = rnd.bytes(16)
    ctx.channel.send(sender, "rr22.setup", Rr22Setup(point=base.point, share=share))
    reply = ctx.channel.recv(sender, "rr22.reply", expect=Rr22Reply)
    points = np.frombuffer(reply.points, dtype=np.uint8).reshape(RR22_BASE_OTS, POINT_BYTES)
    try:
        k0, k1 = base.keys(points)
    except InvalidPointError as exc:
        raise ProtocolAbort(
            f"party {sender!r}: base-OT reply refused: {exc}", party=sender
        ) from None
    keys = _Keys.derive(hash_domain(ctx, _PROTOCOL), share, reply.share)
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
    c = receiver.output_c()  # while the sender takes in the table and decodes
    width = value_bytes(n_r, n_s)
    own = _h(keys.out, okvs.decode(c, store.seed, d, OKVS_PARAMS.band_words))[:, :width]
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


# ----------------------------------------------------------------------------- sender


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
    setup = ctx.channel.recv(receiver, "rr22.setup", expect=Rr22Setup)
    s_bits = np.frombuffer(rnd.bytes(RR22_BASE_OTS), dtype=np.uint8) & np.uint8(1)
    base = otm.BaseOtReceiver(rnd, s_bits)
    try:
        pts = base.reply(setup.point)
    except InvalidPointError as exc:
        raise ProtocolAbort(
            f"party {receiver!r}: base-OT point refused: {exc}", party=receiver
        ) from None
    share = rnd.bytes(16)
    ctx.channel.send(receiver, "rr22.reply", Rr22Reply(points=pts.tobytes(), share=share))
    keys = _Keys.derive(hash_domain(ctx, _PROTOCOL), setup.share, share)
    iknp = otm.IknpSender(s_bits, base.keys())
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
    d = digests(prepared, keys.ids)[perm]
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
