"""Host role of hetero binning: bins its own features, sums the guest's encrypted labels per
bin, and learns only how its fine bins merge, which of its features are kept and (optionally)
its bins' WOE. It never decrypts anything (it holds no key)."""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.fl.vertical.binning.common import (
    BinParams,
    final_edges,
    final_woe,
    guest_key,
    label_bits,
    local_bins,
    missing_target,
    reply_for_owner,
)
from privfin.fl.vertical.binning.messages import BinKey, EncryptedColumns, HostBins, Verdicts
from privfin.he._vector import EncryptedVector
from privfin.runtime import Context

__all__ = ["run_host"]


def run_host(
    ctx: Context, p: BinParams, x: np.ndarray, names: list[str], guest: str
) -> dict[str, Any]:
    """Run the host side; returns its final edges, kept features and (if revealed) WOE."""
    key: BinKey = ctx.channel.recv(guest, "key", expect=BinKey)
    pk = guest_key(key.key, p, guest)
    msg: EncryptedColumns = ctx.channel.recv(guest, "labels", expect=EncryptedColumns)
    if len(msg.columns) != 1:
        raise ProtocolAbort("the guest must send exactly one label column", party=guest)
    try:
        labels = EncryptedVector.from_wire(pk, msg.columns[0])
    except DecodeError as exc:
        raise DecodeError(f"encrypted labels from {guest!r}: {exc}") from None
    n = x.shape[0]
    if len(labels) != n:
        raise ProtocolAbort(f"{len(labels)} encrypted labels for {n} aligned rows", party=guest)
    if labels.bound_bits != label_bits(n) or labels.frac_bits != 0 or labels.is_float:
        raise ProtocolAbort("encrypted labels do not have the public encoding", party=guest)
    if len(names) > p.max_features:
        raise ConfigError(f"{len(names)} features, more than max_features={p.max_features}")
    cts = labels.ciphertexts_raw
    bins = [local_bins(x[:, j], p, names[j]) for j in range(x.shape[1])]
    sums: list[Any] = []
    totals: list[int] = []
    n_bins: list[int] = []
    for lb in bins:
        nb = lb.n_bins  # value bins, then the missing-value bin
        order = np.argsort(lb.idx, kind="stable")
        bounds = np.searchsorted(lb.idx[order], np.arange(nb + 1))
        for b in range(nb):
            rows = order[bounds[b] : bounds[b + 1]].tolist()
            sums.append(pk.raw_sum([cts[i] for i in rows]))
        totals.extend(np.bincount(lb.idx, minlength=nb).tolist())
        n_bins.append(nb)
    vec = EncryptedVector(
        pk, sums, frac_bits=0, bound_bits=label_bits(n) + n.bit_length(), is_float=False
    )
    ctx.channel.send(
        guest,
        "bins",
        HostBins(
            sums=reply_for_owner(ctx, vec),  # uniform re-randomisation, last
            totals=np.array(totals, dtype=np.int64),
            n_bins=n_bins,
            names=list(names),
        ),
    )
    verdict: Verdicts = ctx.channel.recv(guest, "verdict", expect=Verdicts)
    if len(verdict.groups) != len(bins) or len(verdict.selected) != len(bins):
        raise ProtocolAbort("the guest's binning verdict does not match the features", party=guest)
    out_edges = []
    for lb, groups in zip(bins, verdict.groups, strict=True):
        flat = [i for g in groups for i in g]
        if flat != list(range(lb.edges.size + 1)) or any(not g for g in groups):
            raise ProtocolAbort("merge groups must partition the value bins in order", party=guest)
        out_edges.append(final_edges(lb.edges, groups))
    woe = None
    if p.reveal_woe_to_hosts:
        if [len(w) for w in verdict.woe] != [len(e) + 2 for e in out_edges]:
            raise ProtocolAbort("WOE tables do not match the final bins", party=guest)
        woe = [
            final_woe(list(w), groups, lb.missing_into)
            for w, groups, lb in zip(verdict.woe, verdict.groups, bins, strict=True)
        ]
    ctx.metrics.add("binning.encrypted_sums", float(n * len(bins)))
    return {
        "role": "host",
        "features": list(names),
        "edges": out_edges,
        "selected": [n_ for n_, keep in zip(names, verdict.selected, strict=True) if keep],
        "woe": woe,
        "missing_to": [
            missing_target(groups, lb.missing_into)
            for groups, lb in zip(verdict.groups, bins, strict=True)
        ],
    }
