"""Unbalanced PSI, client side: query the server's OPRF on blinded items, then look the
outputs up in the (cached) filter. Cost proportional to the query."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from privfin.crypto.ristretto import (
    POINT_BYTES,
    InvalidPointError,
    hash_to_group_batch,
)
from privfin.errors import ProtocolAbort
from privfin.psi.common import (
    blinding_key,
    collect,
    encode_keys,
    handshake,
    recv_stream,
    send_stream,
)
from privfin.psi.ids import PreparedIds
from privfin.psi.messages import CHUNK_ROWS, FilterHave, FilterUpdate, RevealedKeys
from privfin.psi.unbalanced.filter import FilterCache, OprfFilter, oprf_outputs
from privfin.psi.unbalanced.server import oprf_domain
from privfin.runtime import Context

__all__ = ["run_client"]


def run_client(
    ctx: Context,
    prepared: PreparedIds,
    server: str,
    params: dict[str, object],
    cache: FilterCache,
    *,
    reveal_to_server: bool,
) -> npt.NDArray[np.int64]:
    """Run the client; returns positions in ``prepared.keys`` of items in the server's set.

    Security
    --------
    Each item is sent as ``r·H(x)`` with a fresh scalar ``r`` per query (uniform in the group,
    so the server learns nothing but the count); the reply ``k·r·H(x)`` is unblinded with
    ``r**-1`` and hashed with ``x``. The server's points are validated.
    """
    n_s = handshake(ctx, "oprf", params, len(prepared), [server])[server]
    fid, version = cache.have
    ctx.channel.send(server, "have", FilterHave(filter_id=fid, version=version))
    update: FilterUpdate = ctx.channel.recv(server, "filter", expect=FilterUpdate)
    if update.count != n_s and update.count > n_s:
        raise ProtocolAbort("server filter larger than its announced set", party=server)
    if not update.current:
        rows = collect(recv_stream(ctx, server, "filter", update.count, 8), update.count, 8)
        try:
            cache.filter = OprfFilter.from_rows(update.filter_id, update.version, update.bits, rows)
        except ValueError as exc:
            raise ProtocolAbort(f"bad filter from the server: {exc}", party=server) from None
    filt = cache.filter
    if filt is None or filt.filter_id != update.filter_id or filt.version != update.version:
        raise ProtocolAbort("server claims our cached filter is current but it is not")
    blind = blinding_key(ctx, "psi.oprf.client.key")  # checkpointed: a resumed query is identical
    unblind = blind.inverse()
    dst = oprf_domain(filt.filter_id)
    items = encode_keys(prepared.keys)
    n = len(items)
    offset = 0
    for a in range(0, n, CHUNK_ROWS):
        pts = blind.blind(hash_to_group_batch(items[a : a + CHUNK_ROWS], dst))
        offset = send_stream(ctx, server, "query", [pts], start=offset)
    outputs = np.empty(n, dtype=np.uint64)
    pos = 0
    for chunk in recv_stream(ctx, server, "eval", n, POINT_BYTES):
        try:
            evaluated = unblind.blind(chunk)
        except InvalidPointError:
            raise ProtocolAbort("server sent an invalid ristretto255 point", party=server) from None
        m = chunk.shape[0]
        outputs[pos : pos + m] = oprf_outputs(items[pos : pos + m], evaluated, filt.bits)
        pos += m
    matched = np.flatnonzero(filt.contains(outputs)).astype(np.int64)
    if reveal_to_server:
        keys = sorted(prepared.keys[i] for i in matched)
        ctx.channel.send(server, "result", RevealedKeys(keys=keys))
    return matched
