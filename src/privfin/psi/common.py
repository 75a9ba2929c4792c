"""Building blocks shared by the PSI roles: handshake, keys, bulk hashing and blinding on the
compute backend, and streaming of point arrays in bounded chunks."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from privfin.crypto import ot as otm
from privfin.crypto import ristretto, x25519
from privfin.crypto.blind_tasks import blind_task, hash_blind_task
from privfin.crypto.prg import SEED_BYTES, PrgRandom
from privfin.crypto.random import RandomSource
from privfin.crypto.ristretto import POINT_BYTES, BlindingKey, InvalidPointError
from privfin.crypto.x25519 import X25519Key
from privfin.errors import ProtocolAbort
from privfin.psi.ids import PreparedIds
from privfin.psi.messages import (
    CHUNK_ROWS,
    CURVES,
    FINGERPRINT_BYTES,
    PROTOCOL_VERSION,
    Chunk,
    Hello,
    KkrtReply,
    KkrtSetup,
    Rr22Reply,
    Rr22Setup,
)
from privfin.runtime import Context

__all__ = [
    "GroupKey",
    "base_ots_received",
    "base_ots_sent",
    "blind_stream",
    "blinding_key",
    "collect",
    "encode_keys",
    "fingerprints",
    "handshake",
    "hash_and_blind",
    "hash_domain",
    "job_random",
    "prefetch",
    "random_permutation",
    "recv_stream",
    "rows_in",
    "send_stream",
    "sortable",
    "suite_domain",
    "suite_key",
    "unique_sorted",
]

U8 = npt.NDArray[np.uint8]

#: A party's secret blinding key in either group.
GroupKey = BlindingKey | X25519Key
_INVALID = (ristretto.InvalidPointError, x25519.InvalidPointError)


def hash_domain(ctx: Context, protocol: str) -> bytes:
    """Domain separation tag of hash-to-group: protocol version, protocol, job and component,
    so points of one job are useless in any other."""
    dst = f"privfin/psi/v{PROTOCOL_VERSION}/{protocol}/{ctx.job}/{ctx.component}".encode()
    return dst[:255]


def encode_keys(keys: Sequence[str]) -> list[bytes]:
    """UTF-8 bytes of normalised keys (lone surrogates kept, never an error)."""
    return [k.encode("utf-8", "surrogatepass") for k in keys]


def blinding_key(ctx: Context, name: str) -> BlindingKey:
    """This party's secret ristretto255 scalar for the job, checkpointed before first use so a
    restarted party resends identical messages."""
    saved = ctx.artifacts.get(name)
    if saved is not None:
        return BlindingKey.from_secret_bytes(saved)
    key = BlindingKey.generate(ctx.random)
    ctx.artifacts.put(name, key.secret_bytes_for_checkpoint())
    return key


def suite_key(ctx: Context, name: str, curve: str) -> GroupKey:
    """This party's secret key for the job in ``curve``'s group (one of :data:`CURVES`),
    checkpointed like :func:`blinding_key`; an X25519 key under ``name + ".x25519"``, so the
    two suites never share a checkpoint."""
    if curve == "ristretto255":
        return blinding_key(ctx, name)
    if curve != "x25519":
        raise ValueError(f"unknown curve {curve!r}; use one of {CURVES}")
    name = f"{name}.x25519"
    saved = ctx.artifacts.get(name)
    if saved is not None:
        return X25519Key.from_secret_bytes(saved)
    key = X25519Key.generate(ctx.random)
    ctx.artifacts.put(name, key.secret_bytes_for_checkpoint())
    return key


def suite_domain(ctx: Context, protocol: str, curve: str) -> bytes:
    """:func:`hash_domain` of ``protocol`` in ``curve``'s suite (the ristretto255 tag is the
    original one, unchanged)."""
    return hash_domain(ctx, protocol if curve == "ristretto255" else f"{protocol}-{curve}")


def job_random(ctx: Context, name: str) -> PrgRandom:
    """This party's randomness for one role of the job (shuffles, ephemeral keys, noise): a
    stream from a secret seed checkpointed before first use (like :func:`blinding_key`, and
    deleted with it when the job ends), so a restarted party redraws the same values and
    resends byte-identical messages instead of conflicting with what it sent before."""
    saved = ctx.artifacts.get(name)
    if saved is None or len(saved) != SEED_BYTES:
        saved = ctx.random.bytes(SEED_BYTES)
        ctx.artifacts.put(name, saved)
    return PrgRandom(saved)


def handshake(
    ctx: Context, protocol: str, params: Mapping[str, Any], count: int, peers: Sequence[str]
) -> dict[str, int]:
    """Exchange :class:`Hello` with ``peers``; abort unless every peer runs the same protocol
    version and parameters. Returns each peer's announced set size (revealed by design)."""
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    hello = Hello(protocol=protocol, version=PROTOCOL_VERSION, params=text, count=count)
    ctx.channel.broadcast("hello", hello, peers=peers)
    counts: dict[str, int] = {}
    for peer, msg in ctx.channel.gather("hello", peers=peers, expect=Hello).items():
        if msg.protocol != protocol or msg.version != PROTOCOL_VERSION:
            raise ProtocolAbort(
                f"party {peer!r} runs {msg.protocol} v{msg.version}, "
                f"we run {protocol} v{PROTOCOL_VERSION}",
                party=peer,
            )
        if msg.params != text:
            raise ProtocolAbort(
                f"party {peer!r} runs with different parameters: {msg.params} != {text}",
                party=peer,
            )
        counts[peer] = msg.count
    return counts


