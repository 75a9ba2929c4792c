"""The scheduler's and negotiation's tables on SQLite and PostgreSQL (created by the
migrations): step states and attempts, artifacts of the latest attempt only, restart and
negotiation outboxes, proposals and signed decisions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.errors import ConfigError
from privfin.jobs.negotiation import NegotiationStore, sign_decision
from privfin.jobs.store import ArtifactRecord, PipelineStore
from privfin.store import open_engine, upgrade


def _art(step: str, attempt: int, name: str, digest: str) -> ArtifactRecord:
    return ArtifactRecord(
        job="j1",
        step=step,
        attempt=attempt,
        name=name,
        kind="table",
        path=f"outputs/{step}/a{attempt}/{name}.parquet",
        sha256=digest,
        size=10,
        format_version=1,
        lineage={"inputs": {"table": "dataset:x:" + "0" * 64}},
        created_at=1,
    )


def test_pipeline_store(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        upgrade(engine)
        st = PipelineStore(engine)
        assert st.step("j1", "psi") is None
        rec = st.set_step("j1", "psi")
        assert (rec.attempt, rec.status) == (1, "pending")
        st.set_step("j1", "psi", status="running", started_at=5)
        st.add_artifact(_art("psi", 1, "aligned", "a" * 64))
        st.set_step("j1", "psi", status="done", ended_at=6)
        assert [a.sha256 for a in st.artifacts("j1")] == ["a" * 64]
        # a restarted step: artifacts of the superseded attempt are not served
        st.set_step("j1", "psi", attempt=2, status="running")
        assert st.artifacts("j1") == []
        st.add_artifact(_art("psi", 2, "aligned", "b" * 64))
        st.add_artifact(_art("psi", 2, "aligned", "c" * 64))  # rewritten: one row
        assert [a.sha256 for a in st.artifacts("j1", "psi")] == ["c" * 64]
        assert st.artifacts("j1")[0].lineage["inputs"]["table"].startswith("dataset:x:")
        st.queue_restart("j1", "train", 2, ["telco", "ecom"], deadline=99)
        st.queue_restart("j1", "train", 3, ["telco"], deadline=99)
        rows = sorted((r["receiver"], r["attempt"]) for r in st.pending_restarts())
        assert rows == [("ecom", 2), ("telco", 3)]
        st.restart_done("j1", "telco", "train", 3)
        assert [r["receiver"] for r in st.pending_restarts()] == ["ecom"]
    finally:
        engine.dispose()


def test_negotiation_store(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        upgrade(engine)
        ns = NegotiationStore(engine)
        sha = "d" * 64
        assert ns.add_proposal("j1", '{"job":"j1"}', sha, "bank") == "new"
        assert ns.add_proposal("j1", '{"job":"j1"}', sha, "bank") == "same"
        with pytest.raises(ConfigError, match="another spec"):
            ns.add_proposal("j1", "{}", "e" * 64, "bank")
        key = ec.generate_private_key(ec.SECP256R1())
        d = sign_decision(key, job="j1", party="telco", decision="approve", spec_sha256=sha)
        assert ns.add_decision(d) and not ns.add_decision(d)
        assert ns.decisions("j1") == [d]
        ns.set_status("j1", "approved")
        assert ns.proposal("j1")["status"] == "approved"  # type: ignore[index]
        ns.queue("j1", ["telco"], "decision.approve", d.as_dict(), deadline=99)
        (row,) = ns.pending()
        assert row["kind"] == "decision.approve"
        ns.delivered("j1", "telco", "decision.approve")
        assert ns.pending() == []
    finally:
        engine.dispose()
