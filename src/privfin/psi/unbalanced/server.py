"""Unbalanced PSI, server side: the offline phase, the filter refresh, rate limits and audit,
and the online role (one OPRF evaluation per queried item)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from privfin.compute import ComputeBackend, SerialBackend
from privfin.crypto.random import RandomSource
from privfin.crypto.ristretto import (
    POINT_BYTES,
    BlindingKey,
    InvalidPointError,
    hash_blind_packed,
    scalarmult_batch,
)
from privfin.errors import ConfigError, ProtocolAbort
from privfin.psi.common import encode_keys, handshake, recv_stream, send_stream
from privfin.psi.ids import PreparedIds, prepare_ids
from privfin.psi.messages import (
    CHUNK_ROWS,
    FilterHave,
    FilterUpdate,
    RevealedKeys,
)
from privfin.psi.unbalanced.filter import OprfFilter, oprf_outputs
from privfin.runtime import Context, Progress

__all__ = ["AuditRecord", "OprfServer", "QueryPolicy", "oprf_domain", "run_server"]

U64 = npt.NDArray[np.uint64]


def oprf_domain(filter_id: bytes) -> bytes:
    """Hash-to-group tag of an OPRF key (fixed for the key's lifetime, unlike ECDH jobs)."""
    return b"privfin/psi/oprf/v1/" + filter_id.hex().encode()


@dataclass(frozen=True)
class QueryPolicy:
    """Server-side limits on what clients may query.

    Attributes
    ----------
    max_items_per_query:
        Largest single query.
    max_items_per_window:
        Items one client may query within ``window_seconds`` (sliding window).
    """

    max_items_per_query: int = 100_000
    max_items_per_window: int = 1_000_000
    window_seconds: float = 86_400.0


@dataclass(frozen=True)
class AuditRecord:
    """One query as the server's audit trail keeps it (never the queried items: it does not
    know them)."""

    time: float
    client: str
    job: str
    items: int
    allowed: bool
    reason: str
    filter_version: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


#: Items per inner step of an OPRF task: keeps each GIL-held stretch (the SHA-512 of the
#: outputs) under a millisecond, so threads of a ThreadBackend are not starved.
_OPRF_STEP = 256


def _oprf_task(task: tuple[bytes, bytes, bytes, U64, int]) -> U64:
    scalar, dst, data, ends, bits = task
    n = int(ends.shape[0])
    out = np.empty(n, dtype=np.uint64)
    mv = memoryview(data)
    for a in range(0, n, _OPRF_STEP):
        b = min(a + _OPRF_STEP, n)
        lo = int(ends[a - 1]) if a else 0
        hi = int(ends[b - 1])
        part_ends = ends[a:b].astype(np.int64) - lo
        evaluated = hash_blind_packed(scalar, mv[lo:hi].tobytes(), part_ends, dst)
        starts = np.concatenate(([0], part_ends[:-1])).tolist()
        items = [
            mv[lo + x : lo + y].tobytes() for x, y in zip(starts, part_ends.tolist(), strict=True)
        ]
        out[a:b] = oprf_outputs(items, evaluated, bits)
    return out


class OprfServer:
    """The large set holder of unbalanced PSI.

    Holds the OPRF key (never sent), the filter of its items' OPRF outputs, a rate limiter
    and an audit trail. Long-lived: one instance serves many client jobs; refresh the filter
    with :meth:`add` / :meth:`remove` when the set changes (clients then fetch the new
    version).

    Security
    --------
    Semi-honest client: the client learns, for its own queried items only, whether they are in
    the set (false positives ≈ n/2**bits per item), plus the set size. The server learns the
    number of queried items and nothing about them (they arrive blinded by a fresh random
    scalar). A malicious client could query items of its choice: the policy bounds how many.
    """

    def __init__(
        self,
        key: BlindingKey,
        filter_id: bytes,
        prepared: PreparedIds,
        values: U64,
        *,
        bits: int = 64,
        policy: QueryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        audit: Callable[[AuditRecord], None] | None = None,
    ) -> None:
        if not 32 <= bits <= 64:
            raise ConfigError("OPRF output width must be 32..64 bits")
        self._key = key
        self.prepared = prepared
        self.policy = policy or QueryPolicy()
        self.audit_log: list[AuditRecord] = []
        self._audit = audit
        self._clock = clock
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        self.filter = OprfFilter(filter_id, 1, bits, np.unique(values))

    # ---------------------------------------------------------------------------- offline
    @classmethod
    def setup(
        cls,
        ids: Iterable[object] | Iterable[Iterable[object]],
        *,
        random: RandomSource,
        normalize: str = "trim",
        duplicates: str = "first",
        bits: int = 64,
        policy: QueryPolicy | None = None,
        compute: ComputeBackend | None = None,
        progress: Progress | None = None,
        chunked: bool = False,
        clock: Callable[[], float] = time.time,
        audit: Callable[[AuditRecord], None] | None = None,
    ) -> OprfServer:
        """The offline phase: draw the OPRF key and compute every item's output.

        Cost: one hash-to-group, one scalar multiplication and one SHA-512 per item, spread
        over ``compute`` (``ThreadBackend`` uses all cores: libsodium releases the GIL).
        """
        prepared = prepare_ids(ids, normalize, duplicates, chunked=chunked)
        key = BlindingKey.generate(random)
        filter_id = random.bytes(16)
        values = _evaluate_all(key, filter_id, prepared, bits, compute, progress)
        return cls(
            key, filter_id, prepared, values, bits=bits, policy=policy, clock=clock, audit=audit
        )

    def add(self, ids: Iterable[object], compute: ComputeBackend | None = None) -> None:
        """Refresh: add items (new version of the filter)."""
        before = len(self.prepared)
        self.prepared.add(ids)
        new = self.prepared.keys[before:]
        f = self.filter
        values = _evaluate_all(self._key, f.filter_id, new, f.bits, compute, None)
        self.filter = OprfFilter(f.filter_id, f.version + 1, f.bits, np.union1d(f.values, values))

    def remove(self, ids: Iterable[object], compute: ComputeBackend | None = None) -> None:
        """Refresh: remove items (new version of the filter)."""
        from privfin.psi.ids import normalizer

        norm = normalizer(self.prepared.normalize)
        gone = {norm(str(i)) for i in ids}
        keys = self.prepared.keys
        kept = [i for i, k in enumerate(keys) if k not in gone]
        removed = [k for k in keys if k in gone]
        self.prepared = self.prepared.subset(kept)
        f = self.filter
        values = _evaluate_all(self._key, f.filter_id, removed, f.bits, compute, None)
        self.filter = OprfFilter(f.filter_id, f.version + 1, f.bits, np.setdiff1d(f.values, values))

    # ---------------------------------------------------------------------------- online
    def authorize(self, client: str, job: str, items: int) -> None:
        """Check the policy for a query of ``items`` items and record it in the audit trail;
        :class:`ProtocolAbort` if it is refused."""
        now = self._clock()
        pol = self.policy
        with self._lock:
            hist = self._history.setdefault(client, deque())
            while hist and hist[0][0] <= now - pol.window_seconds:
                hist.popleft()
            used = sum(n for _, n in hist)
            reason = ""
            if items > pol.max_items_per_query:
                reason = f"query of {items} items exceeds {pol.max_items_per_query} per query"
            elif used + items > pol.max_items_per_window:
                reason = (
                    f"client {client!r} would query {used + items} items within "
                    f"{pol.window_seconds:g} s (limit {pol.max_items_per_window})"
                )
            else:
                hist.append((now, items))
            record = AuditRecord(
                now, client, job, items, not reason, reason or "ok", self.filter.version
            )
            self.audit_log.append(record)
        if self._audit is not None:
            self._audit(record)
        if reason:
            raise ProtocolAbort(f"query refused by the server's rate limit: {reason}")

    def evaluate(self, points: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """``k·P`` for blinded client points (validated: :class:`InvalidPointError`)."""
        return scalarmult_batch(self._key.secret_bytes_for_checkpoint(), points)


def _packed(keys: PreparedIds | Sequence[str], a: int, b: int) -> tuple[bytes, U64]:
    if isinstance(keys, PreparedIds):
        return keys.packed(None, a, b)
    enc = encode_keys(keys[a:b])
    return b"".join(enc), np.cumsum([len(x) for x in enc], dtype=np.uint64)


def _evaluate_all(
    key: BlindingKey,
    filter_id: bytes,
    keys: PreparedIds | Sequence[str],
    bits: int,
    compute: ComputeBackend | None,
    progress: Progress | None,
) -> U64:
    backend = compute or SerialBackend()
    dst = oprf_domain(filter_id)
    scalar = key.secret_bytes_for_checkpoint()
    task = (progress or Progress()).task("psi.oprf.offline", total=len(keys))
    out: list[U64] = []
    step = CHUNK_ROWS * max(1, backend.workers)
    for start in range(0, len(keys), step):
        tasks = [
            (scalar, dst, *_packed(keys, a, min(a + CHUNK_ROWS, len(keys))), bits)
            for a in range(start, min(start + step, len(keys)), CHUNK_ROWS)
        ]
        for values in backend.map(_oprf_task, tasks):
            out.append(values)
            task.advance(values.size)
    return np.concatenate(out) if out else np.empty(0, dtype=np.uint64)


def run_server(
    ctx: Context,
    server: OprfServer,
    client: str,
    params: dict[str, object],
    *,
    reveal_to_server: bool,
) -> list[int] | None:
    """The online server role for one client job.

    Returns positions in ``server.prepared.keys`` of the intersection if the client reveals
    it (``reveal_to_server``), else ``None``.
    """
    n_q = handshake(ctx, "oprf", params, len(server.prepared), [client])[client]
    have: FilterHave = ctx.channel.recv(client, "have", expect=FilterHave)
    f = server.filter
    current = have.filter_id == f.filter_id and have.version == f.version
    update = FilterUpdate(
        filter_id=f.filter_id, version=f.version, count=f.values.size, bits=f.bits, current=current
    )
    ctx.channel.send(client, "filter", update)
    if not current:
        send_stream(ctx, client, "filter", [f.to_rows()])
    server.authorize(client, ctx.job, n_q)
    progress = ctx.progress.task("psi.oprf.evaluate", total=n_q)
    offset = 0
    for chunk in recv_stream(ctx, client, "query", n_q, POINT_BYTES):
        try:
            evaluated = server.evaluate(chunk)
        except InvalidPointError:
            raise ProtocolAbort(
                f"client {client!r} sent an invalid ristretto255 point", party=client
            ) from None
        offset = send_stream(ctx, client, "eval", [evaluated], start=offset)
        progress.advance(chunk.shape[0])
    ctx.metrics.add("psi.oprf.evaluations", float(n_q))
    if not reveal_to_server:
        return None
    revealed: RevealedKeys = ctx.channel.recv(client, "result", expect=RevealedKeys)
    out: list[int] = []
    for k in revealed.keys:
        pos = server.prepared.index_of(k)
        if pos is None:
            raise ProtocolAbort("client revealed an id that is not in our set", party=client)
        out.append(pos)
    return out
