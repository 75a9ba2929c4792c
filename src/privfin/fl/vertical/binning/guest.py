"""Guest role of hetero binning: holds the labels and the key; learns per-bin event counts.

It encrypts its labels once for the hosts, decrypts the per-bin event sums the hosts return
(packed), runs chi-merge and WOE/IV for every feature, selects features by IV and tells each
host its merge groups and kept features (and, only if ``reveal_woe_to_hosts``, its WOE).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.errors import DecodeError, ProtocolAbort
from privfin.fl.vertical.binning.common import BinParams, final_edges, fine_edges, new_keypair
from privfin.fl.vertical.binning.messages import BinKey, EncryptedColumns, HostBins, Verdicts
from privfin.he._base import PackedEncryptedVector
from privfin.ml.binning import apply_bins, bin_counts, merge_counts, woe_iv
from privfin.runtime import Context

__all__ = ["run_guest"]


def _finish(
    p: BinParams, events: np.ndarray, totals: np.ndarray
) -> tuple[list[list[int]], list[float], float]:
    """Merge value bins, then WOE/IV over merged value bins plus the missing bin."""
    groups = p.merge(events[:-1], totals[:-1])
    ev = np.r_[merge_counts(events[:-1], groups), events[-1]]
    tot = np.r_[merge_counts(totals[:-1], groups), totals[-1]]
    stats = woe_iv(ev, tot)
    return groups, stats.woe.tolist(), stats.iv


def run_guest(
    ctx: Context, p: BinParams, x: np.ndarray, names: list[str], y: np.ndarray, hosts: list[str]
) -> dict[str, Any]:
    """Run the guest side; returns IVs and WOE tables of every party's features."""
    pk, sk = new_keypair(ctx, p)
    ctx.channel.broadcast("key", BinKey(key=pk.to_wire()), peers=hosts)
    enc = pk.encrypt([int(v) for v in y])
    for host in hosts:
        ctx.channel.send(host, "labels", EncryptedColumns(columns=[enc.to_wire()]))
    n = y.size
    iv: dict[str, dict[str, float]] = {ctx.party: {}}
    woe: dict[str, dict[str, list[float]]] = {ctx.party: {}}
    own_edges: list[list[float]] = []
    for j, e in enumerate(fine_edges(x, p)):
        ev, tot = bin_counts(apply_bins(x[:, j], e), y, e.size + 2)
        groups, w, value = _finish(p, ev, tot)
        own_edges.append(final_edges(e, groups))
        iv[ctx.party][names[j]], woe[ctx.party][names[j]] = value, w
    host_groups: dict[str, list[list[list[int]]]] = {}
    host_names: dict[str, list[str]] = {}
    for host in hosts:
        msg: HostBins = ctx.channel.recv(host, "bins", expect=HostBins)
        hnames = msg.names
        try:
            packed = PackedEncryptedVector.from_wire(pk, msg.sums)
            events = np.asarray(sk.decrypt(packed), dtype=np.int64)
        except DecodeError as exc:
            raise DecodeError(f"bin sums from {host!r}: {exc}") from None
        if events.size != msg.totals.size or np.any(events < 0) or np.any(events > msg.totals):
            raise ProtocolAbort("per-bin event counts are inconsistent", party=host)
        if any(
            int(t) != n for t in np.add.reduceat(msg.totals, np.r_[0, np.cumsum(msg.n_bins)[:-1]])
        ):
            raise ProtocolAbort("every feature's bins must cover all aligned rows", party=host)
        start = 0
        host_groups[host], host_names[host] = [], [str(h) for h in hnames]
        iv[host], woe[host] = {}, {}
        for name, nb in zip(host_names[host], msg.n_bins, strict=True):
            groups, w, value = _finish(
                p, events[start : start + nb], msg.totals[start : start + nb]
            )
            host_groups[host].append(groups)
            iv[host][name], woe[host][name] = value, w
            start += nb
    ranked = sorted(((v, party, f) for party, d in iv.items() for f, v in d.items()), reverse=True)
    keep = {(party, f) for v, party, f in ranked if v >= p.iv_threshold}
    if p.top_k:
        keep &= {(party, f) for _, party, f in ranked[: p.top_k]}
    for host in hosts:
        ctx.channel.send(
            host,
            "verdict",
            Verdicts(
                groups=host_groups[host],
                selected=[(host, f) in keep for f in host_names[host]],
                woe=[woe[host][f] for f in host_names[host]] if p.reveal_woe_to_hosts else [],
            ),
        )
    return {
        "role": "guest",
        "features": list(names),
        "edges": own_edges,
        "iv": iv,
        "woe": woe,
        "selected": {party: [f for f in d if (party, f) in keep] for party, d in iv.items()},
    }
