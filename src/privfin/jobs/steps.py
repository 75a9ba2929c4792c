"""Pipeline step functions: the protocols' components with named, typed outputs.

Each function takes ``(ctx, params, inputs)`` like every component — ``inputs`` already loaded
by the scheduler (tables and scores as DataFrames, a model as the parsed JSON of the party's
own slice) — and returns ``{output name: value}`` (``None`` where this party gets nothing).
The protocols run unchanged underneath; these functions only adapt tables to the protocols'
inputs and their results to files a bank can open (scores keep the id column).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from privfin.errors import ConfigError
from privfin.jobs.registry import get_component
from privfin.runtime import Context

__all__ = [
    "binning_step",
    "dp_release_step",
    "evaluate_step",
    "hetero_lr_step",
    "hfl_gbdt_step",
    "hfl_score_step",
    "hfl_step",
    "lr_score_step",
    "psi_step",
    "secureboost_score_step",
    "secureboost_step",
    "tee_step",
]


def _table(inputs: Mapping[str, Any], name: str = "table") -> pd.DataFrame:
    table = inputs.get(name)
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(f"input {name!r} must be a table")
    return table


def _column(table: pd.DataFrame, column: str, what: str, source: str = "input 'table'") -> Any:
    if column not in table.columns:
        cols = ", ".join(map(str, table.columns[:20]))
        raise ConfigError(f"{source} has no {what} column {column!r} (columns: {cols})")
    return table[column]


def _features(table: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    drop = [c for c in (params.get("id_column", "id"), params.get("label", "y")) if c in table]
    return table.drop(columns=drop)


def _ids(table: pd.DataFrame, params: Mapping[str, Any]) -> pd.Series:
    ids: pd.Series = _column(table, str(params.get("id_column", "id")), "id")
    return ids


def _scores_frame(ids: pd.Series, scores: Any) -> pd.DataFrame:
    arr = np.asarray(scores, dtype=np.float64)
    out = pd.DataFrame({str(ids.name): ids.to_numpy()})
    if arr.ndim == 1:
        out["score"] = arr
    elif arr.shape[1] == 2:  # binary: the probability of class 1
        out["score"] = arr[:, 1]
    else:
        for k in range(arr.shape[1]):
            out[f"score_{k}"] = arr[:, k]
    return out


def _without(params: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in names}


def psi_step(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    out = get_component("psi")(ctx, params, {"table": _table(inputs)})
    size = out.get("size")
    if out.get("dp") is not None:  # a DP cardinality: the release, never an exact size
        return {"aligned": None, "summary": {"dp_cardinality": out["dp"]}}
    return {
        "aligned": out.get("table"),
        "summary": None if size is None else {"intersection_size": int(size)},
    }


def binning_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    return {"report": get_component("hetero_binning")(ctx, params, {"table": _table(inputs)})}


def secureboost_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    table = _table(inputs)
    out = get_component("secureboost")(ctx, params, {"table": table})
    model = out["model"]
    result: dict[str, Any] = {
        "model": json.loads(model.to_json()),
        "importance": {str(k): v for k, v in dict(out.get("importance") or {}).items()},
        "train_scores": None,
    }
    if out.get("scores") is not None:
        result["train_scores"] = _scores_frame(_ids(table, params), out["scores"])
    return result


def _check_features(
    model: Mapping[str, Any], table: pd.DataFrame, params: Mapping[str, Any]
) -> pd.DataFrame:
    x = _features(table, params)
    names = model.get("feature_names") or model.get("features")
    if names and [str(c) for c in x.columns] != [str(n) for n in names]:
        raise ConfigError(
            f"the table's feature columns {list(map(str, x.columns))[:10]} are not the "
            f"model's {list(names)[:10]} (same names, same order)"
        )
    return x


def secureboost_score_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    model = inputs.get("model")
    if not isinstance(model, Mapping):
        raise ConfigError("input 'model' must be a SecureBoost model")
    table = _table(inputs)
    x = _check_features(model, table, params)
    out = get_component("secureboost_predict")(ctx, {}, {"X": x, "model": json.dumps(dict(model))})
    scores = out.get("scores")
    return {"scores": None if scores is None else _scores_frame(_ids(table, params), scores)}


def hetero_lr_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    if ctx.has_role("arbiter"):
        get_component("hetero_lr")(ctx, params, {})
        return {"model": None}
    table = _table(inputs)
    out = get_component("hetero_lr")(ctx, params, {"table": table})
    names = [str(c) for c in _features(table, params).columns]
    model = {
        "kind": "hetero_lr",
        "role": out.get("role"),
        "features": names,
        "coef": [float(v) for v in np.asarray(out["coef"]).reshape(-1)],
        "intercept": float(out.get("intercept") or 0.0),
        "n_iter": int(out.get("n_iter") or 0),
    }
    return {"model": model}


def lr_score_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    model = inputs.get("model")
    if not isinstance(model, Mapping) or "coef" not in model:
        raise ConfigError("input 'model' must be a hetero LR model (with 'coef')")
    table = _table(inputs)
    x = _check_features(model, table, params)
    out = get_component("vertical_lr_scoring")(
        ctx,
        {},
        {
            "X": x.to_numpy(dtype=np.float64),
            "coef": np.asarray(model["coef"], dtype=np.float64),
            "intercept": float(model.get("intercept", 0.0)),
        },
    )
    score = out.get("score")
    return {"scores": None if score is None else _scores_frame(_ids(table, params), score)}


def evaluate_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    from privfin.ml.metrics import binary_report

    id_col = str(params.get("id_column", "id"))
    label = str(params.get("label", "y"))
    scores = _table(inputs, "scores")
    table = _table(inputs)
    if "score" not in scores.columns:
        raise ConfigError("input 'scores' needs a 'score' column (binary scores)")
    _column(scores, id_col, "id", "input 'scores'")
    _column(table, id_col, "id")
    _column(table, label, "label")
    joined = scores[[id_col, "score"]].merge(table[[id_col, label]], on=id_col, how="inner")
    if len(joined) != len(scores):
        raise ConfigError(f"{len(scores) - len(joined)} scored ids are not in the labelled table")
    y = joined[label].to_numpy(dtype=np.float64)
    if not np.all((y == 0) | (y == 1)) or y.min() == y.max():
        raise ConfigError("evaluation needs 0/1 labels of both classes")
    rep = binary_report(
        y, joined["score"].to_numpy(dtype=np.float64), threshold=float(params.get("threshold", 0.5))
    )
    fpr, tpr, thr = rep.roc
    return {
        "metrics": {
            "rows": len(joined),
            **rep.summary(),
            "confusion": rep.confusion,
            "curves": {
                "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "threshold": thr.tolist()},
                "ks": {
                    "threshold": rep.ks.thresholds.tolist(),
                    "tpr": rep.ks.tpr.tolist(),
                    "fpr": rep.ks.fpr.tolist(),
                },
                "gain": rep.gain.as_rows(),
            },
        }
    }


def tee_step(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tee`` component: a data party gives its table, the result party gets the model
    and metrics, every data party the audit record of its key release."""
    table_in = {"table": _table(inputs)} if ctx.has_role("data") else {}
    out = get_component("tee")(ctx, params, table_in)
    return {name: out.get(name) for name in ("model", "metrics", "release", "enclave")}


