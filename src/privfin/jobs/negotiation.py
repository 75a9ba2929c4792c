"""Negotiation: nothing runs until every party has approved the job and the use of its data.

The initiator submits a pipeline to its **own** node only. Its node records the proposal and
its own approval, and sends both to every other party's node. Each party's node validates the
whole proposal against its own data (datasets present, fields, JR/T 0171 levels, usage policy,
parameters, components) and then waits for its operator — or its auto-approval policy — to
approve or reject. Every decision (approve, reject, revoke) is a **signed statement** over the
job name and the SHA-256 of the exact spec bytes, made with the party's identity key (ECDSA
P-256, the key of its mTLS certificate), sent to every other party and kept by each as
evidence. A node starts its part when it holds a valid approval of every party; any rejection
ends the proposal everywhere; a revocation stops running work (state is kept).

A party validates a decision with the sender's pinned certificate: a forged, replayed (other
job or spec) or unsigned decision is refused and audited.
"""

from __future__ import annotations

import base64
import json
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)

from privfin.errors import ConfigError
from privfin.jobs.components import DECLARATIONS
from privfin.jobs.spec import PipelineSpec, parse_ref

__all__ = [
    "DECISIONS",
    "MAX_ENTRIES",
    "MAX_PARTIES",
    "MAX_STEPS",
    "Decision",
    "NegotiationStore",
    "admissible",
    "clean_text",
    "decision_statement",
    "metadata",
    "sign_decision",
    "usage_summary",
    "verify_decision",
]

DECISIONS = ("approve", "reject", "revoke")
#: Bounds of a proposal a node takes (a real pipeline has a handful of steps): validation,
#: ordering and the inbox stay cheap whatever a peer sends.
MAX_STEPS = 256
MAX_PARTIES = 64
#: Entries of a spec that validation looks at one by one (every step's inputs, per-party
#: inputs and parameters, ``after``, roles; every party's dataset and model aliases): each may
#: cost a registry lookup.
MAX_ENTRIES = 2048
#: Decision times a node takes (seconds since the epoch; the store's column is 32-bit).
MAX_TIME = 2**31 - 1
#: The longest wait for one message of a step (a step's ``timeout``) and the longest job
#: (the job's ``timeout``) a node agrees to: a peer that stalls cannot hold a job's thread,
#: data and keys for years.
MAX_STEP_TIMEOUT = 24 * 3600.0
MAX_JOB_TIMEOUT = 30 * 24 * 3600.0
#: Unicode categories never allowed in a text a peer sends (shown in the inbox and logs):
#: control and format characters (ANSI escapes, bidi overrides), line/paragraph separators,
#: surrogates and private use.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
metadata = MetaData()


def _unsafe(text: str) -> bool:
    return any(unicodedata.category(c) in _UNSAFE for c in text)


def clean_text(text: str) -> str:
    """``text`` with every control/format character replaced by a space (what a node signs
    as its reason, so its peers, which refuse such characters, accept the decision)."""
    return "".join(" " if unicodedata.category(c) in _UNSAFE else c for c in text)


def admissible(spec: PipelineSpec, text: str) -> None:
    """Raise ConfigError unless ``spec`` (whose canonical form is ``text``) is one a node may
    store and show: at most MAX_STEPS steps and MAX_PARTIES parties, no control or format
    characters in any of its strings (the approvals inbox prints them), a DAG that orders,
    and a stored form that reads back."""
    if (spec.timeout or 0) > MAX_JOB_TIMEOUT:
        raise ConfigError(f"the job's timeout may be at most {MAX_JOB_TIMEOUT:g} s")
    for name, st in spec.steps.items():
        if (st.timeout or 0) > MAX_STEP_TIMEOUT:
            raise ConfigError(f"step {name!r}: timeout may be at most {MAX_STEP_TIMEOUT:g} s")
    if len(spec.steps) > MAX_STEPS or len(spec.parties) > MAX_PARTIES:
        raise ConfigError(
            f"a job may have at most {MAX_STEPS} steps and {MAX_PARTIES} parties "
            f"(this one: {len(spec.steps)} and {len(spec.parties)})"
        )
    entries = sum(len(p.datasets) + len(p.models) for p in spec.parties.values())
    for st in spec.steps.values():
        entries += len(st.inputs) + len(st.after) + len(st.party_params)
        entries += sum(len(v) for v in st.party_inputs.values())
        entries += sum(len(v) for v in st.roles.values())
    if entries > MAX_ENTRIES:
        raise ConfigError(f"a job may have at most {MAX_ENTRIES} inputs, roles and aliases")
    try:
        again = PipelineSpec.model_validate_json(text)
        again.order()
        strings = list(_strings(json.loads(text), "spec"))
    except (ValueError, RecursionError, ConfigError) as exc:
        msg = str(exc).splitlines()[0][:200] if isinstance(exc, ConfigError) else "unreadable"
        raise ConfigError(f"the job spec cannot be stored: {msg}") from None
    for where, value in strings:
        if _unsafe(value):
            raise ConfigError(f"{where!r}: control or format characters are not allowed")


