"""The ``hfl_gbdt`` component: federated histogram GBDT (horizontal SecureBoost)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.errors import ConfigError, InputError
from privfin.fl.horizontal.gbdt.client import run_client
from privfin.fl.horizontal.gbdt.common import CLIENT, SERVER, GBDTParams, data_of
from privfin.fl.horizontal.gbdt.server import run_server
from privfin.runtime import Context

__all__ = ["hfl_gbdt_component"]

#: Parameters naming a table's columns (a node's registered dataset as input ``table``).
_TABLE_PARAMS = ("label", "id_column")


def _from_table(table: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    label = str(params.get("label", "y"))
    if not hasattr(table, "columns") or label not in table.columns:
        raise InputError(f"the client's table needs the label column {label!r}")
    drop = {label, str(params.get("id_column", "id"))}
    cols = [c for c in table.columns if str(c) not in drop]
    return {"X": table[cols].to_numpy(dtype=np.float64), "y": table[label].to_numpy()}


def hfl_gbdt_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Federated histogram GBDT for binary labels: clients send gradient histograms through
    secure aggregation; the server picks splits from their sum only.

    Roles: one ``server`` (optional inputs ``X_val``, ``y_val`` for per-tree validation AUC)
    and two or more ``client`` (inputs ``X`` (NaN = missing), ``y`` 0/1, or a ``table`` with
    the label column ``params["label"]`` and optional ``id_column``). Parameters:
    :class:`~privfin.fl.horizontal.gbdt.common.GBDTParams`.

    Returns
    -------
    dict
        Server: ``{"role", "model", "history", "clients", "dropped", "restarts",
        "aggregations"}``; client: ``{"role", "model", "rounds"}`` (``model`` is ``None`` for
        a client that was dropped). ``model``: :class:`FedGBDTModel`, the same at every party.

    Security
    --------
    The server learns only sums over the active clients (pooled sketch, pooled histograms of
    the nodes it grows) and who dropped; see SPEC.md.
    """
    p = GBDTParams.from_mapping({k: v for k, v in params.items() if k not in _TABLE_PARAMS})
    servers = ctx.parties_with(SERVER)
    clients = ctx.parties_with(CLIENT)
    if len(servers) != 1 or len(clients) < 2:
        raise ConfigError("hfl_gbdt needs exactly one server and at least two clients")
    p.secagg(len(clients), 1).check_clients(len(clients))
    if ctx.has_role(SERVER):
        xv, yv = inputs.get("X_val"), inputs.get("y_val")
        x_val = None if xv is None else np.asarray(xv, dtype=np.float64)
        y_val = None if yv is None else np.asarray(yv, dtype=np.float64).ravel()
        return run_server(ctx, p, clients, x_val, y_val)
    if inputs.get("X") is None and inputs.get("table") is not None:
        inputs = _from_table(inputs["table"], params)
    x, y = data_of(inputs, p.n_features)
    return run_client(ctx, p, servers[0], len(clients), x, y)
