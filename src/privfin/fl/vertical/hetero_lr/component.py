"""The ``hetero_lr`` component: wires the roles to a job's parameters and inputs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from privfin.errors import ConfigError
from privfin.fl.vertical.hetero_lr.arbiter import run_arbiter
from privfin.fl.vertical.hetero_lr.common import (
    ARBITER,
    GUEST,
    HOST,
    LRParams,
    check_own_count,
    features_of,
    labels_of,
)
from privfin.fl.vertical.hetero_lr.guest import run_guest
from privfin.fl.vertical.hetero_lr.host import run_host
from privfin.runtime import Context

__all__ = ["MODEL_ARTIFACT", "hetero_lr_component"]

#: Name of the party-private artifact holding this party's slice of the trained model.
MODEL_ARTIFACT = "hetero_lr.model.json"


def hetero_lr_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Hetero (vertical) logistic regression over Paillier.

    Roles: exactly one ``guest`` (inputs ``X`` and ``y``, or a PSI-aligned ``table`` with the
    label column ``params["label"]``), one or more ``host`` (input ``X`` or ``table``), and in
    mode ``"arbiter"`` exactly one ``arbiter`` (no inputs). Parameters: see
    :class:`~privfin.fl.vertical.hetero_lr.common.LRParams`.

    Returns
    -------
    dict
        Guest: ``{"role", "coef", "intercept", "n_iter"}``; host: ``{"role", "coef",
        "n_iter"}``; arbiter: ``{"role", "n_iter"}``. Each party's slice of the model is also
        stored in its artifact store as :data:`MODEL_ARTIFACT`.

    Security
    --------
    Semi-honest parties, no collusion between the key holder and another party. Each party
    learns its own slice of the weights and what ``SPEC.md`` lists: no label, feature,
    residual or other party's gradient leaves its owner in clear. Key holders trust no requester:
    they decrypt only the exact packed size announced at setup and only in-range masked slots
    (``ProtocolAbort`` naming the requester otherwise) and return ``B + 1`` bits per slot; the
    size is that of the AGREED ``feature_counts`` parameter (required: ``{party: feature
    columns}``), never a count a peer declares; the
    residual leak of a deviating party is quantified in ``SPEC.md``.
    """
    p = LRParams.from_mapping(params)
    guests = ctx.parties_with(GUEST)
    hosts = ctx.parties_with(HOST)
    arbiters = ctx.parties_with(ARBITER)
    if len(guests) != 1 or not hosts:
        raise ConfigError("hetero_lr needs exactly one guest and at least one host")
    if p.mode == "arbiter" and len(arbiters) != 1:
        raise ConfigError("mode='arbiter' needs exactly one arbiter party")
    if p.mode == "guest" and arbiters:
        raise ConfigError("mode='guest' runs without an arbiter; remove the arbiter role")
    guest = guests[0]
    arbiter = arbiters[0] if p.mode == "arbiter" else None
    if p.feature_counts is None:
        raise ConfigError(
            "hetero_lr needs the parameter 'feature_counts' ({party: number of feature "
            "columns}, agreed by all parties, e.g. from the approved schemas): key holders "
            "decrypt exactly that many gradient entries per party, never a self-declared count"
        )
    if ctx.has_role(GUEST):
        x = features_of(inputs, params)
        check_own_count(p, ctx.party, x)
        y = labels_of(inputs, params, x.shape[0])
        out = run_guest(ctx, p, x, y, hosts, arbiter)
    elif ctx.has_role(HOST):
        xh = features_of(inputs, params)
        check_own_count(p, ctx.party, xh)
        out = run_host(ctx, p, xh, guest, hosts, arbiter)
    elif ctx.has_role(ARBITER):
        out = run_arbiter(ctx, p, guest, hosts)
    else:
        raise ConfigError(f"party {ctx.party!r} has no hetero_lr role")
    ctx.artifacts.put(MODEL_ARTIFACT, json.dumps(out).encode())
    return out
