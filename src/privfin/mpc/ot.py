"""Two-party OT extension over a job channel: the message-exchanging driver of
:mod:`privfin.crypto.ot` (which holds the math and does no I/O).

One :class:`OtExtension` per pair of computing parties runs IKNP in **both directions at
once**: each party is the extension receiver of one instance and the sender of the other, so a
call to :meth:`OtExtension.cot` (or :meth:`OtExtension.rot`) makes every party both receive
OTs (with its choice bits) and send OTs (with its correlations) in the same rounds.

Messages (``mpc.ot.*``, typed in :mod:`privfin.mpc.messages`):

* setup: ``OtBaseSetup`` (``A`` and a hash-key share) both ways, then ``OtBaseReply``
  (``KAPPA`` points ``B_i``) both ways; every point is checked (``ProtocolAbort`` naming the
  peer on a bad one);
* per batch of at most ``batch`` OTs: ``OtExtend`` (the IKNP matrix ``u``) from each receiver,
  then, for correlated OT, ``OtCorrections`` from each sender. Batch counters, widths and
  correction lengths are checked against what the lockstep program expects.

What each party learns: the receiver its chosen messages only; the sender nothing about the
choice bits (``u`` is masked by the PRG expansion of keys it does not know). Semi-honest: a
party that sends wrong but well-formed ``u`` or corrections makes the outputs wrong without
being detected (src/privfin/crypto/SPEC.md).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from privfin.crypto import ot as otm
from privfin.crypto.ristretto import InvalidPointError
from privfin.errors import ConfigError, ProtocolAbort
from privfin.mpc.messages import OtBaseReply, OtBaseSetup, OtCorrections, OtExtend
from privfin.mpc.ring import ring_ops
from privfin.runtime import Context
from privfin.runtime.context import ProgressTask

__all__ = ["DEFAULT_BATCH", "FixedOts", "OtExtension", "OtStats"]

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]

#: OTs per batch (one ``u`` of 16 MiB); a batch of vector COTs also keeps ``OTs x width``
#: below :data:`_MAX_WORDS` uint64 words.
DEFAULT_BATCH = 1 << 20
_MAX_WORDS = 1 << 21
_MAX_WIDTH = 1 << 18

_TAG_SETUP = "mpc.ot.setup"
_TAG_REPLY = "mpc.ot.reply"
_TAG_U = "mpc.ot.u"
_TAG_CORR = "mpc.ot.corr"


@dataclass
class OtStats:
    """OTs run by this party in each role, and bytes of OT messages it sent."""

    received: int = 0
    sent: int = 0
    bytes_sent: int = 0
    batches: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class FixedOts:
    """OTs extended once for reuse (:meth:`OtExtension.extend_fixed`): the receiver's rows
    ``π(t_j)`` (16 bytes) and choice bits, or the sender's ``π(q_j) ‖ π(q_j ⊕ s)`` (32 bytes;
    ``bits`` is ``None``), ``π`` the hash's inner permutation (:meth:`CrHash.perm`), which
    does not depend on the tweak: each use then costs one AES call per hash."""

    rows: U8
    bits: U8 | None


def _gather(rows: U8, sel: npt.NDArray[np.int64]) -> U8:
    """``rows[sel]`` for rows of 16-byte blocks, each block moved as one element (a
    complex128 view: a same-dtype gather copies the bytes unchanged, several times faster
    than 16 uint8s)."""
    width = rows.shape[1]
    blocks = np.ascontiguousarray(rows).view(np.complex128).reshape(rows.shape[0], -1)
    return blocks[sel].view(np.uint8).reshape(-1, width)


def _batch_sizes(n: int, width: int, batch: int) -> list[int]:
    """Split ``n`` OTs into batches of whole 64-OT words (public: both ends compute it)."""
    cap = max(64, min(batch, _MAX_WORDS // max(width, 1)) // 64 * 64)
    out = []
    while n > 0:
        take = min(n, cap)
        out.append(take)
        n -= take
    return out


def _pack_bits(bits: U8) -> U8:
    """0/1 per OT -> packed bytes, padded to whole 64-bit words."""
    padded = np.zeros(otm.pad_count(bits.size), dtype=np.uint8)
    padded[: bits.size] = bits
    return np.packbits(padded, bitorder="little")


def _trimmed_size(widths: npt.NDArray[np.int64], width: int) -> int:
    return otm.trimmed_layout(widths, width)[1]


def _joined(parts: list[U64], width: int) -> U64:
    """The batches' outputs as one ``(n, width)`` array (no copy for a single batch)."""
    if not parts:
        return np.empty((0, width), dtype=np.uint64)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


