"""The ``hetero_binning`` component: hetero WOE/IV binning with IV-based selection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.data.validate import column_of
from privfin.errors import ConfigError
from privfin.fl.vertical.binning.common import BinParams, feature_matrix
from privfin.fl.vertical.binning.guest import run_guest
from privfin.fl.vertical.binning.host import run_host
from privfin.runtime import Context

__all__ = ["hetero_binning_component"]


def hetero_binning_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Hetero WOE/IV binning (see ``binning/SPEC.md``).

    Roles: one ``guest`` (inputs ``X`` and ``y``, or an aligned ``table`` with the label
    column) and hosts (input ``X`` or ``table``). Returns, at the guest, ``iv`` and ``woe`` per
    party and feature, ``selected`` features per party and its own final ``edges``; at a host,
    its final ``edges``, kept features and (only with ``reveal_woe_to_hosts``) its ``woe``,
    rounded to ``woe_decimals``. Both return ``missing_to``: per own feature, the final bin
    that holds its missing values when there were too few for their own bin (else ``None``).

    Security: the guest learns per-bin event counts of host features (not the thresholds, not
    which rows fall in a bin); a host learns merge groups and kept features. The guest checks
    every host's bin structure (bin counts, bin floors, row and event totals, the secret-weight
    mass of every encrypted sum, the packing, ``max_features``) and aborts naming the host
    before any reply; what a deviating host can still learn is bounded in ``SPEC.md``.
    """
    p = BinParams.from_mapping(params)
    guests, hosts = ctx.parties_with("guest"), ctx.parties_with("host")
    if len(guests) != 1 or not hosts:
        raise ConfigError("hetero_binning needs exactly one guest and at least one host")
    x, names = feature_matrix(inputs, params)
    if ctx.has_role("guest"):
        if "y" in inputs:
            y = np.asarray(inputs["y"], dtype=np.float64).reshape(-1)
        else:
            label = column_of(inputs.get("table"), str(params.get("label", "y")), what="label")
            y = np.asarray(label, dtype=np.float64)
        if y.shape != (x.shape[0],) or not np.all((y == 0) | (y == 1)):
            raise ConfigError("the guest's labels must be one 0/1 value per row")
        return run_guest(ctx, p, x, names, y, hosts)
    if ctx.has_role("host"):
        return run_host(ctx, p, x, names, guests[0])
    raise ConfigError(f"party {ctx.party!r} has no hetero_binning role")
