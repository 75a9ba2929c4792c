"""Red team, issue [09]: a pinned but malicious peer against the negotiation and restart
endpoints of the federation port (in process: the node's real ASGI app and runner, requests
carrying the attacker's pinned certificate; the peers' addresses are unreachable, so nothing
leaves the victim node).

The victim is ``bank``; ``evil`` is a pinned peer with its own identity key (it signs its own
decisions validly); ``telco`` is an honest third party.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import Identity, create_identity
from privfin.jobs.negotiation import Decision, decision_statement
from privfin.jobs.spec import parse_spec_data
from privfin.node.app import PEER_CERT_SCOPE_KEY, create_app
from privfin.node.config import AutoApprove, NodeConfig, PeerConfig
from privfin.node.runner import JobRunner

PEERS = ("telco", "evil")


@dataclass
class Node:
    ids: dict[str, Identity]
    config: NodeConfig
    mailbox: Mailbox
    runner: JobRunner
    app: Any

    def close(self) -> None:
        self.runner.shutdown()
        self.runner.negotiator.close()
        self.mailbox.close()

    def key(self, party: str) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.ids[party].key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def post(self, party: str, path: str, body: Any) -> httpx.Response:
        """POST ``body`` (JSON) as ``party`` (its pinned certificate) to the federation app."""
        der = x509.load_pem_x509_certificate(self.ids[party].cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )

        async def with_cert(scope: Any, receive: Any, send: Any) -> None:
            await self.app({**scope, "extensions": {PEER_CERT_SCOPE_KEY: der}}, receive, send)

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=with_cert)
            async with httpx.AsyncClient(transport=transport, base_url="https://node") as c:
                return await c.post(path, json=body)

        return asyncio.run(go())

    def propose(
        self, spec: dict[str, Any], sender: str = "evil", **decision: Any
    ) -> httpx.Response:
        """``sender`` proposes ``spec`` (as its initiator) with its validly signed approval."""
        text = parse_spec_data({**spec, "initiator": sender}).model_dump_json()
        d = self.decision(sender, spec["job"], text, "approve", **decision)
        return self.post(sender, f"/v1/proposals/{spec['job']}", {"spec": text, "decision": d})

    def decision(self, party: str, job: str, text: str, decision: str, **kw: Any) -> dict[str, Any]:
        """``party``'s decision, signed as is (a malicious peer signs whatever it likes)."""
        sha = hashlib.sha256(text.encode()).hexdigest()
        at, reason = kw.get("at", int(time.time())), kw.get("reason", "")
        statement = decision_statement(job, party, decision, sha, at, reason)
        sig = self.key(party).sign(statement, ec.ECDSA(hashes.SHA256()))
        return Decision(
            job, party, decision, sha, at, reason, base64.b64encode(sig).decode()
        ).as_dict()


def make_node(tmp_path: Path, **extra: Any) -> Node:
    ids = {p: create_identity(p, tmp_path / p) for p in ("bank", *PEERS)}
    data = tmp_path / "bank_train.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "y": [0, 1, 0], "x": [1.0, 2.0, 3.0]}).to_csv(
        data, index=False
    )
    config = NodeConfig(
        party="bank",
        port=1,
        state_dir=tmp_path / "state",
        cert=ids["bank"].cert,
        key=ids["bank"].key,
        peers={p: PeerConfig(url="https://127.0.0.1:1", cert=ids[p].cert) for p in PEERS},
        datasets={"bank_train": data},
        **extra,
    )
    box = Mailbox(tmp_path / "state" / "node.sqlite")
    runner = JobRunner(config, box)
    return Node(ids, config, box, runner, create_app(config, box, runner))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = make_node(tmp_path)
    try:
        yield n
    finally:
        n.close()


def _step(after: list[str] | None = None) -> dict[str, Any]:
    return {
        "component": "psi",
        "roles": {"bank": "receiver", "evil": "sender"},
        "inputs": {"table": "datasets.t"},
        **({"after": after} if after else {}),
    }


def _spec(job: str, steps: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "job": job,
        "purpose": "credit scoring",
        "parties": {
            "bank": {"datasets": {"t": "bank_train"}},
            "evil": {"datasets": {"t": "evil_data"}},
        },
        "results": ["bank"],
        "steps": steps if steps is not None else {"psi": _step()},
        **extra,
    }


