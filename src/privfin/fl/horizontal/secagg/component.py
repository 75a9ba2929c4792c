"""The ``secagg`` component: one secure-aggregation round as a job step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.errors import ConfigError, InputError
from privfin.fl.horizontal.secagg.client import SecAggClient
from privfin.fl.horizontal.secagg.common import SecAggParams
from privfin.fl.horizontal.secagg.quantize import Quantizer
from privfin.fl.horizontal.secagg.server import SecAggServer
from privfin.runtime import Context

__all__ = ["CLIENT", "SERVER", "params_from_mapping", "secagg_component"]

SERVER = "server"
CLIENT = "client"


def params_from_mapping(params: Mapping[str, Any]) -> SecAggParams:
    """:class:`SecAggParams` from job parameters ``dim``, ``threshold`` and optional
    ``frac_bits``, ``bound``, ``stage_timeout``, ``client_timeout``."""
    try:
        q = Quantizer(
            frac_bits=int(params.get("frac_bits", 24)), bound=float(params.get("bound", 2.0**16))
        )
        return SecAggParams(
            dim=int(params["dim"]),
            threshold=int(params["threshold"]),
            quantizer=q,
            stage_timeout=float(params.get("stage_timeout", 30.0)),
            client_timeout=float(params.get("client_timeout", 300.0)),
        )
    except KeyError as exc:
        raise ConfigError(f"secagg needs the parameter {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad secagg parameter: {exc}") from None


def secagg_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Sum the clients' float vectors so that the server learns only the sum.

    Roles: one ``server`` (no inputs), two or more ``client`` (input ``x``: a float vector of
    length ``params["dim"]``, each value within ``bound``). Parameters: see
    :func:`params_from_mapping`; ``round`` (default 0) separates rounds of one job.

    Returns
    -------
    dict
        Server: ``{"sum", "survivors", "dropped", "error_bound"}``; client: ``{"included"}``.
    """
    p = params_from_mapping(params)
    round_id = int(params.get("round", 0))
    servers = ctx.parties_with(SERVER)
    clients = ctx.parties_with(CLIENT)
    if len(servers) != 1:
        raise ConfigError("secagg needs exactly one server")
    p.check_clients(len(clients))
    if ctx.has_role(SERVER):
        res = SecAggServer(ctx, clients, p, round_id).run()
        return {
            "sum": res.total,
            "survivors": res.survivors,
            "dropped": res.dropped,
            "error_bound": res.error_bound,
        }
    if "x" not in inputs:
        raise InputError("a secagg client needs the input 'x'")
    x = np.asarray(inputs["x"], dtype=np.float64)
    return {"included": SecAggClient(ctx, servers[0], p, round_id, x).run()}