# ------------------------------------------------------------------ compute tasks (picklable)


#: Results computed ahead of the consumer (per stream): bounds memory to a few chunks.
PREFETCH_GROUPS = 2
_DONE = object()


def prefetch(ctx: Context, produce: Iterator[U8]) -> Iterator[U8]:
    """Run the generator ``produce`` in a background thread, at most :data:`PREFETCH_GROUPS`
    times ``ctx.compute.workers`` chunks ahead of the consumer, so computing the next chunks
    overlaps with sending (and the peer's work on) the previous ones. Exceptions are re-raised
    in the consumer; closing the consumer stops the producer."""
    box: queue.Queue[object] = queue.Queue(maxsize=PREFETCH_GROUPS * max(1, ctx.compute.workers))
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer is gone

    def run() -> None:
        try:
            for item in produce:
                if not hand_over(item):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # handed to the consumer
            hand_over(exc)

    thread = threading.Thread(target=run, name=f"psi-prefetch-{ctx.party}", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()  # a producer blocked on a full queue notices within 0.1 s and ends


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def hash_and_blind(
    ctx: Context,
    key: GroupKey,
    prepared: PreparedIds,
    dst: bytes,
    task: str,
    order: npt.NDArray[np.int64] | None = None,
) -> Iterator[U8]:
    """``k·H(x)`` for every key of ``prepared`` (in ``order`` if given), yielded in chunks of
    :data:`CHUNK_ROWS` rows; ``ctx.compute.workers`` chunks at a time run on the compute
    backend, in a background thread that works ahead of the consumer (:func:`prefetch`).
    Each task carries its keys as one packed buffer (cheap to pickle for a process pool)."""
    return prefetch(ctx, _hash_and_blind(ctx, key, prepared, dst, task, order))


def _hash_and_blind(
    ctx: Context,
    key: GroupKey,
    prepared: PreparedIds,
    dst: bytes,
    task: str,
    order: npt.NDArray[np.int64] | None,
) -> Iterator[U8]:
    scalar = key.secret_bytes_for_checkpoint()
    is_x25519 = isinstance(key, X25519Key)
    n = len(prepared)
    progress = ctx.progress.task(task, total=n)
    bounds = _batches(n, CHUNK_ROWS)
    step = max(1, ctx.compute.workers)
    for i in range(0, len(bounds), step):
        ctx.cancel.raise_if_cancelled()
        tasks = []
        for a, b in bounds[i : i + step]:
            data, ends = prepared.packed(None if order is None else order[a:b], a, b)
            tasks.append((is_x25519, scalar, dst, data, ends))
        for out in ctx.compute.map(hash_blind_task, tasks):
            progress.advance(out.shape[0])
            yield out


def blind_stream(
    ctx: Context, key: GroupKey, chunks: Iterable[U8], peer: str, task: str, total: int
) -> Iterator[U8]:
    """``k·P`` for every row of the incoming chunks; a point that is not a valid ristretto255
    element aborts the protocol, naming ``peer``. Receiving and computing run in a background
    thread ahead of the consumer (:func:`prefetch`)."""
    return prefetch(ctx, _blind_stream(ctx, key, chunks, peer, task, total))


def _blind_stream(
    ctx: Context, key: GroupKey, chunks: Iterable[U8], peer: str, task: str, total: int
) -> Iterator[U8]:
    scalar = key.secret_bytes_for_checkpoint()
    is_x25519 = isinstance(key, X25519Key)
    group = "X25519 (curve25519)" if is_x25519 else "ristretto255"
    progress = ctx.progress.task(task, total=total)
    step = max(1, ctx.compute.workers)
    pending: list[tuple[bool, bytes, U8]] = []
    done = 0

    def flush() -> Iterator[U8]:
        nonlocal done
        try:
            results = ctx.compute.map(blind_task, pending)
        except _INVALID as exc:
            where = "" if exc.index is None else f" (row {done + exc.index} or later)"
            raise ProtocolAbort(
                f"party {peer!r} sent an invalid {group} point{where}: {exc}", party=peer
            ) from None
        pending.clear()
        for out in results:
            done += out.shape[0]
            progress.advance(out.shape[0])
            yield out

    for chunk in chunks:
        ctx.cancel.raise_if_cancelled()
        pending.append((is_x25519, scalar, chunk))
        if len(pending) >= step:
            yield from flush()
    if pending:
        yield from flush()


def send_stream(ctx: Context, peer: str, tag: str, chunks: Iterable[U8], *, start: int = 0) -> int:
    """Send arrays as :class:`Chunk` messages under ``tag``, the first at row ``start``;
    returns the row after the last one sent (the rows sent if ``start`` is 0)."""
    offset = start
    for chunk in chunks:
        for a in range(0, max(chunk.shape[0], 1), CHUNK_ROWS):
            part = np.ascontiguousarray(chunk[a : a + CHUNK_ROWS])
            if part.shape[0] == 0:
                continue
            ctx.channel.send(peer, tag, Chunk(offset=offset, rows=part))
            offset += part.shape[0]
    return offset


def recv_stream(ctx: Context, peer: str, tag: str, total: int, width: int) -> Iterator[U8]:
    """Receive ``total`` rows of ``width`` bytes sent by :func:`send_stream`, chunk by chunk,
    checking order and shape (a deviation aborts, naming ``peer``)."""
    offset = 0
    while offset < total:
        msg = ctx.channel.recv(peer, tag, expect=Chunk)
        rows = msg.rows
        if msg.offset != offset or rows.shape[1] != width or rows.shape[0] == 0:
            raise ProtocolAbort(
                f"party {peer!r} sent chunk at offset {msg.offset} of width {rows.shape[1]}; "
                f"expected offset {offset}, width {width}",
                party=peer,
            )
        if offset + rows.shape[0] > total:
            raise ProtocolAbort(f"party {peer!r} sent more than {total} rows", party=peer)
        offset += rows.shape[0]
        yield rows


def collect(chunks: Iterable[U8], total: int, width: int) -> U8:
    """Concatenate chunks into one preallocated ``(total, width)`` array."""
    out = np.empty((total, width), dtype=np.uint8)
    pos = 0
    for c in chunks:
        out[pos : pos + c.shape[0], :] = c[:, :width]
        pos += c.shape[0]
    if pos != total:
        raise ProtocolAbort(f"expected {total} rows, got {pos}")
    return out


def fingerprints(points: U8) -> U8:
    """The first :data:`FINGERPRINT_BYTES` bytes of each double-blinded point."""
    return np.ascontiguousarray(points[:, :FINGERPRINT_BYTES])


def sortable(rows: U8) -> npt.NDArray[Any]:
    """View ``(n, w)`` byte rows as a 1-D array of ``S<w>`` (equality, sort, ``isin``)."""
    rows = np.ascontiguousarray(rows)
    return rows.view(f"S{rows.shape[1]}").reshape(rows.shape[0])


def rows_in(needles: U8, hay: U8) -> npt.NDArray[np.bool_]:
    """Which rows of ``needles`` occur in ``hay`` (both ``(n, w)`` byte rows, ``w >= 8``).

    Sorts the first 8 bytes of ``hay`` as ``uint64`` and binary-searches the needles' first 8
    bytes, then compares the full rows of the candidates: about 2x faster than ``np.isin`` on
    byte strings and with no extra copy of either array. Falls back to ``np.isin`` on the full
    rows if two rows of ``hay`` share their first 8 bytes (probability about m**2 / 2**65).
    """
    n = needles.shape[0]
    out = np.zeros(n, dtype=bool)
    if n == 0 or hay.shape[0] == 0:
        return out
    h = np.ascontiguousarray(hay[:, :8]).view(np.uint64).ravel()
    order = np.argsort(h)
    hs = h[order]
    if bool((hs[1:] == hs[:-1]).any()):
        return np.isin(sortable(needles), sortable(hay))
    q = np.ascontiguousarray(needles[:, :8]).view(np.uint64).ravel()
    oq = np.argsort(q)  # sorted needles: the binary searches walk ``hs`` forward (cache)
    qs = q[oq]
    at = np.minimum(np.searchsorted(hs, qs), hs.size - 1)
    hit = np.flatnonzero(hs[at] == qs)
    cand = oq[hit]
    out[cand] = (hay[order[at[hit]]] == needles[cand]).all(axis=1)
    return out


def unique_sorted(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The distinct values of a 1-D integer array, ascending: what ``np.unique`` returns, by
    one sort and a mask (``np.unique`` itself took 60 times as long on 500k int64 with
    numpy 2.4)."""
    s = np.sort(values)
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def random_permutation(random: RandomSource, n: int) -> npt.NDArray[np.int64]:
    """A uniform permutation of ``range(n)`` drawn from ``random`` (argsort of 64-bit random
    keys; ties, of probability about n**2/2**65, are broken by position)."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    keys = np.frombuffer(random.bytes(8 * n), dtype=np.uint64)
    bits = max(1, (n - 1).bit_length())
    if bits > 32:
        return np.argsort(keys, kind="stable").astype(np.int64)
    # the same permutation from one sort (a tenth of the argsort's time at 1M): each key's
    # low bits replaced by its position, then runs of keys equal in their other bits (rare)
    # ordered by their full keys, ties by position
    low = np.uint64((1 << bits) - 1)
    packed = (keys & ~low) | np.arange(n, dtype=np.uint64)
    packed.sort()
    order = (packed & low).astype(np.int64)
    high = packed & ~low
    if bool((high[1:] == high[:-1]).any()):
        edges = np.flatnonzero(np.concatenate(([True], high[1:] != high[:-1], [True])))
        long = np.flatnonzero(np.diff(edges) > 1)
        for lo, hi in zip(edges[long].tolist(), edges[long + 1].tolist(), strict=True):
            run = order[lo:hi]  # by position already
            order[lo:hi] = run[np.argsort(keys[run], kind="stable")]
    return order


def check_width(rows: U8) -> None:
    """Raise if ``rows`` are not points."""
    if rows.ndim != 2 or rows.shape[1] != POINT_BYTES:
        raise ProtocolAbort("expected an array of 32-byte points")


# ------------------------------------------------------------------ base OTs (KKRT, RR22)

SetupT = TypeVar("SetupT", KkrtSetup, Rr22Setup)
ReplyT = TypeVar("ReplyT", KkrtReply, Rr22Reply)


def base_ots_sent(
    ctx: Context,
    peer: str,
    rnd: RandomSource,
    count: int,
    tag: str,
    setup: type[SetupT],
    reply: type[ReplyT],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], tuple[bytes, bytes]]:
    """The PSI receiver's side of the set-up of the OT-based protocols (SPEC.md §8, §8b): it
    sends ``count`` base OTs to ``peer`` (the point ``A`` in ``<tag>.setup``, the replies in
    ``<tag>.reply``) and the two parties exchange 16-byte key shares.

    Returns both keys of every base OT and the shares (the receiver's, the sender's). A
    reply point that is not a valid group element aborts the job, naming ``peer``."""
    base = otm.BaseOtSender(rnd)
    share = rnd.bytes(16)
    ctx.channel.send(peer, f"{tag}.setup", setup(point=base.point, share=share))
    msg = ctx.channel.recv(peer, f"{tag}.reply", expect=reply)
    points = np.frombuffer(msg.points, dtype=np.uint8).reshape(count, POINT_BYTES)
    try:
        k0, k1 = base.keys(points)
    except InvalidPointError as exc:
        raise ProtocolAbort(f"party {peer!r}: base-OT reply refused: {exc}", party=peer) from None
    return k0, k1, (share, msg.share)


def base_ots_received(
    ctx: Context,
    peer: str,
    rnd: RandomSource,
    count: int,
    tag: str,
    setup: type[SetupT],
    reply: type[ReplyT],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], tuple[bytes, bytes]]:
    """The PSI sender's side of :func:`base_ots_sent`: it receives ``count`` base OTs from
    ``peer`` with random choice bits.

    Returns the choice bits (one 0/1 byte each), the chosen keys and the shares (the
    receiver's, the sender's). A setup point that is not a valid group element aborts the
    job, naming ``peer``."""
    msg = ctx.channel.recv(peer, f"{tag}.setup", expect=setup)
    bits = np.frombuffer(rnd.bytes(count), dtype=np.uint8) & np.uint8(1)
    base = otm.BaseOtReceiver(rnd, bits)
    try:
        points = base.reply(msg.point)
    except InvalidPointError as exc:
        raise ProtocolAbort(f"party {peer!r}: base-OT point refused: {exc}", party=peer) from None
    share = rnd.bytes(16)
    ctx.channel.send(peer, f"{tag}.reply", reply(points=points.tobytes(), share=share))
    return bits, base.keys(), (msg.share, share)
