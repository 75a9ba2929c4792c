"""DP PSI-cardinality (SPEC.md §10): the parts both roles share — dummy items, segments and
the checks on received rows. The roles are :func:`privfin.psi.receiver.run_dp_receiver` and
:func:`privfin.psi.sender.run_dp_sender`.

Dummy item ``i`` of segment ``k`` is the point ``H_k(i)``: hash-to-group (in the job's
curve) of the decimal string ``i`` under a domain of its own
(``privfin/psi/v1/ecdh-dp-dummy/<k>[-x25519]/<job>/<component>``), so no dummy can equal a
real item's ``H(x)`` (that would be a hash-to-group collision across domains). Both parties
compute them; only blinded forms travel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from privfin.crypto.blind_tasks import hash_blind_task
from privfin.crypto.x25519 import X25519Key
from privfin.errors import ConfigError, ProtocolAbort
from privfin.psi.common import U8, GroupKey, prefetch, sortable, suite_domain
from privfin.psi.ids import PreparedIds
from privfin.psi.messages import CHUNK_ROWS
from privfin.runtime import Context

__all__ = [
    "PROTOCOL",
    "blind_positions",
    "dummy_points",
    "require_distinct",
    "segment_positions",
]

#: Protocol name in the handshake (the parameters, including epsilon, delta and the
#: segments, must agree).
PROTOCOL = "ecdh-dp-cardinality"


def dummy_domain(ctx: Context, segment: int, curve: str) -> bytes:
    return suite_domain(ctx, f"ecdh-dp-dummy/{segment}", curve)


def dummy_points(
    ctx: Context, key: GroupKey, indices: npt.NDArray[np.int64], segment: int, curve: str
) -> U8:
    """``k·H_segment(i)`` for the dummy indices ``i`` (an ``(n, 32)`` array)."""
    if indices.size == 0:
        return np.empty((0, 32), dtype=np.uint8)
    raw = [str(int(i)).encode() for i in indices]
    data = b"".join(raw)
    ends = np.cumsum([len(r) for r in raw]).astype(np.uint64)
    task = (isinstance(key, X25519Key), key.secret_bytes_for_checkpoint(), dummy_domain(
        ctx, segment, curve), data, ends)  # fmt: skip
    out: U8 = np.asarray(hash_blind_task(task), dtype=np.uint8)
    return out.reshape(-1, 32)


def blind_positions(
    ctx: Context,
    key: GroupKey,
    prepared: PreparedIds,
    positions: npt.NDArray[np.int64],
    dst: bytes,
) -> Iterator[U8]:
    """``k·H(x)`` for the keys of ``prepared`` at ``positions`` (a segment), in chunks,
    ``ctx.compute.workers`` chunks at a time on the compute backend."""

    def produce() -> Iterator[U8]:
        scalar = key.secret_bytes_for_checkpoint()
        is_x25519 = isinstance(key, X25519Key)
        bounds = [(a, min(a + CHUNK_ROWS, positions.size))
                  for a in range(0, positions.size, CHUNK_ROWS)]  # fmt: skip
        step = max(1, ctx.compute.workers)
        for i in range(0, len(bounds), step):
            ctx.cancel.raise_if_cancelled()
            tasks = []
            for a, b in bounds[i : i + step]:
                data, ends = prepared.packed(positions[a:b])
                tasks.append((is_x25519, scalar, dst, data, ends))
            yield from ctx.compute.map(hash_blind_task, tasks)

    return prefetch(ctx, produce())


def segment_positions(
    prepared: PreparedIds, table: object, column: str | None, labels: Sequence[str]
) -> list[npt.NDArray[np.int64]]:
    """Positions in ``prepared`` of each declared segment (by ``str`` of the value in
    ``column`` of the key's input row); without segments, all positions."""
    n = len(prepared)
    if column is None:
        return [np.arange(n, dtype=np.int64)]
    if not isinstance(table, pd.DataFrame) or column not in table.columns:
        raise ConfigError(f"the sender's table needs the segment column {column!r}")
    rows = np.asarray(prepared.rows, dtype=np.int64)
    values = table[column].iloc[rows].astype(str).to_numpy()
    return [np.flatnonzero(values == label).astype(np.int64) for label in labels]


def require_distinct(rows: U8, peer: str, what: str) -> None:
    """Abort, naming ``peer``, if two of the ``rows`` it sent (or that were derived from
    what it sent) are equal: honest parties never repeat an item, and a repeated item would
    bias a count."""
    if rows.shape[0] > 1:
        keys = np.sort(sortable(rows))
        if bool((keys[1:] == keys[:-1]).any()):
            raise ProtocolAbort(f"party {peer!r} sent a repeated {what}", party=peer)