def _strings(value: Any, where: str) -> Any:
    """Every string (keys too) of a parsed JSON value with its dotted path."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield f"{where}.{k}", k
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}.{i}")


proposals = Table(
    "proposals",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("spec_sha256", String(64), nullable=False),
    Column("initiator", String(64), nullable=False),
    # pending, approved (all approved: started), rejected, revoked
    Column("status", String(16), nullable=False),
    Column("reason", String(500), nullable=True),
    Column("created_at", Integer, nullable=False),
    Column("updated_at", Integer, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("party", String(64), primary_key=True),
    Column("decision", String(16), primary_key=True),
    Column("spec_sha256", String(64), nullable=False),
    Column("at", Integer, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("signature", Text, nullable=False),
)

negotiation_outbox = Table(
    "negotiation_outbox",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("receiver", String(64), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("body", Text, nullable=False),
    Column("deadline", Integer, nullable=False),
)


@dataclass(frozen=True)
class Decision:
    """A party's signed decision on a proposal."""

    job: str
    party: str
    decision: str
    spec_sha256: str
    at: int
    reason: str
    signature: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "party": self.party,
            "decision": self.decision,
            "spec_sha256": self.spec_sha256,
            "at": self.at,
            "reason": self.reason,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Decision:
        """Parse a received decision; ConfigError for anything malformed."""
        if not isinstance(data, Mapping):
            raise ConfigError("a decision must be an object")
        try:
            d = cls(
                job=data["job"],
                party=data["party"],
                decision=data["decision"],
                spec_sha256=data["spec_sha256"],
                at=data["at"],
                reason=data.get("reason", ""),
                signature=data["signature"],
            )
        except KeyError as exc:
            raise ConfigError(f"a decision needs {exc.args[0]!r}") from None
        if not all(isinstance(v, str) for v in (d.job, d.party, d.decision, d.spec_sha256)):
            raise ConfigError("malformed decision")
        if d.decision not in DECISIONS:
            raise ConfigError(f"decision must be one of {DECISIONS}")
        if type(d.at) is not int or not isinstance(d.reason, str) or len(d.reason) > 500:
            raise ConfigError("malformed decision")
        if not 0 <= d.at <= MAX_TIME:
            raise ConfigError("decision time out of range")
        if _unsafe(d.reason):
            raise ConfigError("a decision's reason may not contain control characters")
        if not isinstance(d.signature, str) or len(d.signature) > 400:
            raise ConfigError("malformed decision signature")
        if len(d.spec_sha256) != 64:
            raise ConfigError("malformed spec digest")
        return d


