"""Guest role: holds the labels (and features, and the intercept).

Per minibatch the guest forms its residual part ``v = 0.25 * X_g w_g + 0.5 - y`` (Taylor
expansion of the logistic loss) and sends it encrypted, so hosts can complete the residual
``d = s * (v + sum_k u_k / 4)`` homomorphically; it computes its own gradient on the hosts'
encrypted partial predictors. It never sees a host's partial predictor or gradient in clear.
With the Fourier residual (default in mode arbiter with one host, SPEC.md) it weights the
host's encrypted terms ``cos/sin(ω_k u)`` by ``c_k sin/cos(ω_k z_g)`` and sends ``Enc(d)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    weight_blinds,
)
from privfin.fl.vertical.hetero_lr.common import (
    FOURIER_BITS,
    FOURIER_OMEGA,
    LRParams,
    PartyModel,
    agreed_entries,
    batch_plan,
    encode_fixed,
    fourier_weights,
    min_batch_rows,
    sample_weights,
)
from privfin.fl.vertical.hetero_lr.messages import Plan
from privfin.he._keys import PrivateKeyBase, PublicKeyBase
from privfin.runtime import Context

__all__ = ["run_guest"]


def run_guest(
    ctx: Context,
    params: LRParams,
    x: np.ndarray,
    y: np.ndarray,
    hosts: list[str],
    arbiter: str | None,
) -> dict[str, Any]:
    """Train; returns the guest's coefficients, intercept and the number of epochs run."""
    n = int(y.size)
    entries = agreed_entries(params, ctx.party, hosts, n)
    floor = min_batch_rows(entries)
    s, s_int = sample_weights(y, params)
    fourier = params.residual(len(hosts)) == "fourier"
    # Taylor: the class weights are folded into the guest's matrix; Fourier: into Enc(d).
    model = PartyModel(
        x, params, intercept=params.fit_intercept, row_weights=None if fourier else s
    )
    seed = ctx.random.below(2**63)
    for host in hosts:
        ctx.channel.send(host, "plan", Plan(n_rows=n, seed=seed))
    if arbiter is not None:
        ctx.channel.send(arbiter, "plan", Plan(n_rows=n, seed=0))
        pk = receive_key(ctx, params, arbiter)
        sk: PrivateKeyBase | None = None
        host_keys = {h: pk for h in hosts}
        announce_features(ctx, [arbiter], model.q.shape[1])
        host_counts: dict[str, int] = {}
    else:
        pk, sk = new_keypair(ctx, params)
        announce_key(ctx, pk, hosts)
        host_keys = {h: receive_key(ctx, params, h) for h in hosts}
        announce_features(ctx, hosts, model.q.shape[1])
        host_counts = {h: receive_features(ctx, h, entries[h]) for h in hosts}
    f = params.frac_bits
    f_res = params.residual_frac_bits(len(hosts), guest=True)
    epochs = 0
    task = ctx.progress.task("hetero_lr.epochs", total=params.max_iter)
    for epoch in range(params.max_iter):
        epochs += 1
        for rows in batch_plan(seed, n, params.batch_size, epoch, params.shuffle, floor):
            m = int(rows.size)
            if fourier:
                assert arbiter is not None  # LRParams.residual: mode arbiter, one host
                g_int = _fourier_gradient(ctx, params, pk, model, rows, y, s_int, hosts[0],
                                          arbiter)  # fmt: skip
                model.step(model.gradient_from_ints(g_int, f_res, m), epoch)
                continue
            v_int = encode_fixed(0.25 * model.forward(rows) + 0.5 - y[rows], f)
            sv_int = [a * int(b) for a, b in zip(v_int, s_int[rows], strict=True)]
            early = arbiter is None or (len(hosts) == 1 and not params.weighted)
            blinds: dict[str, list[int]] = {}
            if early:
                # Every host completes d itself: one fresh Enc(s*v) (or Enc(v)) for all. Mode
                # guest with weights: Enc(s*v - sum_k rho_k); host k gets s*u_k/4 + rho_k
                # below, so no host ever holds a per-row ciphertext of s (the labels).
                first = sv_int if params.weighted else v_int
                if arbiter is None and params.weighted:
                    blinds = {h: weight_blinds(ctx, host_keys[h], params, m) for h in hosts}
                    first = [
                        (a - sum(blinds[h][i] for h in hosts)) % pk.n for i, a in enumerate(first)
                    ]
                d_cts = pk.raw_encrypt(first, n_jobs=params.n_jobs)
                for host in hosts:
                    send_cts(ctx, host, "d", pk, d_cts, fresh=True)
            u = {h: recv_cts(ctx, h, "u", host_keys[h], m) for h in hosts}
            s_rows = [int(v) for v in s_int[rows]]
            for h, rho in blinds.items():
                hk = host_keys[h]
                su = hk.raw_add_plain(hk.raw_mul(u[h], s_rows, n_jobs=params.n_jobs), rho)
                # Under host h's own key, back to h: uniform re-randomisation (the random
                # part of Enc_k(u)**s would otherwise carry s to a host with smooth p - 1).
                send_cts(ctx, h, "su", hk, su, fresh=False, for_owner=True, n_jobs=params.n_jobs)
            if arbiter is not None and not early:
                _send_residuals(ctx, params, pk, hosts, u, v_int, sv_int, s_int[rows])
            bound = params.bound_bits(len(hosts), m, guest=True)
            if arbiter is not None:
                total = u[hosts[0]]
                for h in hosts[1:]:
                    total = pk.raw_add(total, u[h])
                packed, masks, _ = masked_gradient(
                    ctx, pk, total, model, rows, v_int, bound, params
                )
                send_cts(ctx, arbiter, "masked", pk, packed, fresh=False, for_owner=True,
                         n_jobs=params.n_jobs)  # fmt: skip
                g_int = gradient_reply(ctx, arbiter, masks, bound)
            else:
                assert sk is not None
                pending = {}
                for h in hosts:
                    hk = host_keys[h]
                    packed, masks, _ = masked_gradient(
                        ctx, hk, u[h], model, rows, None, bound, params
                    )
                    send_cts(ctx, h, "gmasked", hk, packed, fresh=False, for_owner=True,
                             n_jobs=params.n_jobs)  # fmt: skip
                    pending[h] = masks
                host_bound = params.bound_bits(len(hosts), m, guest=False)
                for h in hosts:
                    decrypt_for(ctx, h, sk, params, count=host_counts[h], bound_bits=host_bound)
                q_rows = model.q[rows]
                g_int = [int(v) for v in _int_dot(q_rows, v_int)]
                for h in hosts:
                    part = gradient_reply(ctx, h, pending[h], bound, tag="gplain")
                    g_int = [a + b for a, b in zip(g_int, part, strict=True)]
            model.step(model.gradient_from_ints(g_int, f_res, m), epoch)
        coordinator = arbiter if arbiter is not None else ctx.party
        parties = [ctx.party, *hosts] if arbiter is None else [arbiter, ctx.party, *hosts]
        task.advance()
        if sync_stop(ctx, params, coordinator, parties, model.epoch_norms()[0]):
            break
    return {
        "role": "guest",
        "coef": model.coef.tolist(),
        "intercept": model.bias,
        "n_iter": epochs,
    }


