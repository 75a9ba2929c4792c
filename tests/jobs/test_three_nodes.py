"""Three nodes over mutual TLS, from submission through approvals to result files: a bank
(labels), a telco and an e-commerce platform (features). PSI of all three -> SecureBoost ->
scoring of held-back applicants, and PSI -> hetero LR -> scoring; a proposal one party rejects
never runs anywhere; a revoked job stops at every party and keeps its state; the operator API
answers only with the operator's token and documents itself (OpenAPI)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from privfin.node.cluster import cluster_up

from ._pipeline_data import SMALL_KEYS, split, until

pytestmark = pytest.mark.cluster
PARTIES = ("bank", "telco", "ecom")


def _data(tmp_path: Path) -> dict[str, dict[str, Path]]:
    two = split()
    out: dict[str, dict[str, Path]] = {}
    for kind in ("train", "new"):
        telco = two["telco"][f"telco_{kind}"]
        tables = {
            "bank": two["bank"][f"bank_{kind}"],
            "telco": telco[["id", "h0", "h1"]],
            "ecom": telco[["id", "h2", "h3"]].sample(frac=1.0, random_state=1),
        }
        for party, df in tables.items():
            path = tmp_path / f"{party}_{kind}.csv"
            df.to_csv(path, index=False)
            out.setdefault(party, {})[f"{party}_{kind}"] = path
    return out


def _spec(job: str) -> dict[str, Any]:
    hosts = {"bank": "guest", "telco": "host", "ecom": "host"}
    psi = {"bank": "leader", "telco": "member", "ecom": "member"}
    return {
        "job": job,
        "purpose": "joint credit scoring of new applicants",
        "parties": {p: {"datasets": {"train": f"{p}_train", "new": f"{p}_new"}} for p in PARTIES},
        "results": ["bank"],
        "steps": {
            "psi": {
                "component": "psi",
                "roles": psi,
                "params": {"reveal_to": "all"},
                "inputs": {"table": "datasets.train"},
            },
            "train": {
                "component": "secureboost",
                "roles": hosts,
                "params": {"n_trees": 2, "max_depth": 2, "n_bins": 8, **SMALL_KEYS},
                "inputs": {"table": "psi.aligned"},
            },
            "psi_new": {
                "component": "psi",
                "roles": psi,
                "params": {"reveal_to": "all"},
                "inputs": {"table": "datasets.new"},
            },
            "score": {
                "component": "secureboost_score",
                "roles": hosts,
                "inputs": {"model": "train.model", "table": "psi_new.aligned"},
            },
            "lr": {
                "component": "hetero_lr",
                "roles": hosts,
                "params": {
                    "mode": "guest",
                    "max_iter": 2,
                    "batch_size": 64,
                    "feature_counts": {"bank": 3, "telco": 2, "ecom": 2},
                    **SMALL_KEYS,
                },
                "inputs": {"table": "psi.aligned"},
            },
            "lr_score": {
                "component": "lr_score",
                "roles": hosts,
                "inputs": {"model": "lr.model", "table": "psi_new.aligned"},
            },
        },
    }


def test_three_node_pipeline_with_approvals(tmp_path: Path) -> None:
    cluster = cluster_up(
        list(PARTIES), tmp_path / "c", mode="development", datasets=_data(tmp_path)
    )
    try:
        # proposed at the bank's node only; nothing runs before every approval
        with cluster.client("bank") as bank:
            view = bank.propose(_spec("three-1"))
        assert view["waiting_for"] == ["telco", "ecom"]
        with cluster.client("telco") as telco:
            inbox = telco.wait_proposal("three-1")
            assert inbox["uses"]["datasets"]["train"]["fields"] == {
                "id": "C2",
                "h0": "C2",
                "h1": "C2",
            }
            assert "vertical federated learning" in inbox["uses"]["technologies"]
            telco.decide("three-1", "approve")
        time.sleep(1.0)
        with cluster.client("telco") as telco, pytest.raises(httpx.HTTPStatusError):
            telco.status("three-1")  # ecom has not approved: not started
        with cluster.client("ecom") as ecom:
            ecom.wait_proposal("three-1")
            ecom.decide("three-1", "approve")
        results = {}
        for p in PARTIES:
            with cluster.client(p) as c:
                results[p] = c.wait("three-1", timeout=300)
        for p in PARTIES:
            assert all(s["status"] == "done" for s in results[p]["steps"].values()), p
        # every party keeps the three signed approvals as evidence
        for p in PARTIES:
            with cluster.client(p) as c:
                decisions = c.proposal("three-1")["decisions"]
            assert {q: d["decision"] for q, d in decisions.items()} == dict.fromkeys(
                PARTIES, "approve"
            )
        with cluster.client("bank") as bank:
            sb = pd.read_csv(io.BytesIO(bank.download("three-1", "score", "scores")))
            lr = pd.read_csv(io.BytesIO(bank.download("three-1", "lr_score", "scores")))
        new_ids = set(split()["bank"]["bank_new"]["id"])
        assert set(sb["id"]) <= new_ids and len(sb) > 10
        assert list(sb["id"]) == list(lr["id"])
        assert np.all((lr["score"] > 0) & (lr["score"] < 1))
        with cluster.client("ecom") as ecom:
            names = {(a["step"], a["name"]) for a in ecom.artifacts("three-1")}
        assert ("score", "scores") not in names and ("train", "model") in names

        # a proposal the e-commerce operator rejects never runs anywhere
        with cluster.client("bank") as bank:
            bank.propose(_spec("three-rejected"))
        with cluster.client("telco") as telco:
            telco.wait_proposal("three-rejected")
            telco.decide("three-rejected", "approve")
        with cluster.client("ecom") as ecom:
            ecom.wait_proposal("three-rejected")
            ecom.decide("three-rejected", "reject", "not this quarter")
        for p in PARTIES:
            with cluster.client(p) as c:
                view = until(
                    lambda c=c: (v := c.proposal("three-rejected"))["status"] == "rejected" and v
                )
                assert view["decisions"]["ecom"]["reason"] == "not this quarter"
                with pytest.raises(httpx.HTTPStatusError):
                    c.status("three-rejected")

        # revocation stops a running job at every party; its state is kept
        slow = _spec("three-revoked")
        slow["steps"]["train"]["params"]["n_trees"] = 40
        with cluster.client("bank") as bank:
            bank.propose(slow)
        for p in ("telco", "ecom"):
            with cluster.client(p) as c:
                c.wait_proposal("three-revoked")
                c.decide("three-revoked", "approve")
        with cluster.client("telco") as telco:

            def training() -> bool:
                try:
                    status = telco.status("three-revoked")
                except httpx.HTTPStatusError as exc:  # telco has not heard ecom's approval yet
                    if exc.response.status_code == 404:
                        return False
                    raise
                return (status.get("progress") or {}).get("step") == "train"

            until(training)
            telco.decide("three-revoked", "revoke", "consent withdrawn")
        for p in PARTIES:
            with cluster.client(p) as c:
                status = until(
                    lambda c=c: (s := c.status("three-revoked"))["status"] == "failed" and s
                )
                assert status["steps"]["psi"]["status"] == "done"  # state kept
                assert c.proposal("three-revoked")["status"] == "revoked"
    finally:
        cluster.down()


def test_operator_api_contract(tmp_path: Path) -> None:
    """Every route of the operator API needs the token; the OpenAPI document lists the job,
    approval, dataset, artifact, model, audit and health routes, and each GET route without
    parameters answers as documented."""
    cluster = cluster_up(["bank", "telco"], tmp_path / "c", mode="development")
    try:
        with cluster.client("bank") as c:
            doc = c._http.get("/openapi.json").json()
            paths = doc["paths"]
            for route in (
                "/v1/jobs",
                "/v1/proposals",
                "/v1/datasets",
                "/v1/models",
                "/v1/audit/verify",
                "/health",
                "/v1/jobs/{job}/artifacts",
            ):
                assert route in paths, route
            anonymous = httpx.Client(base_url=c.url)
            for path, methods in paths.items():
                url = (
                    path.replace("{job}", "j1")
                    .replace("{name}", "n1")
                    .replace("{step}", "s1")
                    .replace("{decision}", "approve")
                )
                for method in methods:
                    r = anonymous.request(method.upper(), url)
                    assert r.status_code == 401, (method, path, r.status_code)
                    r = anonymous.request(
                        method.upper(), url, headers={"Authorization": "Bearer x" * 8}
                    )
                    assert r.status_code == 401, (method, path)
                    if method == "get" and "{" not in path:
                        ok = c._http.get(path)
                        assert ok.status_code == 200, path
                        assert ok.headers["content-type"].startswith("application/json")
            anonymous.close()
        # the federation port does not serve the operator API
        with httpx.Client(verify=False) as raw, pytest.raises(httpx.HTTPError):
            raw.get(cluster.parties["bank"]["url"] + "/v1/jobs")
    finally:
        cluster.down()