def test_a_deep_step_chain_cannot_break_the_inbox(node: Node) -> None:
    """Finding: a proposal whose ``after`` chain is listed last-first made ``order()`` recurse
    past Python's limit (RecursionError after the proposal was stored): HTTP 500, and from
    then on every listing of the approvals inbox raised. Parameters nested ~200 deep passed
    ``json.loads`` but not pydantic's JSON parser, so the stored spec could not be read back
    (same effect), and so did a stored proposal whose steps form a cycle (``view`` raised
    ConfigError from ``order()``). Now a proposal is refused before it is stored unless its
    stored form reads back and its DAG orders, and it has at most 256 steps and 2048 inputs,
    roles and aliases (validation looked at each, and deduplicated its problems by a list
    scan: quadratic, 8,000 problems in a 170 kB proposal took 48 s of CPU)."""
    n = 1500
    chain = {f"s{i}": _step([f"s{i - 1}"] if i else None) for i in reversed(range(n))}
    nested: Any = 1
    for _ in range(220):
        nested = {"a": nested}
    deep_params = {"psi": {**_step(), "params": {"extra": nested}}}
    wide = {f"s{i}": _step() for i in range(300)}
    cycle = {"a": _step(["b"]), "b": _step(["a"])}
    many = {
        f"s{i}": {**_step(), "inputs": {f"in{j}": "datasets.t" for j in range(250)}}
        for i in range(10)
    }
    cases = (
        ("deep", chain),
        ("nested", deep_params),
        ("wide", wide),
        ("cycle", cycle),
        ("many", many),
    )
    for job, steps in cases:
        r = node.propose(_spec(job, steps))
        assert r.status_code == 422, (job, r.status_code)
        assert node.runner.negotiator.store.proposal(job) is None
    assert node.runner.negotiator.inbox() == []
    assert node.propose(_spec("fine")).status_code == 200
    assert [v["job"] for v in node.runner.negotiator.inbox()] == ["fine"]


def _sb_spec(job: str) -> dict[str, Any]:
    return _spec(
        job,
        {
            "psi": _step(),
            "train": {
                "component": "secureboost",
                "roles": {"bank": "guest", "evil": "host"},
                "params": {"n_trees": 1, "max_depth": 2, "n_bins": 4},
                "inputs": {"table": "psi.aligned"},
            },
        },
    )