def _fourier_gradient(
    ctx: Context,
    params: LRParams,
    pk: PublicKeyBase,
    model: PartyModel,
    rows: np.ndarray,
    y: np.ndarray,
    s_int: np.ndarray,
    host: str,
    arbiter: str,
) -> list[int]:
    """One batch with the Fourier residual (mode arbiter, one host); returns the guest's
    decrypted gradient integers.

    ``Enc(d) = Enc(s (1/2 - y)) · Π_j Enc(b_j)^(s A_j)``: the host's ``2K`` terms
    ``b_j = cos/sin(ω_k ũ)`` per row (term-major, exactly ``2K·m`` ciphertexts) raised to the
    guest's integers ``s·A_j``, ``A = fourier_weights(z_g)``, times a fresh encryption (which
    makes the product a fresh ciphertext for the host, who holds no key). Both parties then
    multiply ``Enc(d)`` by their quantised features; the guest's matrix is unweighted here.
    """
    m = int(rows.size)
    terms = 2 * len(FOURIER_OMEGA)
    feats = recv_cts(ctx, host, "u", pk, terms * m)
    w = [int(v) for v in s_int[rows]] if params.weighted else [1] * m
    a_int = encode_fixed(fourier_weights(model.forward(rows)).reshape(-1), FOURIER_BITS)
    scaled = pk.raw_mul(feats, [a * w[i % m] for i, a in enumerate(a_int)], n_jobs=params.n_jobs)
    # (1/2 - y) * 2**(f + 16) = ±2**(f + 15), exact in Python ints (beyond int64 for f > 46).
    half = [(1 - 2 * int(v)) << (params.frac_bits + FOURIER_BITS - 1) for v in y[rows]]
    d_cts = pk.raw_encrypt([h * wi for h, wi in zip(half, w, strict=True)], n_jobs=params.n_jobs)
    for j in range(terms):
        d_cts = pk.raw_add(d_cts, scaled[j * m : (j + 1) * m])
    send_cts(ctx, host, "d", pk, d_cts, fresh=True)
    bound = params.bound_bits(1, m, guest=True)
    packed, masks, _ = masked_gradient(ctx, pk, d_cts, model, rows, None, bound, params)
    send_cts(ctx, arbiter, "masked", pk, packed, fresh=False, for_owner=True,
             n_jobs=params.n_jobs)  # fmt: skip
    return gradient_reply(ctx, arbiter, masks, bound)


def _int_dot(q: np.ndarray, vec: list[int]) -> list[int]:
    return [sum(a * b for a, b in zip(col, vec, strict=True)) for col in q.T.tolist()]


def _send_residuals(
    ctx: Context,
    params: LRParams,
    pk: PublicKeyBase,
    hosts: list[str],
    u: dict[str, list[Any]],
    v_int: list[int],
    sv_int: list[int],
    s_rows: np.ndarray,
) -> None:
    """Arbiter mode with several hosts or class weights: send each host the encrypted residual
    it cannot complete itself. Unweighted: ``Enc(v + sum_{j != k} u_j/4)`` (host k adds its
    own part); weighted: ``Enc(s * (v + sum_j u_j/4))`` for every host."""
    if params.weighted:
        total = u[hosts[0]]
        for h in hosts[1:]:
            total = pk.raw_add(total, u[h])
        scaled = pk.raw_mul(total, [int(v) for v in s_rows], n_jobs=params.n_jobs)
        fresh = pk.raw_encrypt(sv_int, n_jobs=params.n_jobs)
        d_cts = pk.raw_add(fresh, scaled)
        for host in hosts:
            send_cts(ctx, host, "d", pk, d_cts, fresh=True)
        return
    for host in hosts:
        # A fresh Enc(v) factor re-randomises the product: it is distributed as a fresh
        # encryption, so it needs no extra obfuscation.
        d_cts = pk.raw_encrypt(v_int, n_jobs=params.n_jobs)
        for other in hosts:
            if other != host:
                d_cts = pk.raw_add(d_cts, u[other])
        send_cts(ctx, host, "d", pk, d_cts, fresh=True)
