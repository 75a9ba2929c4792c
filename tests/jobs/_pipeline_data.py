"""Small vertical credit data for pipeline tests: a bank (labels, 3 features) and a telco
(4 features) whose customer ids overlap partly (PSI has work to do), plus held-back
applicants to score."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def tables(seed: int = 3, n: int = 240, overlap: float = 0.8) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 4))
    z = xg @ [1.2, -0.6, 0.4] + xh @ [0.9, 0.0, -0.8, 0.3]
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    ids = np.array([f"C{i:04d}" for i in range(n)])
    bank = pd.DataFrame(xg, columns=["g0", "g1", "g2"]).assign(id=ids, y=y)
    keep = rng.random(n) < overlap
    telco = pd.DataFrame(xh, columns=["h0", "h1", "h2", "h3"]).assign(id=ids)[keep]
    # the telco's rows come in another order, with ids of its own non-customers
    extra = pd.DataFrame(rng.normal(size=(30, 4)), columns=["h0", "h1", "h2", "h3"]).assign(
        id=[f"T{i:04d}" for i in range(30)]
    )
    telco = pd.concat([telco, extra]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    bank = bank[["id", "y", "g0", "g1", "g2"]]
    telco = telco[["id", "h0", "h1", "h2", "h3"]]
    return {"bank": bank, "telco": telco}


def split(seed: int = 3) -> dict[str, dict[str, pd.DataFrame]]:
    """Each party's training table and its table of new applicants (last 40 bank rows)."""
    t = tables(seed)
    bank, telco = t["bank"], t["telco"]
    new_ids = set(bank["id"].iloc[-40:])
    return {
        "bank": {
            "bank_train": bank[~bank["id"].isin(new_ids)].reset_index(drop=True),
            "bank_new": bank[bank["id"].isin(new_ids)].drop(columns=["y"]).reset_index(drop=True),
        },
        "telco": {
            "telco_train": telco[~telco["id"].isin(new_ids)].reset_index(drop=True),
            "telco_new": telco[telco["id"].isin(new_ids)].reset_index(drop=True),
        },
    }


SMALL_KEYS = {"key_bits": 1024, "insecure_allow_small_keys": True}


def pipeline_spec(job: str = "credit-1") -> dict:
    return {
        "job": job,
        "purpose": "joint credit scoring of new applicants",
        "retention_days": 30,
        "parties": {
            "bank": {"datasets": {"train": "bank_train", "new": "bank_new"}},
            "telco": {"datasets": {"train": "telco_train", "new": "telco_new"}},
        },
        "results": ["bank"],
        "steps": {
            "psi": {
                "component": "psi",
                "roles": {"bank": "receiver", "telco": "sender"},
                "params": {"reveal_to": "both"},
                "inputs": {"table": "datasets.train"},
            },
            "train": {
                "component": "secureboost",
                "roles": {"bank": "guest", "telco": "host"},
                "params": {"n_trees": 2, "max_depth": 2, "n_bins": 8, **SMALL_KEYS},
                "inputs": {"table": "psi.aligned"},
            },
            "psi_new": {
                "component": "psi",
                "roles": {"bank": "receiver", "telco": "sender"},
                "params": {"reveal_to": "both"},
                "inputs": {"table": "datasets.new"},
            },
            "score": {
                "component": "secureboost_score",
                "roles": {"bank": "guest", "telco": "host"},
                "inputs": {"model": "train.model", "table": "psi_new.aligned"},
            },
            "lr": {
                "component": "hetero_lr",
                "roles": {"bank": "guest", "telco": "host"},
                "params": {
                    "mode": "guest",
                    "max_iter": 3,
                    "batch_size": 64,
                    "feature_counts": {"bank": 3, "telco": 4},
                    **SMALL_KEYS,
                },
                "inputs": {"table": "psi.aligned"},
            },
            "lr_score": {
                "component": "lr_score",
                "roles": {"bank": "guest", "telco": "host"},
                "inputs": {"model": "lr.model", "table": "psi.aligned"},
            },
            "evaluate": {
                "component": "evaluate",
                "roles": {"bank": "guest"},
                "inputs": {"scores": "lr_score.scores", "table": "psi.aligned"},
            },
        },
    }


def negotiate(cluster: Any, spec: dict[str, Any]) -> None:
    """Propose ``spec`` from its first party and approve it at every other party."""
    parties = list(spec["parties"])
    with cluster.client(parties[0]) as client:
        client.propose(spec)
    for party in parties[1:]:
        with cluster.client(party) as client:
            client.wait_proposal(spec["job"])
            client.decide(spec["job"], "approve")


def until(what: Any, timeout: float = 120.0, every: float = 0.05) -> Any:
    """Poll ``what`` until it returns something truthy (returned) or ``timeout`` passes."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def write_datasets(root: Any) -> dict[str, dict[str, Any]]:
    """Write each party's tables of :func:`split` as CSV under ``root/data``; returns
    ``{party: {dataset name: path}}`` for ``cluster_up(datasets=...)``."""
    from pathlib import Path

    out: dict[str, dict[str, Any]] = {}
    for party, tables in split().items():
        for name, df in tables.items():
            path = Path(root) / "data" / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, index=False)
            out.setdefault(party, {})[name] = path
    return out


def job_status(cluster: Any, party: str, job: str) -> dict[str, Any]:
    """The job's status at ``party`` ({} until its node has started the job)."""
    import httpx

    with cluster.client(party) as c:
        try:
            status: dict[str, Any] = c.status(job)
        except httpx.HTTPStatusError:
            return {}
        return status
