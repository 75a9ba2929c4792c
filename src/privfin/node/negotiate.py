"""A node's side of negotiation (see :mod:`privfin.jobs.negotiation`): proposals, the
approvals inbox, signed decisions, auto-approval and starting a job once all parties approve.

The initiator's operator submits a pipeline to its own node (``propose``); the node checks it
against its own data, records it with its own signed approval and sends both to every other
party. A receiving node validates the whole proposal against its data at once: a failure
rejects it automatically (signed; the peers get a generic reason, the details stay in the
local log and audit). Otherwise its auto-approval policy or its operator decides. Every
decision is signed and sent to every other party; each node starts its part when it holds a
valid approval of every party. A rejection ends the proposal everywhere; a revocation stops
a running job (its state is kept).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.audit import Action
from privfin.errors import ConfigError
from privfin.federation.http import HttpTransport
from privfin.jobs.negotiation import (
    Decision,
    NegotiationStore,
    admissible,
    sign_decision,
    usage_summary,
    verify_decision,
)
from privfin.jobs.spec import PipelineSpec, parse_spec_data

if TYPE_CHECKING:
    from privfin.node.runner import JobRunner

__all__ = ["Negotiator", "NotAParty", "ProposalQuota"]

_log = logging.getLogger("privfin.node.negotiation")
#: Proposals one initiator may have waiting in this node's inbox, and may send in a day (a
#: bound on the store and on the operator's inbox; the sender retries a refusal later).
MAX_PENDING_PER_PEER = 32
MAX_PROPOSALS_PER_DAY = 256


class ProposalQuota(ConfigError):
    """The initiator has too many proposals here (answered 429: retry later)."""


class NotAParty(ConfigError):
    """A decision on a job the sender has no part in (answered like an unknown job)."""


class Negotiator:
    """Negotiation state and actions of one node."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self.config = runner.config
        self.me = runner.config.party
        self.store = NegotiationStore(runner.mailbox.engine)
        self._lock = threading.RLock()
        self._key: ec.EllipticCurvePrivateKey | None = None

    # -- keys
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            key = serialization.load_pem_private_key(self.config.key.read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ConfigError("the node's identity key is not an ECDSA key")
            self._key = key
        return self._key

    def _cert(self, party: str) -> bytes:
        if party == self.me:
            return self.config.cert.read_bytes()
        certs = self.config.peer_certs()
        if party not in certs:
            raise ConfigError(f"party {party!r} is not a pinned peer")
        return certs[party]

    # -- helpers
    @staticmethod
    def _digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def _spec(self, job: str) -> tuple[PipelineSpec, dict[str, Any]]:
        rec = self.store.proposal(job)
        if rec is None:
            raise ConfigError(f"no proposal {job!r} on this node")
        return PipelineSpec.model_validate_json(rec["spec"]), rec

    def spec(self, job: str) -> PipelineSpec | None:
        """The proposed pipeline ``job`` (None: no such proposal, or unreadable)."""
        try:
            return self._spec(job)[0]
        except (ConfigError, ValueError):
            return None

    def _broadcast(self, spec: PipelineSpec, kind: str, body: Any) -> None:
        others = [p for p in spec.parties if p != self.me]
        deadline = int(time.time() + self.config.retention.abort_retry_for)
        self.store.queue(spec.job, others, kind, body, deadline)
        self.runner.start_housekeeping()
        self.runner._wake.set()

    def _sign(self, spec_job: str, sha: str, decision: str, reason: str) -> Decision:
        d = sign_decision(
            self.private_key(),
            job=spec_job,
            party=self.me,
            decision=decision,
            spec_sha256=sha,
            reason=reason,
        )
        self.store.add_decision(d)
        return d

    # -- the initiator
    def propose(self, data: Any) -> dict[str, Any]:
        """Record a pipeline submitted by this node's operator and send it to every party
        with this party's signed approval."""
        spec = parse_spec_data(data)
        if spec.initiator not in (None, self.me):
            raise ConfigError(f"the spec names {spec.initiator!r} as initiator, not {self.me!r}")
        spec = spec.model_copy(update={"initiator": self.me})
        text = spec.model_dump_json()
        sha = self._digest(text)
        admissible(spec, text)  # what every peer requires of a proposal
        self.runner.check(spec)  # the whole pipeline and this node's own data
        with self._lock:
            if self.store.add_proposal(spec.job, text, sha, self.me) == "same":
                return self.view(spec.job)
            d = self._sign(spec.job, sha, "approve", "initiator")
        self.runner.record(
            Action.proposal_sent,
            actor="operator",
            job=spec.job,
            evidence={"spec_sha256": sha, "parties": list(spec.parties)},
        )
        self.runner.record(
            Action.approval,
            actor="operator",
            job=spec.job,
            party=self.me,
            evidence={
                "spec_sha256": sha,
                "signature": d.signature,
                "legal_basis": self._legal_bases(spec),
            },
        )
        # the exact bytes every party hashes and signs (their canonical JSON form)
        self._broadcast(spec, "proposal", {"spec": text, "decision": d.as_dict()})
        self._maybe_start(spec.job)
        return self.view(spec.job)

    # -- a receiving party
    def receive_proposal(self, sender: str, body: Any, job: str | None = None) -> None:
        """A proposal from its initiator (``sender``, authenticated by mTLS) for ``job`` (the
        name in the request's path, when given)."""
        if not isinstance(body, dict) or not isinstance(body.get("spec"), str):
            raise ConfigError("a proposal needs a spec and the initiator's decision")
        try:
            raw = json.loads(body["spec"])
        except (ValueError, RecursionError):
            raise ConfigError("the proposal's spec is not JSON") from None
        spec = parse_spec_data(raw)
        if job is not None and spec.job != job:
            raise ConfigError("the proposal's spec names another job")
        if spec.model_dump_json() != body["spec"]:
            raise ConfigError("the proposal's spec is not in canonical form")
        if spec.initiator != sender:
            raise ConfigError("a proposal must come from the initiator it names")
        if self.me not in spec.parties or sender not in spec.parties:
            raise ConfigError("this node or the sender has no part in the proposal")
        text = spec.model_dump_json()
        sha = self._digest(text)
        d = Decision.from_dict(body.get("decision"))
        self._check_decision(d, sender, spec.job, sha)
        if d.decision != "approve":
            raise ConfigError("a proposal carries its initiator's approval")
        admissible(spec, text)
        with self._lock:
            if self.store.proposal(spec.job) is None:
                self._quota(sender)
            new = self.store.add_proposal(spec.job, text, sha, sender) == "new"
            self.store.add_decision(d)
        if not new:
            return
        self.runner.record(
            Action.proposal_received,
            actor="node",
            job=spec.job,
            party=sender,
            evidence={"spec_sha256": sha, "purpose": spec.purpose},
        )
        self.runner.record(
            Action.approval,
            actor="node",
            job=spec.job,
            party=sender,
            evidence={"spec_sha256": sha, "signature": d.signature},
        )
        try:  # the whole proposal against this node's own data, before anyone starts
            self.runner.check(spec)
        except ConfigError as exc:
            _log.warning("proposal %s from %s fails here: %s", spec.job, sender, exc)
            self.runner.record(
                Action.validation_failed,
                actor="node",
                job=spec.job,
                evidence={"reason": str(exc)[:500]},
            )
            if self._trusted_initiator(spec):
                # a partner of a standing rule (scheduled jobs): do not leave it waiting
                self.decide(spec.job, "reject", f"{self.me}: input rejected", actor="node")
            else:
                # Held for the operator, who sees the local reason and chooses what to tell
                # the others: an automatic rejection would tell any pinned peer which fields
                # exist here (a schema oracle).
                self.store.set_status(spec.job, "pending", f"local check failed: {exc}"[:500])
            return
        rule = self._auto_rule(spec)
        if rule is not None:
            self.decide(spec.job, "approve", f"auto-approved ({rule})", actor="policy")

    def _quota(self, sender: str) -> None:
        pending = self.store.count(sender, status="pending")
        recent = self.store.count(sender, since=int(time.time()) - 86400)
        if pending >= MAX_PENDING_PER_PEER or recent >= MAX_PROPOSALS_PER_DAY:
            raise ProposalQuota(f"{sender} has too many proposals here ({pending} waiting)")

    def _auto_rule(self, spec: PipelineSpec) -> str | None:
        """The rule that approves ``spec`` here: its initiator and every other party of the
        job must each be the partner of a rule for this purpose covering the datasets used
        (a partner's rule does not extend to parties it brings along)."""
        mine = spec.parties[self.me]
        used = {u.name for u in mine.datasets.values()}
        rules = {
            rule.partner: f"auto_approve[{i}]"
            for i, rule in reversed(list(enumerate(self.config.auto_approve)))
            if rule.purpose == spec.purpose and used <= set(rule.datasets)
        }
        others = set(spec.parties) - {self.me}
        if spec.initiator not in rules or not others <= set(rules):
            return None
        return rules[spec.initiator]

    def _trusted_initiator(self, spec: PipelineSpec) -> bool:
        return any(rule.partner == spec.initiator for rule in self.config.auto_approve)

    def _check_decision(self, d: Decision, sender: str, job: str, sha: str) -> None:
        if d.party != sender or d.job != job:
            raise ConfigError("a decision must be the sender's own, for this job")
        if d.spec_sha256 != sha:
            raise ConfigError("the decision is for another version of the spec")
        if not verify_decision(d, self._cert(sender)):
            raise ConfigError("the decision's signature does not verify")

    def receive_decision(self, sender: str, body: Any) -> str:
        """A decision of ``sender``; ``"unknown"`` if the proposal has not arrived yet (the
        sender retries)."""
        d = Decision.from_dict(body)
        rec = self.store.proposal(d.job)
        if rec is None:
            return "unknown"
        spec = PipelineSpec.model_validate_json(rec["spec"])
        if sender not in spec.parties:
            raise NotAParty("the sender has no part in this job")
        self._check_decision(d, sender, d.job, rec["spec_sha256"])
        with self._lock:
            if not self.store.add_decision(d):
                return "known"
        action = {
            "approve": Action.approval,
            "reject": Action.rejection,
            "revoke": Action.revocation,
        }[d.decision]
        self.runner.record(
            action,
            actor="node",
            job=d.job,
            party=sender,
            evidence={
                "spec_sha256": d.spec_sha256,
                "signature": d.signature,
                "reason": d.reason[:200],
            },
        )
        self._apply(d.job)
        return "ok"

    # -- this node's operator (or policy) decides
    def decide(
        self, job: str, decision: str, reason: str = "", actor: str = "operator"
    ) -> dict[str, Any]:
        spec, rec = self._spec(job)
        with self._lock:
            status = rec["status"]
            if decision in ("approve", "reject") and status != "pending":
                raise ConfigError(f"proposal {job!r} is {status}, not pending")
            if decision == "revoke" and status not in ("pending", "approved"):
                raise ConfigError(f"proposal {job!r} is {status}; nothing to revoke")
            mine = {x.decision for x in self.store.decisions(job) if x.party == self.me}
            if decision in mine:
                return self.view(job)
            if decision == "approve" and "reject" in mine:
                raise ConfigError(f"this node already rejected {job!r}")
            if decision == "approve":  # the data, levels or policy may have changed since
                self.runner.check(spec)
                if rec["reason"]:
                    self.store.set_status(job, "pending", None)
            d = self._sign(job, rec["spec_sha256"], decision, reason)
        action = {
            "approve": Action.approval,
            "reject": Action.rejection,
            "revoke": Action.revocation,
        }[decision]
        evidence: dict[str, Any] = {
            "spec_sha256": d.spec_sha256,
            "signature": d.signature,
            "reason": reason[:200],
        }
        if decision == "approve":  # the legal basis of each dataset this approval releases
            evidence["legal_basis"] = self._legal_bases(spec)
        self.runner.record(action, actor=actor, job=job, party=self.me, evidence=evidence)
        self._broadcast(spec, f"decision.{decision}", d.as_dict())
        self._apply(job)
        return self.view(job)

    def _apply(self, job: str) -> None:
        _, rec = self._spec(job)
        decisions = self.store.decisions(job)
        kinds = {(d.party, d.decision) for d in decisions}
        if any(k[1] == "revoke" for k in kinds):
            if rec["status"] != "revoked":
                who = sorted(p for p, k in kinds if k == "revoke")
                self.store.set_status(job, "revoked", f"revoked by {', '.join(who)}")
                if self.runner.knows(job):
                    self.runner.cancel(job, reason=f"revoked by {', '.join(who)}")
            return
        if any(k[1] == "reject" for k in kinds):
            if rec["status"] == "pending":
                who = sorted(p for p, k in kinds if k == "reject")
                self.store.set_status(job, "rejected", f"rejected by {', '.join(who)}")
            return
        self._maybe_start(job)

    def _maybe_start(self, job: str) -> None:
        spec, rec = self._spec(job)
        approved = {d.party for d in self.store.decisions(job) if d.decision == "approve"}
        if rec["status"] != "pending" or not set(spec.parties) <= approved:
            return
        with self._lock:
            rec = self.store.proposal(job) or rec
            if rec["status"] != "pending":
                return
            self.store.set_status(job, "approved")
        try:
            self.runner.submit(spec)
        except ConfigError as exc:  # the data changed since the proposal was checked
            _log.error("approved job %s cannot start here: %s", job, exc)
            self.store.set_status(job, "pending")
            self.decide(job, "revoke", f"{self.me}: input rejected", actor="node")

    # -- views
    def view(self, job: str) -> dict[str, Any]:
        spec, rec = self._spec(job)
        levels: dict[str, dict[str, str]] = {}
        for use in spec.parties[self.me].datasets.values():
            try:
                info = self.runner.registry.get(use.name)
            except ConfigError:
                continue
            levels[use.name] = {f.name: f.level.value for f in info.fields}
        bases = self._legal_bases(spec)
        # a party's strongest decision is shown (revoke > reject > approve), whatever times
        # it put on them: an approval dated after its own rejection does not hide it
        strength = {"approve": 0, "reject": 1, "revoke": 2}
        ranked = sorted(self.store.decisions(job), key=lambda d: (strength[d.decision], d.at))
        decisions = {
            d.party: {"decision": d.decision, "at": d.at, "reason": d.reason} for d in ranked
        }
        return {
            "job": job,
            "status": rec["status"],
            "reason": rec["reason"],
            "initiator": rec["initiator"],
            "spec_sha256": rec["spec_sha256"],
            "decisions": decisions,
            "waiting_for": [p for p in spec.parties if p not in decisions],
            "uses": usage_summary(spec, self.me, levels, bases),
        }

    def _legal_bases(self, spec: PipelineSpec) -> dict[str, str | None]:
        """The legal basis each of this party's datasets in ``spec`` records (its usage
        policy; ``None``: not recorded or not registered)."""
        out: dict[str, str | None] = {}
        mine = spec.parties.get(self.me)
        for use in mine.datasets.values() if mine else []:
            try:
                out[use.name] = self.runner.registry.get(use.name).policy.legal_basis
            except ConfigError:
                out[use.name] = None
        return out

    def inbox(self, status: str | None = None) -> list[dict[str, Any]]:
        out = []
        for r in self.store.proposals(status):
            try:
                out.append(self.view(r["job"]))
            except (ConfigError, ValueError, RecursionError) as exc:  # never the whole inbox
                _log.error("proposal %s cannot be shown: %s", r["job"], str(exc)[:200])
                out.append(
                    {
                        "job": r["job"],
                        "status": r["status"],
                        "reason": "unreadable proposal",
                        "initiator": r["initiator"],
                        "spec_sha256": r["spec_sha256"],
                        "decisions": {},
                        "waiting_for": [],
                        "uses": {},
                    }
                )
        return out

    # -- delivery (housekeeping thread)
    def deliver(self, backoff: dict[tuple[str, str], tuple[float, float]]) -> None:
        """Deliver queued proposals and decisions (the runner's outbox delivery)."""

        def send(transport: HttpTransport, row: Mapping[str, Any]) -> str:
            path = "/v1/proposals" if row["kind"] == "proposal" else "/v1/decisions"
            return transport.post_json(
                row["receiver"], f"{path}/{row['job']}", json.loads(row["body"])
            )

        self.runner.deliver_outbox(
            backoff,
            self.store.pending(),
            key=lambda row: f"{row['kind']} of {row['job']}",
            send=send,
            done=lambda row: self.store.delivered(row["job"], row["receiver"], row["kind"]),
        )

    def close(self) -> None:
        """Nothing of its own to close (deliveries use the runner's control transport)."""
