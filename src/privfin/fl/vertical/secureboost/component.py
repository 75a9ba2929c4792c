"""The ``secureboost`` and ``secureboost_predict`` job components.

Roles: exactly one ``guest`` (label holder, key owner) and one or more ``host`` parties. Every
party's input rows must be aligned (the output of PSI, [04]): same ids in the same order.

Inputs
    guest: ``X`` (2-D array or DataFrame of its features), ``y`` (labels), optional
    ``feature_names``; hosts: ``X`` and optional ``feature_names``. A DataFrame's columns give
    the feature names. For ``secureboost_predict`` each party also passes its ``model``
    (the object returned by training, or its JSON).
Returns
    training — guest: ``{"model": GuestModel, "scores": train predictions, "importance":
    {...}}``; host: ``{"model": HostModel, "importance": {own features}}``.
    prediction — guest: ``{"scores": ...}`` (probabilities or regression values); host:
    ``{"scores": None}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.data.validate import column_of
from privfin.errors import ConfigError
from privfin.fl.vertical.secureboost._common import GUEST_ROLE, HOST_ROLE
from privfin.fl.vertical.secureboost.guest import run_guest_predict, run_guest_train
from privfin.fl.vertical.secureboost.host import run_host_predict, run_host_train
from privfin.fl.vertical.secureboost.model import GuestModel, HostModel
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.ml.trees import make_objective
from privfin.runtime import Context

__all__ = ["features_of", "secureboost_component", "secureboost_predict_component"]


_TABLE_PARAMS = ("id_column", "label")


def _from_table(inputs: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Accept PSI's aligned ``table`` (as node jobs pass datasets) in place of ``X``/``y``: the
    features are the table without its id column (``params["id_column"]``, default ``id``) and
    the label column (``params["label"]``, default ``y``), which becomes ``y`` if present."""
    if "X" in inputs or inputs.get("table") is None:
        return dict(inputs)
    table = inputs["table"]
    id_col, label = str(params.get("id_column", "id")), str(params.get("label", "y"))
    out = {k: v for k, v in inputs.items() if k != "table"}
    out["X"] = table.drop(columns=[c for c in (id_col, label) if c in table.columns])
    if label in table.columns and "y" not in out:
        out["y"] = table[label].to_numpy()
    return out


def features_of(inputs: Mapping[str, Any]) -> tuple[npt.NDArray[np.float64], list[str]]:
    """The party's feature matrix (float64, NaN = missing) and feature names."""
    if "X" not in inputs:
        raise ConfigError(
            "SecureBoost needs an input 'X' (the party's aligned feature matrix) or 'table'"
        )
    X = inputs["X"]
    names = list(inputs.get("feature_names") or [])
    if hasattr(X, "columns"):
        names = names or [str(c) for c in X.columns]
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ConfigError(f"'X' must be a non-empty 2-D matrix, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ConfigError("'X' contains infinite values; use NaN for missing values")
    if names and len(names) != arr.shape[1]:
        raise ConfigError(f"{len(names)} feature names for {arr.shape[1]} columns")
    return arr, names


def _roles(ctx: Context) -> tuple[str, list[str]]:
    guests = ctx.parties_with(GUEST_ROLE)
    hosts = ctx.parties_with(HOST_ROLE)
    if len(guests) != 1:
        raise ConfigError("SecureBoost needs exactly one 'guest' party (the label holder)")
    if guests[0] in hosts:
        raise ConfigError("the guest cannot also be a host")
    return guests[0], hosts


def secureboost_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Train hetero SecureBoost (parameters: :class:`BoostParams`; see SPEC.md for leakage)."""
    p = BoostParams.from_mapping({k: v for k, v in params.items() if k not in _TABLE_PARAMS})
    guest, hosts = _roles(ctx)
    table = inputs.get("table")
    inputs = _from_table(inputs, params)
    X, names = features_of(inputs)
    if ctx.party == guest:
        if "y" not in inputs:
            if table is not None:  # names the file and lists its columns
                column_of(table, str(params.get("label", "y")), what="label")
            raise ConfigError("the guest needs the labels as input 'y'")
        model, raw = run_guest_train(ctx, X, inputs["y"], p, hosts, names)
        ctx.artifacts.put("secureboost.guest_model.json", model.to_json().encode())
        obj = make_objective(p.objective, p.n_classes)
        return {
            "model": model,
            "scores": obj.transform(raw),
            "importance": model.feature_importance("split"),
            "metrics": ctx.metrics.snapshot(),
        }
    if ctx.party in hosts:
        hmodel = run_host_train(ctx, X, p, guest, names)
        ctx.artifacts.put("secureboost.host_model.json", hmodel.to_json().encode())
        return {
            "model": hmodel,
            "importance": hmodel.feature_importance("split"),
            "metrics": ctx.metrics.snapshot(),
        }
    return {}


def secureboost_predict_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Joint prediction with a trained model: the guest learns the scores, hosts nothing."""
    if params:
        raise ConfigError(f"secureboost_predict takes no parameters, got {sorted(params)}")
    guest, hosts = _roles(ctx)
    X, _ = features_of(inputs)
    model = inputs.get("model")
    if ctx.party == guest:
        if isinstance(model, (str, bytes)):
            model = GuestModel.from_json(model)
        if not isinstance(model, GuestModel):
            raise ConfigError("the guest needs its trained GuestModel as input 'model'")
        if sorted(model.hosts) != hosts:
            raise ConfigError(f"the model was trained with hosts {model.hosts}, job has {hosts}")
        raw = run_guest_predict(ctx, model, X, model.hosts)
        obj = make_objective(model.objective, model.n_classes)
        return {"scores": obj.transform(raw)}
    if ctx.party in hosts:
        if isinstance(model, (str, bytes)):
            model = HostModel.from_json(model)
        if not isinstance(model, HostModel):
            raise ConfigError(f"host {ctx.party!r} needs its trained HostModel as input 'model'")
        run_host_predict(ctx, X, model, guest)
        return {"scores": None}
    return {}