class OtExtension:
    """IKNP OT extension in both directions between this party and ``peer``.

    Parameters
    ----------
    ctx:
        This party's context (channel, randomness).
    peer:
        The other computing party.
    first:
        Whether this party is the first of the pair (orders the hash-key shares).
    batch:
        OTs per message batch (a multiple of 64).
    kernel:
        Use the compiled AES-NI kernel of :mod:`privfin.crypto.ot` (``None``: where built;
        ``False``: the numpy path, which sends the same bytes and computes the same outputs).
    """

    def __init__(
        self,
        ctx: Context,
        peer: str,
        *,
        first: bool,
        batch: int = DEFAULT_BATCH,
        kernel: bool | None = None,
    ):
        if batch < 64 or batch % 64:
            raise ConfigError("the OT batch must be a positive multiple of 64")
        self.ctx = ctx
        self.peer = peer
        self.first = first
        self.batch = batch
        self.kernel = otm.KERNEL if kernel is None else kernel
        self.stats = OtStats()
        self._recv: otm.IknpReceiver | None = None
        self._send: otm.IknpSender | None = None
        self._hash: otm.CrHash | None = None
        self._tweak_r = 0  # OT index of the instance where this party receives
        self._tweak_s = 0  # ... where it sends
        self._count_r = 0  # batch counters
        self._count_s = 0
        #: progress of every OT of this session ("mpc.ot", open-ended total)
        self._all: ProgressTask | None = None

    # ------------------------------------------------------------------------ setup

    def setup(self) -> None:
        """``KAPPA`` base OTs in each direction (Simplest OT over ristretto255)."""
        if self._hash is not None:
            return
        ch = self.ctx.channel
        rnd = self.ctx.random
        base_sender = otm.BaseOtSender(rnd)
        key_share = rnd.bytes(16)
        ch.send(self.peer, _TAG_SETUP, OtBaseSetup(point=base_sender.point, hash_key=key_share))
        theirs = ch.recv(self.peer, _TAG_SETUP, expect=OtBaseSetup)
        s = np.frombuffer(rnd.bytes(otm.KAPPA), dtype=np.uint8) & np.uint8(1)
        base_receiver = otm.BaseOtReceiver(rnd, s)
        try:
            reply = base_receiver.reply(theirs.point)
        except InvalidPointError as exc:
            raise ProtocolAbort(f"peer's base-OT point refused: {exc}", party=self.peer) from None
        ch.send(self.peer, _TAG_REPLY, OtBaseReply(points=reply.tobytes()))
        got = ch.recv(self.peer, _TAG_REPLY, expect=OtBaseReply)
        points = np.frombuffer(got.points, dtype=np.uint8).reshape(otm.KAPPA, 32)
        try:
            k0, k1 = base_sender.keys(points)
        except InvalidPointError as exc:
            raise ProtocolAbort(f"peer's base-OT reply refused: {exc}", party=self.peer) from None
        self._recv = otm.IknpReceiver(k0, k1)
        self._send = otm.IknpSender(s, base_receiver.keys())
        shares = (key_share, theirs.hash_key) if self.first else (theirs.hash_key, key_share)
        key = hashlib.sha256(b"privfin.ot.hash-key" + shares[0] + shares[1]).digest()[:16]
        self._hash = otm.CrHash(key)
        self.stats.bytes_sent += 32 + 16 + otm.KAPPA * 32

    def _ready(self) -> tuple[otm.IknpReceiver, otm.IknpSender, otm.CrHash]:
        self.setup()
        assert self._recv is not None and self._send is not None and self._hash is not None
        return self._recv, self._send, self._hash

    # --------------------------------------------------------------------- one batch

    def _send_u(self, choices: U8) -> U8:
        recv, _, _ = self._ready()
        packed = _pack_bits(choices)
        u, t = recv.extend(packed)
        self.ctx.channel.send(
            self.peer, _TAG_U, OtExtend(counter=self._count_r, cols=packed.size, u=u.tobytes())
        )
        self.stats.bytes_sent += u.size
        return t

    def _recv_u(self, n: int) -> U8:
        _, send, _ = self._ready()
        msg = self.ctx.channel.recv(self.peer, _TAG_U, expect=OtExtend)
        cols = otm.pad_count(n) // 8
        if msg.counter != self._count_s or msg.cols != cols:
            raise ProtocolAbort(
                f"OT batch {msg.counter} of {msg.cols * 8} OTs, expected batch {self._count_s} "
                f"of {cols * 8}",
                party=self.peer,
            )
        u = np.frombuffer(msg.u, dtype=np.uint8).reshape(otm.KAPPA, cols)
        return send.extend(u)

    # ------------------------------------------------------------------------ batches

    def _batches(
        self,
        bits: U8,
        n_s: int,
        widths: tuple[int, int],
        send_fn: Callable[[U8, int, int, int], bytes | None],
        recv_fn: Callable[[U8, int, int, int, bytes | None], None],
        expect: Callable[[int, int], int] | None,
        task: ProgressTask | None,
    ) -> None:
        """Run the OTs batch by batch: this party receives ``bits.size`` OTs and sends
        ``n_s``. ``send_fn(q, tweak, lo, hi)`` returns the sender's message for OTs
        ``[lo, hi)`` (``None``: random OT, nothing to send); ``recv_fn(t, tweak, lo, hi,
        message)`` consumes the receiver's rows; ``expect(lo, hi)`` is the message size the
        receiver requires (``None``: no message)."""
        n_r = bits.size
        sizes_r = _batch_sizes(n_r, widths[0], self.batch)
        sizes_s = _batch_sizes(n_s, widths[1], self.batch)
        at_r = at_s = 0
        for k in range(max(len(sizes_r), len(sizes_s))):
            nr = sizes_r[k] if k < len(sizes_r) else 0
            ns = sizes_s[k] if k < len(sizes_s) else 0
            t = self._send_u(bits[at_r : at_r + nr]) if nr else None
            if ns:
                q = self._recv_u(ns)
                data = send_fn(q, self._tweak_s, at_s, at_s + ns)
                if data is not None:
                    self.ctx.channel.send(
                        self.peer, _TAG_CORR, OtCorrections(counter=self._count_s, data=data)
                    )
                    self.stats.bytes_sent += len(data)
                self._tweak_s += otm.pad_count(ns)
                self._count_s += 1
                self.stats.sent += ns
                at_s += ns
            if nr:
                assert t is not None
                msg: bytes | None = None
                if expect is not None:
                    got = self.ctx.channel.recv(self.peer, _TAG_CORR, expect=OtCorrections)
                    size = expect(at_r, at_r + nr)
                    if got.counter != self._count_r or len(got.data) != size:
                        raise ProtocolAbort(
                            f"OT message {got.counter} of {len(got.data)} bytes, expected "
                            f"{self._count_r} of {size}",
                            party=self.peer,
                        )
                    msg = got.data
                try:
                    recv_fn(t, self._tweak_r, at_r, at_r + nr, msg)
                except otm.TrimmedLayoutError as exc:
                    raise ProtocolAbort(
                        f"OT message {self._count_r} refused: {exc}", party=self.peer
                    ) from None
                self._tweak_r += otm.pad_count(nr)
                self._count_r += 1
                self.stats.received += nr
                at_r += nr
            self.stats.batches += 1
            if task is not None:
                task.advance(nr + ns)
            if self._all is None:
                self._all = self.ctx.progress.task("mpc.ot", total=None)
            self._all.advance(nr + ns)

    @staticmethod
    def _padded_bits(bits: U8, lo: int, hi: int) -> U8:
        out = np.zeros(otm.pad_count(hi - lo), dtype=np.uint8)
        out[: hi - lo] = bits[lo:hi]
        return out

    # ------------------------------------------------------------------------ public

    def _check_bits(self, choices: npt.ArrayLike) -> U8:
        bits = np.asarray(choices, dtype=np.uint8).reshape(-1)
        if bits.size and int(bits.max()) > 1:
            raise ConfigError("OT choices are bits (0/1)")
        return bits

    @ring_ops
    def cot(
        self,
        choices: npt.ArrayLike,
        corr: npt.ArrayLike,
        *,
        recv_width: int,
        recv_bits: npt.ArrayLike | None = None,
        send_bits: npt.ArrayLike | None = None,
        repeat: int = 1,
        task: ProgressTask | None = None,
    ) -> tuple[U64, U64]:
        """Correlated OTs over Z_2^64 in both directions.

        This party receives ``len(choices)`` OTs of ``recv_width`` words (its choice bits,
        0/1) and sends ``len(corr)`` OTs with correlations ``corr`` (``(n_s, L)`` uint64); the
        peer calls with the mirror sizes. Returns ``(received, own)``: ``received[j] =
        h_j + c_j·Δ_j`` (the peer's ``h_j`` and ``Δ_j``), ``own[j] = h_j`` for the OTs sent.

        ``recv_bits`` / ``send_bits`` (public, per OT, 0–64; default 64): only the low bits
        of each word are transferred, packed to the bit (:func:`privfin.crypto.ot.trimmed_layout`),
        so received words are correct modulo ``2**bits`` only (the caller multiplies them by a
        power of two that discards the rest).

        ``repeat``: this party sends ``repeat·len(corr)`` OTs, OT ``j`` with correlation
        ``corr[j % len(corr)]`` (a correlation shared by many OTs, e.g. a Gilboa operand
        used for each of its bits, is not copied for each).
        """
        bits = self._check_bits(choices)
        c = np.asarray(corr, dtype=np.uint64)
        if c.ndim != 2:
            raise ConfigError("cot: correlations are an (n, width) array")
        if repeat < 1 or (repeat > 1 and c.shape[0] == 0):
            raise ConfigError("cot: repeat is a positive count of non-empty correlations")
        n_r, n_s, w_s = bits.size, c.shape[0] * repeat, c.shape[1]
        if max(w_s, recv_width) > _MAX_WIDTH:
            raise ConfigError(f"correlated OTs of more than {_MAX_WIDTH} words: split the product")
        rb = np.full(n_r, 64, np.int64) if recv_bits is None else np.asarray(recv_bits, np.int64)
        sb = np.full(n_s, 64, np.int64) if send_bits is None else np.asarray(send_bits, np.int64)
        if rb.shape != (n_r,) or sb.shape != (n_s,):
            raise ConfigError("cot: bit widths must be one per OT")
        for b in (rb, sb):
            if b.size and (b.min() < 0 or b.max() > 64):
                raise ConfigError("cot: bit widths are 0-64")
        _, send, h = self._ready()
        parts_r: list[U64] = []  # batch outputs, in order (joined only if there are several)
        parts_s: list[U64] = []

        def send_fn(q: U8, tweak: int, lo: int, hi: int) -> bytes:
            own, d = otm.cot_send_trimmed(
                q, send.delta, h, tweak, c, sb[lo:hi], phase=lo % c.shape[0], kernel=self.kernel
            )
            assert own is not None
            parts_s.append(own)
            return d

        def recv_fn(t: U8, tweak: int, lo: int, hi: int, msg: bytes | None) -> None:
            assert msg is not None
            got = otm.cot_receive_trimmed(
                t, bits[lo:hi], h, tweak, msg, rb[lo:hi], recv_width, kernel=self.kernel
            )
            assert got is not None
            parts_r.append(got)

        def expect(lo: int, hi: int) -> int:
            return _trimmed_size(rb[lo:hi], recv_width)

        self._batches(bits, n_s, (recv_width, w_s), send_fn, recv_fn, expect, task)
        return _joined(parts_r, recv_width), _joined(parts_s, w_s)

    @ring_ops
    def cot_sum(
        self,
        choices: npt.ArrayLike,
        corr: npt.ArrayLike,
        *,
        period: int,
        shifts: npt.ArrayLike,
        nbits: npt.ArrayLike,
        repeat: int = 1,
        task: ProgressTask | None = None,
    ) -> U64:
        """Symmetric correlated OTs reduced as they arrive (Gilboa products).

        Both parties receive ``len(choices)`` OTs and send as many, ``repeat·len(corr)``, of
        the width of ``corr`` (OT ``j`` with correlation ``corr[j % len(corr)]``); the bit
        widths ``nbits`` (0-64) and the left ``shifts`` (0-63) are public, one per OT, the same for
        both directions. Returns ``acc`` (``(period, width)`` uint64) with
        ``acc[i] = Σ_{j ≡ i mod period} (received_j − own_j) << shifts[j]``: what :meth:`cot`
        returns, summed, without holding every OT's words (the kernel adds them into ``acc``
        as it hashes; the numpy path sums the outputs of :meth:`cot`)."""
        bits = self._check_bits(choices)
        c = np.ascontiguousarray(corr, dtype=np.uint64)
        n = bits.size
        if c.ndim != 2 or c.shape[0] * repeat != n or (n and c.shape[0] == 0):
            raise ConfigError("cot_sum: as many OTs sent as received, repeat·len(corr)")
        width = c.shape[1]
        if period < 1 or n % period:
            raise ConfigError("cot_sum: the period divides the number of OTs")
        sh = np.asarray(shifts, dtype=np.int64)
        nb = np.asarray(nbits, dtype=np.int64)
        if sh.shape != (n,) or nb.shape != (n,) or (n and (sh.min() < 0 or sh.max() > 63)):
            raise ConfigError("cot_sum: one shift (0-63) and one bit width per OT")
        if not self.kernel:
            got, own = self.cot(
                bits, c, recv_width=width, recv_bits=nb, send_bits=nb, repeat=repeat, task=task
            )
            got -= own
            got <<= sh.astype(np.uint64).reshape(-1, 1)
            summed: U64 = np.sum(got.reshape(-1, period, width), axis=0, dtype=np.uint64)
            return summed
        # the kernel reduces each direction as it hashes: the two directions of cot_sums,
        # with the same widths and shifts, added
        acc, acc_s = self.cot_sums(
            bits,
            c,
            period=period,
            recv_width=width,
            recv_bits=nb,
            send_bits=nb,
            recv_shifts=sh,
            send_shifts=sh,
            repeat=repeat,
            task=task,
        )
        acc += acc_s
        return acc

    @ring_ops
    def cot_sums(
        self,
        choices: npt.ArrayLike,
        corr: npt.ArrayLike,
        *,
        period: int,
        recv_width: int,
        recv_bits: npt.ArrayLike,
        send_bits: npt.ArrayLike,
        recv_shifts: npt.ArrayLike,
        send_shifts: npt.ArrayLike,
        repeat: int = 1,
        task: ProgressTask | None = None,
    ) -> tuple[U64, U64]:
        """Correlated OTs in both directions, of different counts and widths (as
        :meth:`cot`), each direction reduced as it arrives (as :meth:`cot_sum`).

        Returns ``(acc_r, acc_s)``: ``acc_r[i] = Σ_{j ≡ i mod period} received_j <<
        recv_shifts[j]`` (``(period, recv_width)``) over the OTs this party receives and
        ``acc_s[i] = −Σ_{j ≡ i mod period} own_j << send_shifts[j]`` (``(period, width of
        corr)``) over those it sends: a Gilboa product's two shares without holding every
        OT's words."""
        bits = self._check_bits(choices)
        c = np.ascontiguousarray(corr, dtype=np.uint64)
        if c.ndim != 2:
            raise ConfigError("cot_sums: correlations are an (n, width) array")
        if repeat < 1 or (repeat > 1 and c.shape[0] == 0):
            raise ConfigError("cot_sums: repeat is a positive count of non-empty correlations")
        n_r, n_s, w_s = bits.size, c.shape[0] * repeat, c.shape[1]
        if max(w_s, recv_width, 1) > _MAX_WIDTH:
            raise ConfigError(f"correlated OTs of more than {_MAX_WIDTH} words: split the product")
        rb = np.asarray(recv_bits, dtype=np.int64)
        sb = np.asarray(send_bits, dtype=np.int64)
        rs = np.asarray(recv_shifts, dtype=np.int64)
        ss = np.asarray(send_shifts, dtype=np.int64)
        if rb.shape != (n_r,) or rs.shape != (n_r,) or sb.shape != (n_s,) or ss.shape != (n_s,):
            raise ConfigError("cot_sums: one bit width and one shift per OT")
        for b, sh in ((rb, rs), (sb, ss)):
            if b.size and (b.min() < 0 or b.max() > 64 or sh.min() < 0 or sh.max() > 63):
                raise ConfigError("cot_sums: bit widths 0-64 and shifts 0-63")
        if period < 1 or n_r % period or n_s % period:
            raise ConfigError("cot_sums: the period divides the number of OTs")
        acc_r = np.zeros((period, recv_width), dtype=np.uint64)
        acc_s = np.zeros((period, w_s), dtype=np.uint64)
        rs8, ss8 = rs.astype(np.uint8), ss.astype(np.uint8)
        _, send, h = self._ready()

        def send_fn(q: U8, tweak: int, lo: int, hi: int) -> bytes:
            _, d = otm.cot_send_trimmed(
                q,
                send.delta,
                h,
                tweak,
                c,
                sb[lo:hi],
                phase=lo % c.shape[0],
                acc=acc_s,
                acc_phase=lo % period,
                shifts=ss8[lo:hi],
                kernel=self.kernel,
            )
            return d

        def recv_fn(t: U8, tweak: int, lo: int, hi: int, msg: bytes | None) -> None:
            assert msg is not None
            otm.cot_receive_trimmed(
                t,
                bits[lo:hi],
                h,
                tweak,
                msg,
                rb[lo:hi],
                recv_width,
                acc=acc_r,
                acc_phase=lo % period,
                shifts=rs8[lo:hi],
                kernel=self.kernel,
            )

        def expect(lo: int, hi: int) -> int:
            return _trimmed_size(rb[lo:hi], recv_width)

        self._batches(bits, n_s, (recv_width, w_s), send_fn, recv_fn, expect, task)
        return acc_r, acc_s

    @ring_ops
    def chosen(
        self,
        choices: npt.ArrayLike,
        x0: npt.ArrayLike,
        x1: npt.ArrayLike,
        *,
        recv_width: int,
        task: ProgressTask | None = None,
    ) -> U64:
        """Chosen-message OTs in both directions: this party receives ``x_{c_j}`` of the
        peer's pairs (``recv_width`` words each) for its choice bits, and sends its pairs
        ``(x0[j], x1[j])`` (``(n_s, L)`` uint64 each). Returns the received words."""
        bits = self._check_bits(choices)
        m0 = np.asarray(x0, dtype=np.uint64)
        m1 = np.asarray(x1, dtype=np.uint64)
        if m0.ndim != 2 or m0.shape != m1.shape:
            raise ConfigError("chosen OT: the two message arrays are (n, width) and alike")
        n_s, w_s = m0.shape
        if max(w_s, recv_width) > _MAX_WIDTH:
            raise ConfigError(f"OT messages of more than {_MAX_WIDTH} words")
        _, send, h = self._ready()
        out_r = np.empty((bits.size, recv_width), dtype=np.uint64)

        def send_fn(q: U8, tweak: int, lo: int, hi: int) -> bytes:
            a = np.zeros((q.shape[0], w_s), dtype=np.uint64)
            b = np.zeros((q.shape[0], w_s), dtype=np.uint64)
            a[: hi - lo] = m0[lo:hi]
            b[: hi - lo] = m1[lo:hi]
            e0, e1 = otm.chosen_send(q, send.delta, h, tweak, a, b)
            return e0[: hi - lo].tobytes() + e1[: hi - lo].tobytes()

        def recv_fn(t: U8, tweak: int, lo: int, hi: int, msg: bytes | None) -> None:
            assert msg is not None
            n = hi - lo
            both = np.frombuffer(msg, dtype="<u8").astype(np.uint64).reshape(2, n, recv_width)
            e0 = np.zeros((t.shape[0], recv_width), dtype=np.uint64)
            e1 = np.zeros((t.shape[0], recv_width), dtype=np.uint64)
            e0[:n], e1[:n] = both[0], both[1]
            got = otm.chosen_receive(t, self._padded_bits(bits, lo, hi), h, tweak, e0, e1)
            out_r[lo:hi] = got[:n]

        def expect(lo: int, hi: int) -> int:
            return 16 * (hi - lo) * recv_width

        self._batches(bits, n_s, (recv_width, w_s), send_fn, recv_fn, expect, task)
        return out_r

    def rot(
        self,
        choices: npt.ArrayLike,
        n_send: int,
        *,
        bits: int = 1,
        task: ProgressTask | None = None,
    ) -> tuple[U8, U8, U8]:
        """Random OTs with ``bits``-bit messages (1-8) in both directions: returns
        ``(received, m0, m1)`` where ``received[j] = m_{c_j}`` of the peer's pair and
        ``(m0, m1)`` are this party's random pairs for the ``n_send`` OTs it sends. Only ``u``
        crosses the wire."""
        choice_bits = self._check_bits(choices)
        _, send, h = self._ready()
        v = np.empty(choice_bits.size, dtype=np.uint8)
        m0 = np.empty(n_send, dtype=np.uint8)
        m1 = np.empty(n_send, dtype=np.uint8)

        def send_fn(q: U8, tweak: int, lo: int, hi: int) -> None:
            a, b = otm.rot_send(q, send.delta, h, tweak, bits)
            m0[lo:hi] = a[: hi - lo]
            m1[lo:hi] = b[: hi - lo]

        def recv_fn(t: U8, tweak: int, lo: int, hi: int, msg: bytes | None) -> None:
            v[lo:hi] = otm.rot_receive(t, h, tweak, bits)[: hi - lo]

        self._batches(choice_bits, n_send, (1, 1), send_fn, recv_fn, None, task)
        return v, m0, m1

    # ------------------------------------------------ OTs extended once, used many times

    @ring_ops
    def extend_fixed(
        self, choices: npt.ArrayLike, n_send: int, *, task: ProgressTask | None = None
    ) -> tuple[FixedOts, FixedOts]:
        """IKNP extension in both directions, kept for reuse: this party receives
        ``len(choices)`` OTs with these (fixed) choice bits and sends ``n_send`` (the peer
        calls with the mirror sizes). Only ``u`` crosses the wire, once. Returns
        ``(received, sent)``: the receiver's rows ``t_j`` with its choice bits, and the
        sender's rows ``q_j``; :meth:`cot_fixed_sums` turns them into correlated OTs as many
        times as needed, each time hashed under fresh tweaks."""
        bits = self._check_bits(choices)
        if n_send < 0:
            raise ConfigError("extend_fixed: a negative count of OTs")
        _, sender, h = self._ready()
        t_all = np.empty((bits.size, otm.KEY_BYTES), dtype=np.uint8)
        q_all = np.empty((n_send, 2 * otm.KEY_BYTES), dtype=np.uint8)

        def send_fn(q: U8, tweak: int, lo: int, hi: int) -> None:
            rows = q[: hi - lo]
            q_all[lo:hi, : otm.KEY_BYTES] = h.perm(rows)
            q_all[lo:hi, otm.KEY_BYTES :] = h.perm(rows ^ sender.delta)

        def recv_fn(t: U8, tweak: int, lo: int, hi: int, msg: bytes | None) -> None:
            t_all[lo:hi] = h.perm(t[: hi - lo])

        self._batches(bits, n_send, (1, 1), send_fn, recv_fn, None, task)
        return FixedOts(t_all, bits.copy()), FixedOts(q_all, None)

    def _take_tweak(self, n: int, *, sender: bool) -> int:
        """A fresh tweak base for ``n`` hashed rows of the instance where this party sends
        (``sender``) or receives: the counter every batch of that instance advances, so no
        (row index, tweak) pair is ever hashed twice in a session."""
        if sender:
            tweak = self._tweak_s
            self._tweak_s += otm.pad_count(max(n, 1))
        else:
            tweak = self._tweak_r
            self._tweak_r += otm.pad_count(max(n, 1))
        self.stats.extra["tweaks"] = self.stats.extra.get("tweaks", 0) + 1
        return tweak

    @ring_ops
    def cot_fixed_sums(
        self,
        recv: FixedOts | None,
        recv_rows: slice | npt.NDArray[np.int64],
        send: FixedOts | None,
        send_rows: slice | npt.NDArray[np.int64],
        corr: npt.ArrayLike,
        *,
        recv_widths: tuple[int, int, int],
        send_widths: tuple[int, int, int],
        recv_period: int,
        send_period: int,
    ) -> tuple[U64, U64]:
        """One use of OTs of :meth:`extend_fixed` as one-word correlated OTs, both ways,
        reduced as they arrive (as :meth:`cot_sums`): this party receives the OTs
        ``recv.rows[recv_rows]`` (a slice: no copy; or indices; choice bits
        ``recv.bits[recv_rows]``) and sends ``send.rows[send_rows]``, OT ``j`` with
        correlation ``corr[j % len(corr)]`` (one word each).

        ``*_widths = (K, m, L)``: the OTs are ``K`` runs of ``m``, run ``k`` for bit ``k``
        of a product modulo ``2**L``: its corrections keep ``L − k`` bits and its words are
        added shifted left by ``k`` (public; the peer passes the mirror values).

        Every use hashes its rows under a fresh tweak (:meth:`_take_tweak`), so the pads of
        different uses of one OT are independent outputs of the tweakable correlation-robust
        hash: only the sender's trimmed corrections travel (one message per batch, its
        counter and size checked), no ``u``. Returns ``(acc_r, acc_s)``: ``acc_r[i] =
        Σ_{j ≡ i mod recv_period} received_j << k_j`` and ``acc_s[i] = −Σ_{j ≡ i mod
        send_period} own_j << k_j``."""
        c = np.ascontiguousarray(corr, dtype=np.uint64)
        rk, rm, rl = recv_widths
        sk, sm, sl = send_widths
        for k, m, ring in (recv_widths, send_widths):
            if k < 0 or m < 0 or not 1 <= ring <= 64 or k > ring:
                raise ConfigError("cot_fixed_sums: runs of bits 0 to L − 1 of a ring of L bits")
        n_r, n_s = rk * rm, sk * sm
        for rows, ots, n in ((recv_rows, recv, n_r), (send_rows, send, n_s)):
            if not n:
                continue
            if ots is None:
                raise ConfigError("cot_fixed_sums: OTs to use but none extended")
            size = ots.rows.shape[0]
            if isinstance(rows, slice):
                lo, hi, step = rows.indices(size)
                if step != 1 or hi - lo != n:
                    raise ConfigError("cot_fixed_sums: a slice of as many OTs as the runs")
            else:
                sel = np.asarray(rows)
                if sel.shape != (n,) or sel.min() < 0 or sel.max() >= size:
                    raise ConfigError("cot_fixed_sums: OT indices out of range")
        if c.ndim != 2 or c.shape[1] != 1 or (n_s and c.shape[0] == 0):
            raise ConfigError("cot_fixed_sums: one-word correlations")
        if recv_period < 1 or send_period < 1 or n_r % recv_period or n_s % send_period:
            raise ConfigError("cot_fixed_sums: the periods divide the numbers of OTs")
        rb, rs = _runs(rk, rm, rl)
        sb, ss = _runs(sk, sm, sl)
        acc_r = np.zeros((recv_period, 1), dtype=np.uint64)
        acc_s = np.zeros((send_period, 1), dtype=np.uint64)
        _, sender, h = self._ready()
        sizes_r = _batch_sizes(n_r, 1, self.batch)
        sizes_s = _batch_sizes(n_s, 1, self.batch)
        at_r = at_s = 0
        ch = self.ctx.channel
        for k in range(max(len(sizes_r), len(sizes_s))):
            nr = sizes_r[k] if k < len(sizes_r) else 0
            ns = sizes_s[k] if k < len(sizes_s) else 0
            if ns:
                assert send is not None
                lo, hi = at_s, at_s + ns
                _, data = otm.cot_send_trimmed(
                    _rows(send, send_rows, lo, hi)[0],
                    sender.delta,
                    h,
                    self._take_tweak(ns, sender=True),
                    c,
                    sb[lo:hi],
                    phase=lo % c.shape[0],
                    acc=acc_s,
                    acc_phase=lo % send_period,
                    shifts=ss[lo:hi],
                    kernel=self.kernel,
                    prepermuted=True,
                )
                ch.send(self.peer, _TAG_CORR, OtCorrections(counter=self._count_s, data=data))
                self.stats.bytes_sent += len(data)
                self._count_s += 1
                self.stats.sent += ns
                at_s = hi
            if nr:
                assert recv is not None
                lo, hi = at_r, at_r + nr
                got = ch.recv(self.peer, _TAG_CORR, expect=OtCorrections)
                size = _run_bytes(rk, rm, rl, lo, hi)
                if got.counter != self._count_r or len(got.data) != size:
                    raise ProtocolAbort(
                        f"OT message {got.counter} of {len(got.data)} bytes, expected "
                        f"{self._count_r} of {size}",
                        party=self.peer,
                    )
                t, bits = _rows(recv, recv_rows, lo, hi)
                try:
                    otm.cot_receive_trimmed(
                        t,
                        bits,
                        h,
                        self._take_tweak(nr, sender=False),
                        got.data,
                        rb[lo:hi],
                        1,
                        acc=acc_r,
                        acc_phase=lo % recv_period,
                        shifts=rs[lo:hi],
                        kernel=self.kernel,
                        prepermuted=True,
                    )
                except otm.TrimmedLayoutError as exc:
                    raise ProtocolAbort(
                        f"OT message {self._count_r} refused: {exc}", party=self.peer
                    ) from None
                self._count_r += 1
                self.stats.received += nr
                at_r = hi
            self.stats.batches += 1
        return acc_r, acc_s


