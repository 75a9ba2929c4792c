"""Red team, issue [09], against real node processes over mutual TLS: a pinned peer of a
finished pipeline uses its own certificate and raw requests to make the other node rerun a
step on its data, and to break that node's approvals inbox with a proposal."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.federation.tls import client_context
from privfin.jobs.negotiation import sign_decision
from privfin.jobs.spec import parse_spec_data
from privfin.node.cluster import Cluster, cluster_up

pytestmark = pytest.mark.cluster


def _raw(cluster: Cluster, party: str, target: str) -> httpx.Client:
    ident = cluster.identity(party)
    return httpx.Client(
        base_url=cluster.parties[target]["url"],
        verify=client_context(ident, cluster.identity(target).cert.read_bytes()),
        timeout=30,
    )


def _psi(after: str | None = None) -> dict[str, Any]:
    return {
        "component": "psi",
        "roles": {"bank": "receiver", "evil": "sender"},
        "inputs": {"table": "datasets.t"},
        **({"after": [after]} if after else {}),
    }


def _spec(job: str, steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "job": job,
        "purpose": "customer overlap",
        "parties": {
            "bank": {"datasets": {"t": "customers"}},
            "evil": {"datasets": {"t": "customers"}},
        },
        "results": ["bank", "evil"],
        "steps": steps,
    }


def _until(what: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_peer_cannot_rerun_a_finished_psi_or_break_the_inbox(tmp_path: Path) -> None:
    """Before the fix the restart was accepted (200) and the bank's node reopened the
    finished job and ran the PSI again with the peer (which may bring another id set each
    time); the deep proposal made the node answer 500 and left its inbox raising."""
    paths = {}
    for party, ids in (("bank", range(0, 30)), ("evil", range(10, 40))):
        paths[party] = tmp_path / f"{party}.csv"
        pd.DataFrame({"id": [f"C{i:03d}" for i in ids]}).to_csv(paths[party], index=False)
    cluster = cluster_up(
        ["bank", "evil"],
        tmp_path / "c",
        mode="development",
        datasets={p: {"customers": path} for p, path in paths.items()},
    )
    try:
        spec = _spec("overlap", {"psi": _psi()})
        with cluster.client("bank") as c:
            c.propose(spec)
        with cluster.client("evil") as c:
            c.wait_proposal("overlap")
            c.decide("overlap", "approve")
        for party in ("bank", "evil"):
            with cluster.client(party) as c:
                assert c.wait("overlap", timeout=120)["status"] == "done"
        with _raw(cluster, "evil", "bank") as raw:
            r = raw.post("/v1/restart/overlap", json={"step": "psi", "attempt": 2})
            assert r.status_code == 409
            r = raw.post("/v1/restart/overlap", json={"step": "psi", "attempt": 1000})
            assert r.status_code == 400
            # a 1500-step chain listed last-first (order() recursed past Python's limit)
            chain = {f"s{i}": _psi(f"s{i - 1}" if i else None) for i in reversed(range(1500))}
            text = parse_spec_data({**_spec("deep", chain), "initiator": "evil"}).model_dump_json()
            key = serialization.load_pem_private_key(
                cluster.identity("evil").key.read_bytes(), None
            )
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            d = sign_decision(
                key,
                job="deep",
                party="evil",
                decision="approve",
                spec_sha256=hashlib.sha256(text.encode()).hexdigest(),
            )
            r = raw.post("/v1/proposals/deep", json={"spec": text, "decision": d.as_dict()})
            assert r.status_code == 422
        with cluster.client("bank") as c:
            status = c.status("overlap")
            assert [v["job"] for v in c.proposals()] == ["overlap"]
        assert status["status"] == "done"
        assert status["steps"]["psi"] == {"status": "done", "attempt": 1}
    finally:
        cluster.down()
