"""The horizontal components as pipeline steps (in-process pipeline run): FedAvg and the
federated GBDT train from the clients' registered tables, the server validates on its own
table; clients with different columns are refused before any training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from privfin.config import Settings
from privfin.errors import PrivfinError
from privfin.jobs.local import run_local
from privfin.jobs.spec import parse_spec_data

BANKS = ("bank_a", "bank_b", "bank_c")


def datasets() -> dict[str, dict[str, pd.DataFrame]]:
    x, y = load_breast_cancer(return_X_y=True)
    frame = pd.DataFrame(x[:, :8], columns=[f"f{i}" for i in range(8)])
    frame.insert(0, "y", y)
    frame.insert(0, "id", [f"r{i}" for i in range(len(y))])
    parts = np.array_split(np.random.default_rng(0).permutation(len(y)), 4)
    out = {
        b: {"train": frame.iloc[p].reset_index(drop=True)}
        for b, p in zip(BANKS, parts[:3], strict=True)
    }
    out["agg"] = {"val": frame.iloc[parts[3]].reset_index(drop=True)}
    return out


def spec(job: str) -> dict[str, Any]:
    roles = {"agg": "server", **{b: "client" for b in BANKS}}
    inputs = {"table": "datasets.train", "validation": "datasets.val"}
    return {
        "job": job,
        "purpose": "joint fraud model across banks",
        "retention_days": 30,
        "parties": {
            "agg": {"datasets": {"val": "val"}},
            **{b: {"datasets": {"train": "train"}} for b in BANKS},
        },
        "results": ["agg", *BANKS],
        "steps": {
            "gbdt": {
                "component": "hfl_gbdt",
                "roles": roles,
                "params": {"n_trees": 3, "max_depth": 2, "round_deadline": 20},
                "inputs": inputs,
            },
            "lr": {
                "component": "hfl",
                "roles": roles,
                "params": {"rounds": 3, "lr": 0.05, "secure_aggregation": True},
                "inputs": inputs,
            },
            "score": {
                "component": "hfl_score",
                "roles": {"bank_a": "client", "bank_b": "client"},
                "inputs": {"model": "gbdt.model", "table": "datasets.train"},
            },
            "score_lr": {
                "component": "hfl_score",
                "roles": {"bank_c": "client"},
                "inputs": {"model": "lr.model", "table": "datasets.train"},
            },
            "evaluate": {
                "component": "evaluate",
                "roles": {"bank_a": "guest"},
                "inputs": {"scores": "score.scores", "table": "datasets.train"},
            },
        },
    }


def test_hfl_steps_in_a_pipeline(tmp_path: Path) -> None:
    run = run_local(
        parse_spec_data(spec("hfl-pipe")),
        datasets(),
        tmp_path,
        settings=Settings(mode="development"),
    )
    gb = run.output("agg", "gbdt", "model")
    assert gb["features"] == [f"f{i}" for i in range(8)] and len(gb["trees"]) == 3
    for b in BANKS:
        assert run.output(b, "gbdt", "model")["trees"] == gb["trees"]
        assert (
            run.output(b, "lr", "model")["weights"] == run.output("agg", "lr", "model")["weights"]
        )
    hist = run.output("agg", "gbdt", "history")
    assert hist["clients"] == list(BANKS) and hist["history"][-1]["val_auc"] > 0.9
    lr_hist = run.output("agg", "lr", "history")
    assert lr_hist["rounds"] == 3 and "val_auc" in lr_hist["history"][-1]
    json.dumps(lr_hist)
    # Each bank scores its own rows locally with the model; bank_a evaluates its scores.
    scores = run.output("bank_a", "score", "scores")
    table = datasets()["bank_a"]["train"]
    assert list(scores["id"]) == list(table["id"]) and scores["score"].between(0, 1).all()
    assert run.output("bank_a", "evaluate", "metrics")["auc"] > 0.9
    assert len(run.output("bank_c", "score_lr", "scores")) == len(datasets()["bank_c"]["train"])


def test_clients_with_different_columns_are_refused(tmp_path: Path) -> None:
    data = datasets()
    data["bank_b"]["train"] = data["bank_b"]["train"].rename(columns={"f3": "f3_other"})
    s = spec("hfl-cols")
    for step in ("lr", "score", "score_lr", "evaluate"):
        del s["steps"][step]
    with pytest.raises(PrivfinError, match="different feature columns"):
        run_local(parse_spec_data(s), data, tmp_path, settings=Settings(mode="development"))