def test_a_peer_cannot_rerun_steps_at_will(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: ``/v1/restart`` reran a step (and everything after it) on this party's data
    for any attempt up to 1000, reopening a finished job each time, for any component, and
    even after the job was revoked. A malicious party could rerun a PSI with other ids each
    time (a membership oracle beyond the one approved run), or SecureBoost up to 999 times,
    and run a job its partner had revoked. Now a restart is refused for a step that resumes
    in place (PSI: an honest party never restarts one), above attempt MAX_STEP_ATTEMPTS, and
    for a job whose proposal is no longer approved here; messages on channels above that
    attempt are refused too."""
    from privfin.node.runner import MAX_STEP_ATTEMPTS

    started: list[str] = []
    monkeypatch.setattr(node.runner, "_start", lambda spec, resumed=False: started.append(spec.job))
    spec = _sb_spec("sb")
    assert node.propose(spec).status_code == 200
    node.runner.negotiator.decide("sb", "approve")
    assert started == ["sb"]
    runner = node.runner

    def finish() -> None:  # the job completed here
        for step in ("psi", "train"):
            runner.pipelines.set_step("sb", step, status="done")
        runner._set("sb", status="done")

    runner.pipelines.set_step("sb", "psi", attempt=1, status="done")
    runner.pipelines.set_step("sb", "train", attempt=1, status="done")
    finish()

    def restart(step: str, attempt: int) -> int:
        return node.post("evil", "/v1/restart/sb", {"step": step, "attempt": attempt}).status_code

    assert restart("psi", 2) == 409  # PSI resumes in place: a restart of it is never honest
    assert restart("train", 1000) == 400
    assert restart("train", MAX_STEP_ATTEMPTS + 1) == 400
    assert runner.admits("sb", f"train.a{MAX_STEP_ATTEMPTS + 1}", "evil") is not None
    assert runner.admits("sb", f"train.a{MAX_STEP_ATTEMPTS}", "evil") is None
    assert started == ["sb"]
    assert restart("train", 2) == 200  # the honest case: a party crashed inside SecureBoost
    assert started == ["sb", "sb"]
    finish()
    text = runner.negotiator.store.proposal("sb")["spec"]  # type: ignore[index]
    revoke = node.decision("evil", "sb", text, "revoke")
    assert node.post("evil", "/v1/decisions/sb", revoke).status_code == 200
    assert runner.negotiator.store.proposal("sb")["status"] == "revoked"  # type: ignore[index]
    assert restart("train", 3) == 409  # a revoked job never runs again
    assert started == ["sb", "sb"]
    assert runner.status("sb")["status"] == "done"  # type: ignore[index]


def test_proposals_cannot_flood_the_node(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: a peer could store any number of proposals of up to 16 MiB each (rejected
    ones stay as evidence), read outside the upload gate, and fill the operator's inbox.
    Now a proposal body is at most 1 MiB, and an initiator may have MAX_PENDING_PER_PEER
    proposals waiting and send MAX_PROPOSALS_PER_DAY a day (429: the sender retries)."""
    from privfin.node import negotiate

    monkeypatch.setattr(negotiate, "MAX_PENDING_PER_PEER", 2)
    monkeypatch.setattr(negotiate, "MAX_PROPOSALS_PER_DAY", 4)
    big = _spec("big", purpose="x" * 500)
    big["steps"]["psi"]["params"] = {"pad": "y" * (2 * 1024 * 1024)}
    assert node.propose(big).status_code == 413
    assert [node.propose(_spec(f"p{i}")).status_code for i in range(3)] == [200, 200, 429]
    assert node.propose(_spec("p0")).status_code == 200  # a retry of a stored one is fine
    node.runner.negotiator.decide("p0", "reject")  # one fewer waiting
    assert node.propose(_spec("p2")).status_code == 200
    node.runner.negotiator.decide("p2", "reject")
    # proposals that fail this node's own data checks (held for its operator) count too
    bad = _spec("bad1")
    bad["parties"]["bank"]["datasets"]["t"] = "no_such_dataset"
    assert node.propose(bad).status_code == 200
    held = node.runner.negotiator.store.proposal("bad1")
    assert held is not None and held["status"] == "pending"
    assert held["reason"].startswith("local check failed")
    bad["job"] = "bad2"
    assert node.propose(bad).status_code == 429
    assert node.runner.negotiator.store.proposal("bad2") is None
    # the other peer's quota is its own
    telco = _spec("t1")
    telco["parties"] = {"bank": telco["parties"]["bank"], "telco": {"datasets": {"t": "x"}}}
    telco["steps"]["psi"]["roles"] = {"bank": "receiver", "telco": "sender"}
    assert node.propose(telco, sender="telco").status_code == 200


def test_peer_text_cannot_reach_the_operator_terminal(node: Node) -> None:
    """Finding: the approvals inbox (printed by ``privfin job inbox``) showed a peer's purpose
    and decision reasons as sent: ANSI escapes, bidi overrides and newlines could forge
    lines ("telco: approve") or rewrite the operator's terminal. A decision time of 10**30
    crashed the store (HTTP 500). A spec whose path job differed from its own job (a params
    key ``"job"`` satisfied the endpoint's text check) was stored under its own name. Now
    such proposals and decisions are refused, and a node signs its own reasons cleaned."""
    for job, purpose in (("ansi", "credit \x1b[2J\x1b[1;1Hscoring"), ("bidi", "credit\u202e")):
        assert node.propose(_spec(job, purpose=purpose)).status_code == 422
        assert node.runner.negotiator.store.proposal(job) is None
    params_key = _spec("other")
    params_key["steps"]["psi"]["params"] = {"job": "victim"}
    text = parse_spec_data({**params_key, "initiator": "evil"}).model_dump_json()
    d = node.decision("evil", "other", text, "approve")
    r = node.post("evil", "/v1/proposals/victim", {"spec": text, "decision": d})
    assert r.status_code == 422
    assert node.runner.negotiator.store.proposal("other") is None
    assert node.propose(_spec("fine")).status_code == 200
    text = node.runner.negotiator.store.proposal("fine")["spec"]  # type: ignore[index]
    for bad in (
        {"reason": "ok\n  telco: approve"},
        {"reason": "\x1b]0;owned\x07"},
        {"at": 10**30},
        {"at": -1},
    ):
        raw = node.decision("evil", "fine", text, "revoke", **bad)
        assert node.post("evil", "/v1/decisions/fine", raw).status_code == 422, bad
    view = node.runner.negotiator.decide("fine", "reject", "no\n\x1b[31mthanks")
    assert view["decisions"]["bank"]["reason"] == "no  [31mthanks"
    assert node.runner.negotiator.store.proposal("fine")["status"] == "rejected"  # type: ignore[index]


def test_a_non_party_learns_nothing_from_decisions(node: Node) -> None:
    """Finding: a decision on a job the sender has no part in got 422 while one on an unknown
    job got 404: any pinned peer could probe which job names this node negotiates. Now both
    get 404 (and nothing is stored)."""
    assert node.propose(_spec("secret-merger")).status_code == 200
    text = node.runner.negotiator.store.proposal("secret-merger")["spec"]  # type: ignore[index]
    known = node.decision("telco", "secret-merger", text, "reject")
    unknown = node.decision("telco", "no-such-job", text, "reject")
    r1 = node.post("telco", "/v1/decisions/secret-merger", known)
    r2 = node.post("telco", "/v1/decisions/no-such-job", unknown)
    assert (r1.status_code, r2.status_code) == (404, 404)
    assert {d.party for d in node.runner.negotiator.store.decisions("secret-merger")} == {"evil"}
    assert node.runner.negotiator.store.proposal("secret-merger")["status"] == "pending"  # type: ignore[index]


def test_a_partner_rule_does_not_approve_parties_it_brings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding: an auto-approval rule for partner P approved any proposal P initiated for
    the purpose and datasets, whatever other parties it named: P could bring in a third
    party (here the result party, PSI partner of this node) that this node's operator never
    agreed to. Now every other party of the job must be the partner of a matching rule."""
    rule = AutoApprove(partner="evil", purpose="credit scoring", datasets=["bank_train"])
    n = make_node(tmp_path, auto_approve=[rule])
    started: list[str] = []
    monkeypatch.setattr(n.runner, "_start", lambda spec, resumed=False: started.append(spec.job))
    try:
        three = _spec("three", results=["telco"])
        three["parties"]["telco"] = {"datasets": {"t": "telco_data"}}
        three["steps"]["psi"]["roles"] = {"bank": "receiver", "evil": "sender"}
        three["steps"]["leak"] = {
            "component": "psi",
            "roles": {"bank": "sender", "telco": "receiver"},
            "params": {"reveal_to": "both"},
            "inputs": {"table": "datasets.t"},
        }
        assert n.propose(three).status_code == 200
        decisions = {d.party: d.decision for d in n.runner.negotiator.store.decisions("three")}
        assert decisions == {"evil": "approve"}  # waits for this node's operator
        assert n.propose(_spec("two")).status_code == 200  # the rule's own case still works
        decisions = {d.party: d.decision for d in n.runner.negotiator.store.decisions("two")}
        assert decisions == {"evil": "approve", "bank": "approve"}
        assert started == ["two"]
    finally:
        n.close()


def test_forged_replayed_and_misdirected_decisions_are_refused(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What held (kept as a regression test): a decision is the sender's own, for this job
    and this exact spec, validly signed; a proposal comes from the initiator it names and
    names only pinned parties; nothing starts before every party approved (a decision that
    arrives before its proposal is not kept); a rejection after an approval ends it."""
    started: list[str] = []
    monkeypatch.setattr(node.runner, "_start", lambda spec, resumed=False: started.append(spec.job))
    three = _spec("j3")
    three["parties"]["telco"] = {"datasets": {"t": "telco_data"}}
    three["steps"]["psi2"] = {**_step(), "roles": {"bank": "receiver", "telco": "sender"}}
    # a decision before the proposal: 404, not kept (the sender retries)
    text3 = parse_spec_data({**three, "initiator": "evil"}).model_dump_json()
    early = node.decision("telco", "j3", text3, "approve")
    assert node.post("telco", "/v1/decisions/j3", early).status_code == 404
    # a proposal naming another initiator, or sent with another party's approval
    r = node.post("telco", "/v1/proposals/j3", {"spec": text3, "decision": early})
    assert r.status_code == 422
    assert node.propose(three).status_code == 200
    negotiator = node.runner.negotiator
    negotiator.decide("j3", "approve")
    assert started == []  # telco has not approved
    other = _spec("j4")
    assert node.propose(other).status_code == 200
    text4 = negotiator.store.proposal("j4")["spec"]  # type: ignore[index]
    forged = node.decision("evil", "j3", text3, "approve")
    forged["party"] = "telco"  # evil's signature, telco's name
    replayed = node.decision("telco", "j3", text3, "approve")
    replayed_job = {**replayed, "job": "j4"}  # telco's approval of j3 replayed for j4
    other_version = node.decision("telco", "j3", text4, "approve")  # another spec's digest
    for sender, body in (
        ("evil", forged),
        ("evil", replayed),  # telco's genuine decision relayed by evil
        ("telco", {**forged, "signature": replayed["signature"][:-4] + "AAAA"}),
        ("telco", other_version),
    ):
        r = node.post(sender, f"/v1/decisions/{body['job']}", body)
        assert r.status_code in (404, 422), (sender, body)
    r = node.post("telco", "/v1/decisions/j4", replayed_job)
    assert r.status_code in (404, 422)
    assert started == []
    assert node.post("telco", "/v1/decisions/j3", replayed).status_code == 200
    assert started == ["j3"]
    # a rejection after the approval changes nothing (revocation is the way to stop)
    reject = node.decision("telco", "j3", text3, "reject")
    assert node.post("telco", "/v1/decisions/j3", reject).status_code == 200
    assert negotiator.store.proposal("j3")["status"] == "approved"  # type: ignore[index]
    # a proposal naming a party this node has not pinned is held for the operator with the
    # local reason; nothing is signed or sent back on its own (no schema oracle)
    stranger = _spec("j5")
    stranger["parties"]["mallory"] = {}
    assert node.propose(stranger).status_code == 200
    rec = negotiator.store.proposal("j5")
    assert rec is not None and rec["status"] == "pending"
    assert "not a pinned peer" in rec["reason"]
    assert [d for d in negotiator.store.decisions("j5") if d.party == "bank"] == []


def test_the_inbox_shows_what_decides_disclosure_and_a_partys_strongest_decision(
    node: Node,
) -> None:
    """Findings: (1) the inbox showed a step's component and roles but not its parameters,
    so a PSI with ``reveal_to: both`` (the initiator learns which of its ids are this
    party's customers) looked like any other PSI; neither did it show timeouts. A step
    timeout of 10**9 s (the longest wait for one message) let a peer that stalls hold an
    approved job's thread, data and keys for decades. (2) A party that approved (in its
    proposal) and then rejected with an earlier time showed as "approve" in the inbox while
    the proposal was rejected. Now the inbox lists every step's parameters and timeouts,
    timeouts are bounded (a day per message, 30 days per job), and each party's strongest
    decision is shown."""
    slow = _spec("slow")
    slow["steps"]["psi"]["timeout"] = 1e9
    assert node.propose(slow).status_code == 422
    assert node.propose(_spec("long", timeout=1e12)).status_code == 422
    reveal = _spec("reveal")
    reveal["steps"]["psi"]["params"] = {"reveal_to": "both"}
    assert node.propose(reveal).status_code == 200
    (step,) = node.runner.negotiator.view("reveal")["uses"]["steps"]
    assert step["params"] == {"reveal_to": "both"}
    text = node.runner.negotiator.store.proposal("reveal")["spec"]  # type: ignore[index]
    reject = node.decision("evil", "reveal", text, "reject", at=1)
    assert node.post("evil", "/v1/decisions/reveal", reject).status_code == 200
    view = node.runner.negotiator.view("reveal")
    assert view["status"] == "rejected"
    assert view["decisions"]["evil"]["decision"] == "reject"