def dp_release_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """A DP release (the scheduler has reserved its budget before the dataset was read)."""
    from privfin.dp.component import dp_release_component

    return {"release": dp_release_component(ctx, params, inputs)["release"]}


def _horizontal(
    ctx: Context, name: str, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Inputs and parameters of a horizontal step: clients give their table (features and
    label), the server its optional ``validation`` table; ``n_features`` comes from the
    clients' columns, which every client must share (checked by the server first)."""
    from privfin.fl.horizontal.schema import agree_columns

    server = ctx.parties_with("server")
    clients = ctx.parties_with("client")
    if len(server) != 1 or len(clients) < 2:
        raise ConfigError(f"{name} needs exactly one server and at least two clients")
    label = str(params.get("label", "y"))
    if ctx.has_role("client"):
        table = _table(inputs)
        _column(table, label, "label")
        cols = [str(c) for c in _features(table, params).columns]
        agree_columns(ctx, server[0], clients, cols)
        given: dict[str, Any] = {"table": table}
    else:
        cols = agree_columns(ctx, server[0], clients, None)
        given = {}
        val = inputs.get("validation")
        if isinstance(val, pd.DataFrame):
            missing = [c for c in cols if c not in val.columns]
            if missing:
                raise ConfigError(f"the validation table lacks the columns {missing[:10]}")
            given = {
                "X_val": val[cols].to_numpy(dtype=np.float64),
                "y_val": _column(val, label, "label", "input 'validation'").to_numpy(),
            }
    return given, {**params, "n_features": len(cols)}, cols


def hfl_step(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``hfl`` component (FedAvg / FedProx / FedAdam) with a model file at every party and
    the per-round history at the server."""
    given, full, cols = _horizontal(ctx, "hfl", params, inputs)
    out = get_component("hfl")(ctx, full, given)
    model = {
        "kind": "hfl",
        "model": str(params.get("model", "logistic")),
        "hidden": int(params.get("hidden", 16)),
        "features": cols,
        "weights": [float(v) for v in np.asarray(out["weights"]).reshape(-1)],
    }
    history = None
    if out.get("role") == "server":
        history = {"rounds": out["rounds"], "history": out["history"], "dp": out.get("dp")}
    return {"model": model, "history": history}


def hfl_gbdt_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``hfl_gbdt`` component with a model file at every party that finished and the
    per-tree history at the server."""
    given, full, cols = _horizontal(ctx, "hfl_gbdt", params, inputs)
    out = get_component("hfl_gbdt")(ctx, full, given)
    model = None
    if out.get("model") is not None:
        model = {**out["model"].to_dict(), "features": cols}
    history = None
    if out.get("role") == "server":
        history = {
            "history": out["history"],
            "clients": out["clients"],
            "dropped": out["dropped"],
            "restarts": out["restarts"],
        }
    return {"model": model, "history": history}


def hfl_score_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Score a party's rows with a model of the ``hfl`` or ``hfl_gbdt`` step, locally (every
    party of those steps holds the whole model): the probability of the label 1 per id."""
    model = inputs.get("model")
    if not isinstance(model, Mapping):
        raise ConfigError("input 'model' must be a model of the hfl or hfl_gbdt step")
    table = _table(inputs)
    x = _check_features(model, table, params).to_numpy(dtype=np.float64)
    if model.get("kind") == "hfl":
        from privfin.fl.horizontal.fedavg import make_model

        net = make_model(str(model["model"]), x.shape[1], hidden=int(model.get("hidden", 16)))
        weights = np.asarray(model["weights"], dtype=np.float64)
        if weights.shape != (net.n_params,):
            raise ConfigError("the hfl model's weights do not fit its features")
        score = net.predict_proba(weights, x)
    else:
        from privfin.fl.horizontal.gbdt import FedGBDTModel

        gbdt = FedGBDTModel.from_dict(dict(model))
        if len(gbdt.edges) != x.shape[1]:
            raise ConfigError("the hfl_gbdt model's bin edges do not fit its features")
        score = gbdt.predict_proba(x)[:, 1]
    return {"scores": _scores_frame(_ids(table, params), score)}


def ss_lr_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """``ss_lr`` as a pipeline step: data parties give their tables (rows aligned by an
    earlier step), result parties get the model."""
    table_in = {"table": _table(inputs)} if ctx.has_role("data") else {}
    out = get_component("ss_lr")(ctx, params, table_in)
    if out is None or "coef" not in out:
        return {"model": None}
    return {"model": {"kind": "ss_lr", **out}}


def mpc_stats_step(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """``mpc_stats`` as a pipeline step: result parties get the statistics."""
    table_in = {"table": _table(inputs)} if ctx.has_role("data") else {}
    return {"stats": get_component("mpc_stats")(ctx, params, table_in)}
