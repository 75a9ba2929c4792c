"""Host role: holds features only.

Per minibatch a host sends its partial predictor ``u_k = X_k w_k`` encrypted (divided by 4),
receives the encrypted residual, completes it, computes its encrypted gradient
``Q_k^T [[d]]``, and has it decrypted by the key holder under a statistical mask. It never
sees a label, a residual or another party's gradient in clear. With the Fourier residual
(default in mode arbiter with one host, SPEC.md) it sends ``Enc(cos/sin(ω_k u))`` instead and
receives the completed ``Enc(d)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.errors import ProtocolAbort
from privfin.fl.vertical.hetero_lr._wire import (
    announce_features,
    announce_key,
    decrypt_for,
    gradient_reply,
    masked_gradient,
    new_keypair,
    receive_features,
    receive_key,
    recv_cts,
    send_cts,
    sync_stop,
)
from privfin.fl.vertical.hetero_lr.common import (
    LRParams,
    PartyModel,
    agreed_entries,
    batch_plan,
    encode_fixed,
    fourier_features,
    min_batch_rows,
)
from privfin.fl.vertical.hetero_lr.messages import Plan, RowCount
from privfin.he._keys import PrivateKeyBase, PublicKeyBase
from privfin.he.errors import OverflowDetected
from privfin.runtime import Context

__all__ = ["run_host"]


def run_host(
    ctx: Context,
    params: LRParams,
    x: np.ndarray,
    guest: str,
    hosts: list[str],
    arbiter: str | None,
) -> dict[str, Any]:
    """Train; returns this host's coefficients and the number of epochs run."""
    plan: Plan = ctx.channel.recv(guest, "plan", expect=Plan)
    n = int(x.shape[0])
    if plan.n_rows != n:
        raise ProtocolAbort(
            f"the guest has {plan.n_rows} aligned rows, this host {n}: align with PSI first",
            party=guest,
        )
    entries = agreed_entries(params, guest, hosts, n)
    floor = min_batch_rows(entries)
    model = PartyModel(x, params, intercept=False)
    peers = [h for h in hosts if h != ctx.party]
    own_sk: PrivateKeyBase | None = None
    guest_count = 0
    if arbiter is not None:
        # The arbiter checks the guest's row count against every host's (a6b).
        ctx.channel.send(arbiter, "rows", RowCount(n_rows=n))
        pk = receive_key(ctx, params, arbiter)
        own_pk = pk
        announce_features(ctx, [arbiter], model.q.shape[1])
    else:
        pk = receive_key(ctx, params, guest)
        own_pk, own_sk = new_keypair(ctx, params)
        announce_key(ctx, own_pk, [guest])
        announce_features(ctx, [guest], model.q.shape[1])
        guest_count = receive_features(ctx, guest, entries[guest])
    fourier = params.residual(len(hosts)) == "fourier"
    epochs = 0
    for epoch in range(params.max_iter):
        epochs += 1
        for rows in batch_plan(plan.seed, n, params.batch_size, epoch, params.shuffle, floor):
            m = int(rows.size)
            if fourier:
                # Mode arbiter, one host: Enc(cos(w_k u)), Enc(sin(w_k u)) (2K fresh
                # ciphertexts per row, term-major); the guest completes the residual.
                feats = fourier_features(model.forward(rows)).reshape(-1)
                terms = encode_fixed(feats, params.frac_bits)
                send_cts(ctx, guest, "u", pk, pk.raw_encrypt(terms, n_jobs=params.n_jobs),
                         fresh=True)  # fmt: skip
                d_cts = recv_cts(ctx, guest, "d", pk, m)
            else:
                d_cts = _taylor_residual(ctx, params, model, rows, guest, peers, pk, own_pk,
                                         own_sk)  # fmt: skip
            bound = params.bound_bits(len(hosts), m, guest=False)
            packed, masks, _ = masked_gradient(ctx, pk, d_cts, model, rows, None, bound, params)
            keyholder = arbiter if arbiter is not None else guest
            # To the key's owner: uniform re-randomisation, the last operation before sending.
            send_cts(ctx, keyholder, "masked", pk, packed, fresh=False, for_owner=True,
                     n_jobs=params.n_jobs)  # fmt: skip
            if own_sk is not None:
                guest_bound = params.bound_bits(len(hosts), m, guest=True)
                decrypt_for(ctx, guest, own_sk, params, count=guest_count, bound_bits=guest_bound,
                            tag="gmasked", reply="gplain")  # fmt: skip
            g_int = gradient_reply(ctx, keyholder, masks, bound)
            f_res = params.residual_frac_bits(len(hosts), guest=False)
            model.step(model.gradient_from_ints(g_int, f_res, m), epoch)
        coordinator = arbiter if arbiter is not None else guest
        parties = [coordinator, ctx.party]
        if sync_stop(ctx, params, coordinator, parties, model.epoch_norms()[0]):
            break
    return {"role": "host", "coef": model.coef.tolist(), "n_iter": epochs}


def _taylor_residual(
    ctx: Context,
    params: LRParams,
    model: PartyModel,
    rows: np.ndarray,
    guest: str,
    peers: list[str],
    pk: PublicKeyBase,
    own_pk: PublicKeyBase,
    own_sk: PrivateKeyBase | None,
) -> list[Any]:
    """Send ``Enc(u/4)`` and complete the encrypted Taylor residual ``Enc(d)`` of a batch
    (``own_sk`` is set in mode ``guest`` only)."""
    m = int(rows.size)
    u_int = encode_fixed(model.forward(rows) / 4, params.frac_bits)
    send_cts(ctx, guest, "u", own_pk, own_pk.raw_encrypt(u_int, n_jobs=params.n_jobs),
             fresh=True)  # fmt: skip
    own_plain: list[int] | None = None if params.weighted else u_int
    if own_sk is not None and params.weighted:
        # s*u/4 + rho (the guest's blind, hiding s): no per-row Enc(s) is ever held.
        su = recv_cts(ctx, guest, "su", own_pk, m)
        try:
            own_plain = [int(v) for v in own_sk.raw_decrypt(su, n_jobs=params.n_jobs)]
        except OverflowDetected:  # OU: a residue beyond the bound (chosen M >= p?)
            raise ProtocolAbort(
                f"{guest!r} sent a blinded weight term beyond the plaintext bound: refused",
                party=guest,
            ) from None
    if own_sk is not None and peers:
        assert own_plain is not None
        fresh_u = pk.raw_encrypt(own_plain, n_jobs=params.n_jobs)
        for peer in peers:
            send_cts(ctx, peer, "peer_u", pk, fresh_u, fresh=True)
    d_cts = recv_cts(ctx, guest, "d", pk, m)
    if own_sk is not None:
        for peer in peers:
            d_cts = pk.raw_add(d_cts, recv_cts(ctx, peer, "peer_u", pk, m))
    if own_plain is not None:
        d_cts = pk.raw_add_plain(d_cts, own_plain)
    return d_cts
