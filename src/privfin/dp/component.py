"""The ``dp_release`` pipeline component: a DP release computed by the data owner and sent to
the result party.

Roles: ``data`` (one party: holds the table, computes) and ``result`` (one party: receives the
noisy values, their error bars and the cost; may be the data party itself). The budget is not
charged here: the node's scheduler reserves :meth:`ReleaseParams.cost` in the data owner's
ledger **before** it loads the dataset and commits it once the step's outputs are written (see
``privfin.jobs.scheduler``). Message: one ``dp.release`` mapping (the release's JSON form),
checked by :func:`~privfin.dp.release.check_release_json` on receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from privfin.dp.release import ReleaseParams, check_release_json, run_release
from privfin.errors import ConfigError, ProtocolAbort
from privfin.runtime import Context

__all__ = ["TAG", "dp_release_component"]

TAG = "dp.release"


def dp_release_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Run this party's part; returns ``{"release": <release JSON>}`` (``None`` for a party
    with neither role)."""
    p = ReleaseParams.from_mapping(params)
    data = ctx.parties_with("data")
    result = ctx.parties_with("result")
    if len(data) != 1 or len(result) != 1:
        raise ConfigError("dp_release needs exactly one 'data' and one 'result' party")
    owner, receiver = data[0], result[0]
    if ctx.party == owner:
        table = inputs.get("table")
        if not isinstance(table, pd.DataFrame):
            raise ConfigError("dp_release: input 'table' must be a table")
        out = run_release(p, table, rng=ctx.random).to_json()
        if receiver != owner:
            ctx.channel.send(receiver, TAG, out)
        return {"release": out}
    if ctx.party == receiver:
        raw = ctx.channel.recv(owner, TAG)
        try:
            got = check_release_json(raw)
        except Exception as exc:
            raise ProtocolAbort(f"malformed DP release: {exc}", party=owner) from None
        return {"release": got}
    return {"release": None}