def decision_statement(
    job: str, party: str, decision: str, spec_sha256: str, at: int, reason: str
) -> bytes:
    """The exact bytes a party signs."""
    return json.dumps(
        {
            "type": "privfin.decision/v1",
            "job": job,
            "party": party,
            "decision": decision,
            "spec_sha256": spec_sha256,
            "at": at,
            "reason": reason,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def sign_decision(
    key: ec.EllipticCurvePrivateKey,
    *,
    job: str,
    party: str,
    decision: str,
    spec_sha256: str,
    reason: str = "",
    at: int | None = None,
) -> Decision:
    if decision not in DECISIONS:
        raise ConfigError(f"decision must be one of {DECISIONS}")
    when = int(time.time()) if at is None else at
    reason = clean_text(reason[:500])
    sig = key.sign(
        decision_statement(job, party, decision, spec_sha256, when, reason),
        ec.ECDSA(hashes.SHA256()),
    )
    return Decision(job, party, decision, spec_sha256, when, reason, base64.b64encode(sig).decode())


def verify_decision(d: Decision, cert_pem: bytes) -> bool:
    """Whether ``d`` is signed by the key of ``cert_pem`` (the party's pinned certificate)."""
    try:
        key = x509.load_pem_x509_certificate(cert_pem).public_key()
        sig = base64.b64decode(d.signature, validate=True)
    except ValueError:
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(
            sig,
            decision_statement(d.job, d.party, d.decision, d.spec_sha256, d.at, d.reason),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        return False
    return True


class NegotiationStore:
    """Proposals, decisions (evidence) and the messages still to deliver, of one node."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_tables(self) -> None:
        metadata.create_all(self.engine)

    # -- proposals
    def add_proposal(self, job: str, spec: str, sha: str, initiator: str) -> str:
        """Record a proposal: ``"new"``, ``"same"`` (already known, identical) or raise
        ConfigError if the job exists with another spec."""
        now = int(time.time())
        with self.engine.begin() as conn:
            row = conn.execute(
                select(proposals.c.spec_sha256).where(proposals.c.job == job)
            ).first()
            if row is not None:
                if row[0] != sha:
                    raise ConfigError(f"job {job!r} was proposed with another spec")
                return "same"
            conn.execute(
                insert(proposals).values(
                    job=job,
                    spec=spec,
                    spec_sha256=sha,
                    initiator=initiator,
                    status="pending",
                    created_at=now,
                    updated_at=now,
                )
            )
        return "new"

    def proposal(self, job: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(proposals).where(proposals.c.job == job)).mappings().first()
        return None if row is None else dict(row)

    def proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = select(proposals).order_by(proposals.c.created_at)
            if status is not None:
                q = q.where(proposals.c.status == status)
            return [dict(r) for r in conn.execute(q).mappings()]

    def count(self, initiator: str, *, status: str | None = None, since: int = 0) -> int:
        """Proposals of ``initiator`` (with ``status``, created at or after ``since``)."""
        q = (
            select(func.count())
            .select_from(proposals)
            .where(and_(proposals.c.initiator == initiator, proposals.c.created_at >= since))
        )
        if status is not None:
            q = q.where(proposals.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def set_status(self, job: str, status: str, reason: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(proposals)
                .where(proposals.c.job == job)
                .values(status=status, reason=reason, updated_at=int(time.time()))
            )

    # -- decisions
    def add_decision(self, d: Decision) -> bool:
        """Keep a (verified) decision; False if the same party's same decision is known."""
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(decisions.c.at).where(
                    and_(
                        decisions.c.job == d.job,
                        decisions.c.party == d.party,
                        decisions.c.decision == d.decision,
                    )
                )
            ).first()
            if exists is not None:
                return False
            conn.execute(insert(decisions).values(**d.as_dict()))
        return True

    def decisions(self, job: str) -> list[Decision]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(decisions).where(decisions.c.job == job).order_by(decisions.c.at)
            ).mappings()
            return [Decision(**dict(r)) for r in rows]

    # -- outbox
    def queue(self, job: str, receivers: list[str], kind: str, body: Any, deadline: int) -> None:
        text = json.dumps(body)  # key order kept: a spec's step order is meaningful
        with self.engine.begin() as conn:
            for r in receivers:
                cond = and_(
                    negotiation_outbox.c.job == job,
                    negotiation_outbox.c.receiver == r,
                    negotiation_outbox.c.kind == kind,
                )
                conn.execute(delete(negotiation_outbox).where(cond))
                conn.execute(
                    insert(negotiation_outbox).values(
                        job=job, receiver=r, kind=kind, body=text, deadline=deadline
                    )
                )

    def pending(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(negotiation_outbox)).mappings()]

    def delivered(self, job: str, receiver: str, kind: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(negotiation_outbox).where(
                    and_(
                        negotiation_outbox.c.job == job,
                        negotiation_outbox.c.receiver == receiver,
                        negotiation_outbox.c.kind == kind,
                    )
                )
            )


def _enclave(component: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    if component != "tee":
        return None
    from privfin.tee.component import enclave_summary

    try:
        return enclave_summary(params)
    except ConfigError as exc:
        return {"error": str(exc)}


def usage_summary(
    spec: PipelineSpec,
    party: str,
    levels: Mapping[str, Mapping[str, str]] | None = None,
    legal_bases: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """What ``spec`` will use of ``party`` — shown in its approvals inbox: the purpose,
    retention, result parties, the technologies and steps it takes part in, and each of its
    datasets with the fields used and their JR/T 0171 levels (``levels``: dataset -> field ->
    level, from the party's registry), the legal basis its usage policy records
    (``legal_bases``: dataset -> basis) and the bases the job demands for it."""
    levels = levels or {}
    mine = spec.parties.get(party)
    steps = []
    technologies: set[str] = set()
    for name in spec.steps_of(party):
        st = spec.steps[name]
        decl = DECLARATIONS.get(st.component)
        if decl is not None:
            technologies.add(decl.technology)
        uses = [ref for ref in st.inputs_of(party).values() if parse_ref(ref)[0] != "step"]
        steps.append(
            {
                "step": name,
                "component": st.component,
                "roles": st.roles[party],
                "parties": list(st.roles),
                "uses": uses,
                "reveals": decl.reveals if decl else "",
                # (what a step discloses may depend on them, e.g. a PSI's reveal_to)
                "params": st.params,
                "party_params": st.party_params,
                "timeout": st.timeout,
                # a TEE step: which enclave measurement will see the data, and whether the
                # enclave is simulated (no hardware protection)
                "enclave": _enclave(st.component, {**st.params, **st.party_params.get(party, {})}),
            }
        )
    datasets = {}
    for alias, use in mine.datasets.items() if mine else []:
        known = levels.get(use.name, {})
        fields = use.fields if use.fields is not None else [f for f in known if known[f] != "C3"]
        datasets[alias] = {
            "dataset": use.name,
            "fields": {f: known.get(f, "?") for f in fields},
            "all_fields": use.fields is None,
            "legal_basis": (legal_bases or {}).get(use.name),
            "legal_basis_required": use.legal_basis,
        }
    return {
        "job": spec.job,
        "purpose": spec.purpose,
        "retention_days": spec.retention_days,
        "timeout": spec.timeout,
        "results": spec.results,
        "parties": list(spec.parties),
        "initiator": spec.initiator,
        "technologies": sorted(technologies),
        "datasets": datasets,
        "models": dict(mine.models) if mine else {},
        "steps": steps,
    }
