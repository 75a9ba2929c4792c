"""Guest role of hetero binning: holds the labels and the key; learns per-bin event counts.

It encrypts its labels once for the hosts (each with a secret per-job weight ``rho`` in its
upper bits), decrypts the per-bin event sums the hosts return (packed), checks that every host
binning has the public structure (bin counts, bin floors, row totals, the ``rho`` mass of every
bin, the event total), runs chi-merge and WOE/IV for every feature, selects features by IV and
tells each host its merge groups and kept features (and, only if ``reveal_woe_to_hosts``, its
rounded WOE). A host that breaks a check is named in a :class:`ProtocolAbort` before any host
receives a reply.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.errors import DecodeError, ProtocolAbort
from privfin.fl.vertical.binning.common import (
    RHO_BITS,
    BinParams,
    final_edges,
    final_woe,
    label_bits,
    local_bins,
    missing_target,
    new_keypair,
)
from privfin.fl.vertical.binning.messages import BinKey, EncryptedColumns, HostBins, Verdicts
from privfin.he._packed import PackedEncryptedVector
from privfin.he.errors import OverflowDetected
from privfin.ml.binning import bin_counts, merge_counts, woe_iv
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


def _host_events(
    p: BinParams, pk: Any, sk: Any, msg: HostBins, host: str, n: int, rho: int, n_events: int
) -> np.ndarray:
    """Decrypt and check one host's bin sums; returns the event count of every bin.

    Raises :class:`ProtocolAbort` naming ``host`` if its binning breaks the public structure:
    too many features or bins, a non-empty bin below its floor, a feature whose bins do not
    cover the ``n`` rows, a packing other than the public one, or a bin whose encrypted sum is
    not a sum of exactly as many label ciphertexts as the bin declares (its ``rho`` mass), or
    holds more events than rows, or a feature whose bins do not hold all ``n_events`` events.
    """
    if len(msg.n_bins) > p.max_features:
        raise ProtocolAbort(
            f"{len(msg.n_bins)} features, more than max_features={p.max_features}", party=host
        )
    if any(not 2 <= nb <= p.initial_bins + 1 for nb in msg.n_bins):
        raise ProtocolAbort(
            f"a feature declares more than {p.initial_bins} value bins plus a missing bin",
            party=host,
        )
    totals = msg.totals
    starts = np.r_[0, np.cumsum(msg.n_bins)[:-1]].astype(np.int64)
    if any(int(t) != n for t in np.add.reduceat(totals, starts)):
        raise ProtocolAbort("every feature's bins must cover all aligned rows", party=host)
    missing = np.zeros(totals.size, dtype=bool)
    missing[starts + np.asarray(msg.n_bins) - 1] = True
    floor, final_floor = p.min_rows(n), p.min_rows(n, final=True)
    if np.any((~missing) & (totals > 0) & (totals < floor)) or np.any(
        missing & (totals > 0) & (totals < final_floor)
    ):
        raise ProtocolAbort(
            f"a bin holds fewer than {floor} rows (value bins) or {final_floor} rows (missing "
            "bin): the bin floor of min_bin_share/min_fine_share",
            party=host,
        )
    sum_bits = label_bits(n) + n.bit_length()
    try:
        packed = PackedEncryptedVector.from_wire(pk, msg.sums)
    except DecodeError as exc:
        raise DecodeError(f"bin sums from {host!r}: {exc}") from None
    if (
        packed.bound_bits != sum_bits
        or packed.slot_bits != sum_bits + 1
        or packed.frac_bits != 0
        or packed.is_float
        or packed.flat_length != totals.size
        or packed.layout.slots != pk.capacity_bits // (sum_bits + 1)
        or packed.cols != min(packed.layout.slots, totals.size)
        or len(packed) != -(-totals.size // packed.layout.slots)
    ):
        raise ProtocolAbort("bin sums do not have the public packing", party=host)
    try:
        sums = [int(v) for v in sk.decrypt(packed)]
    except OverflowDetected:
        raise ProtocolAbort("a bin sum lies outside the honest range", party=host) from None
    if len(sums) != totals.size:
        raise ProtocolAbort("one bin sum per declared bin", party=host)
    low, w = (1 << n.bit_length()) - 1, n.bit_length()
    events = np.array([s & low for s in sums], dtype=np.int64)
    mass_ok = all(
        s >= 0 and s >> w == rho * int(t) for s, t in zip(sums, totals.tolist(), strict=True)
    )
    if not mass_ok or np.any(events > totals):
        raise ProtocolAbort(
            "a bin sum is not the sum of the labels of the rows the bin declares", party=host
        )
    if any(int(e) != n_events for e in np.add.reduceat(events, starts)):
        raise ProtocolAbort("a feature's bins do not hold all the events", party=host)
    return events


def run_guest(
    ctx: Context, p: BinParams, x: np.ndarray, names: list[str], y: np.ndarray, hosts: list[str]
) -> dict[str, Any]:
    """Run the guest side; returns IVs and WOE tables of every party's features."""
    pk, sk = new_keypair(ctx, p)
    ctx.channel.broadcast("key", BinKey(key=pk.to_wire()), peers=hosts)
    n = y.size
    # Row i is sent as y_i + rho * 2**bits(n): an honest bin sum over T rows decrypts to
    # events + rho*T * 2**bits(n), which binds the sum to the declared bin size T.
    rho = (1 << (RHO_BITS - 1)) + ctx.random.below(1 << (RHO_BITS - 1))
    shift = rho << n.bit_length()
    enc = pk.encrypt([int(v) + shift for v in y], value_bits=label_bits(n))
    for host in hosts:
        ctx.channel.send(host, "labels", EncryptedColumns(columns=[enc.to_wire()]))
    iv: dict[str, dict[str, float]] = {ctx.party: {}}
    woe: dict[str, dict[str, list[float]]] = {ctx.party: {}}
    own_edges: list[list[float]] = []
    own_missing: list[int | None] = []
    for j in range(x.shape[1]):
        lb = local_bins(x[:, j], p, names[j])
        ev, tot = bin_counts(lb.idx, y, lb.n_bins)
        groups, w, value = _finish(p, ev, tot)
        own_edges.append(final_edges(lb.edges, groups))
        own_missing.append(missing_target(groups, lb.missing_into))
        iv[ctx.party][names[j]] = value
        woe[ctx.party][names[j]] = final_woe(w, groups, lb.missing_into)
    host_groups: dict[str, list[list[list[int]]]] = {}
    host_names: dict[str, list[str]] = {}
    n_events = int(y.sum())
    for host in hosts:
        msg: HostBins = ctx.channel.recv(host, "bins", expect=HostBins)
        events = _host_events(p, pk, sk, msg, host, n, rho, n_events)
        start = 0
        host_groups[host], host_names[host] = [], [str(h) for h in msg.names]
        if len(set(host_names[host])) != len(host_names[host]):
            raise ProtocolAbort("feature names must be distinct", party=host)
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
        shown = (
            [[round(v, p.woe_decimals) for v in woe[host][f]] for f in host_names[host]]
            if p.reveal_woe_to_hosts
            else []
        )
        ctx.channel.send(
            host,
            "verdict",
            Verdicts(
                groups=host_groups[host],
                selected=[(host, f) in keep for f in host_names[host]],
                woe=shown,
            ),
        )
    return {
        "role": "guest",
        "features": list(names),
        "edges": own_edges,
        "missing_to": own_missing,
        "iv": iv,
        "woe": woe,
        "selected": {party: [f for f in d if (party, f) in keep] for party, d in iv.items()},
    }