@functools.lru_cache(maxsize=64)
def _runs(k: int, m: int, ring: int) -> tuple[npt.NDArray[np.int64], U8]:
    """Per OT of ``k`` runs of ``m`` (run ``b`` for bit ``b`` of a ring of ``ring`` bits):
    the correction's bits ``ring − b`` and the shift ``b`` (read-only, cached)."""
    bits = np.repeat(ring - np.arange(k, dtype=np.int64), m)
    shifts = np.repeat(np.arange(k, dtype=np.uint8), m)
    bits.flags.writeable = False
    shifts.flags.writeable = False
    return bits, shifts


def _run_bytes(k: int, m: int, ring: int, lo: int, hi: int) -> int:
    """Bytes of the trimmed corrections of OTs ``[lo, hi)`` of :func:`_runs`."""
    total = 0
    for b in range(lo // m if m else 0, k):
        a, e = max(lo, b * m), min(hi, (b + 1) * m)
        if a >= e:
            break
        total += (e - a) * (ring - b)
    return (total + 7) // 8


def _rows(ots: FixedOts, rows: slice | npt.NDArray[np.int64], lo: int, hi: int) -> tuple[U8, U8]:
    """The rows (and choice bits, if any) of OTs ``[lo, hi)`` of a use (see
    :meth:`OtExtension.cot_fixed_sums`): a view for a slice, a gather for indices."""
    if isinstance(rows, slice):
        start = rows.indices(ots.rows.shape[0])[0]
        sel: slice | npt.NDArray[np.int64] = slice(start + lo, start + hi)
        got = ots.rows[sel]
    else:
        sel = np.asarray(rows)[lo:hi]
        got = _gather(ots.rows, sel)
    bits = ots.bits[sel] if ots.bits is not None else np.zeros(0, np.uint8)
    return got, bits
