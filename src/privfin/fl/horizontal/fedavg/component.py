"""The ``hfl`` component: horizontal FedAvg / FedProx over secure aggregation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.errors import ConfigError, InputError
from privfin.fl.horizontal.fedavg.client import run_client
from privfin.fl.horizontal.fedavg.common import CLIENT, SERVER, HFLParams, data_of
from privfin.fl.horizontal.fedavg.server import run_server
from privfin.runtime import Context

__all__ = ["hfl_component"]

#: Parameters naming a table's columns (a node's registered dataset as input ``table``).
_TABLE_PARAMS = ("label", "id_column")


def _from_table(table: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``X`` and ``y`` of a client's table: every column but the label (``params["label"]``,
    default ``y``) and the id (``params["id_column"]``, default ``id``), in table order."""
    label = str(params.get("label", "y"))
    if not hasattr(table, "columns") or label not in table.columns:
        raise InputError(f"the client's table needs the label column {label!r}")
    drop = {label, str(params.get("id_column", "id"))}
    cols = [c for c in table.columns if str(c) not in drop]
    return {"X": table[cols].to_numpy(dtype=np.float64), "y": table[label].to_numpy()}


def hfl_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Horizontal federated training (FedAvg, or FedProx with ``mu > 0``).

    Roles: one ``server`` (optional inputs ``X_val``, ``y_val``: a validation set for per-round
    AUC and early stopping with ``patience``) and two or more ``client`` (inputs ``X``, ``y``,
    or a ``table`` with the label column ``params["label"]`` and optional ``id_column``).
    Parameters: :class:`~privfin.fl.horizontal.fedavg.common.HFLParams` fields, plus ``lr``,
    ``local_epochs``, ``batch_size``, ``mu``, ``optimiser`` ("sgd"/"adam").

    Returns
    -------
    dict
        Server: ``{"role", "weights", "history", "rounds"}`` (``history``: one dict per round
        with the sampled clients, survivors, dropouts, mean training loss, validation AUC and
        seconds); client: ``{"role", "weights", "rounds_trained"}``.

    Security
    --------
    With ``secure_aggregation`` (default) the server learns only each round's sum of the
    surviving clients' weighted updates and row counts (see secagg's SPEC.md); without it
    (insecure mode, refused in production) it sees every update.
    """
    p = HFLParams.from_mapping({k: v for k, v in params.items() if k not in _TABLE_PARAMS})
    servers = ctx.parties_with(SERVER)
    clients = ctx.parties_with(CLIENT)
    if len(servers) != 1 or len(clients) < 2:
        raise ConfigError("hfl needs exactly one server and at least two clients")
    if ctx.has_role(SERVER):
        xv = inputs.get("X_val")
        yv = inputs.get("y_val")
        x_val = None if xv is None else np.asarray(xv, dtype=np.float64)
        y_val = None if yv is None else np.asarray(yv, dtype=np.float64).ravel()
        return run_server(ctx, p, clients, x_val, y_val)
    if inputs.get("X") is None and inputs.get("table") is not None:
        inputs = _from_table(inputs["table"], params)
    x, y = data_of(inputs, p.n_features)
    return run_client(ctx, p, servers[0], len(clients), x, y)
