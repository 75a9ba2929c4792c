"""The node's minimal job runner: persisted job records, one thread per running job, resume on
restart. (The full job platform with negotiation and DAGs is later work.)

Trust no peer: when a job fails here, the other parties are told only *that* this party
stopped and a reason from a small fixed vocabulary (:func:`peer_reason`); the exception, with
whatever local data, paths or schemas it names, stays in the local log and the job status
(readable by this node's own identity only). The abort is kept in an outbox and retried until
every other party of the job has it (or ``retention.abort_retry_for`` passes), so a party that
was down or had not started the job yet still stops. An abort received from a party of a
running job stops it here and is relayed to the remaining parties. When a job ends, its message
payloads are deleted (``retention.payloads``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from privfin.audit import Action, AuditLog
from privfin.audit.sealer import Sealer
from privfin.audit.store import metadata as audit_metadata
from privfin.data.registry import DatasetRegistry, SourceKind, check_legal_basis
from privfin.data.registry import metadata as registry_metadata
from privfin.dp.ledger import BudgetLedger, LedgerEvent
from privfin.dp.ledger import metadata as dp_metadata
from privfin.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigError,
    DecodeError,
    PeerTimeout,
    PrivfinError,
    ProtocolAbort,
    disk_full,
)
from privfin.federation.http import HttpTransport
from privfin.federation.mailbox import Mailbox, messages
from privfin.federation.mailbox import metadata as mailbox_metadata
from privfin.federation.routed import RoutedTransport
from privfin.federation.stream import StreamClient, StreamServer, StreamTransport
from privfin.federation.transport import CancelToken, Channel, MessageKey, validate_name
from privfin.jobs.components import DECLARATIONS
from privfin.jobs.negotiation import metadata as negotiation_metadata
from privfin.jobs.registry import RESTARTS, get_component
from privfin.jobs.scheduler import MAX_STEP_ATTEMPTS, PartyPipeline, channel_name, rewind
from privfin.jobs.spec import PipelineSpec, parse_spec_data
from privfin.jobs.store import PipelineStore
from privfin.jobs.store import metadata as pipeline_metadata
from privfin.jobs.validate import check as check_pipeline
from privfin.node.config import NodeConfig
from privfin.node.contacts import PeerContacts
from privfin.node.negotiate import Negotiator
from privfin.runtime import Context, DirectoryArtifacts, Progress
from privfin.runtime.context import Metrics
from privfin.store import declare_schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_STEP_ATTEMPTS",
    "AnySpec",
    "JobRunner",
    "JobSpec",
    "LocalDatasetChecks",
    "peer_reason",
]

_log = logging.getLogger("privfin.node.jobs")
#: The highest attempt of a pipeline step a peer may restart here (or send messages for):
#: each restart reruns the step on this party's data, so a party cannot have it rerun at will.
_meta = MetaData()
jobs_table = Table(
    "jobs",
    _meta,
    Column("job", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("updated_at", Integer, nullable=False),
)
# Aborts this node still has to deliver to a party of the job (retried until the deadline).
abort_outbox = Table(
    "abort_outbox",
    _meta,
    Column("job", String(64), primary_key=True),
    Column("receiver", String(64), primary_key=True),
    Column("reason", String(400), nullable=False),
    Column("deadline", Integer, nullable=False),
)
# The generic reason this node gave its peers for a job that failed here (what a party of the
# job may ask for when it resumes the job after a restart).
peer_reasons = Table(
    "peer_reasons",
    _meta,
    Column("job", String(64), primary_key=True),
    Column("reason", String(400), nullable=False),
)

#: The migration heads at which the node's store is exactly the tables of these MetaData: a
#: new, empty store is created from them at once (``privfin.store.declare_schema``; the tests
#: check both the heads and that the schema equals the migrated one).
STORE_HEADS = (
    "0002_scheduler",
    "0003_audit",
    "0004_registry",
    "0005_negotiation",
    "0006_dp_ledger",
    "0007_mailbox_spill",
)
STORE_METADATA = (
    mailbox_metadata,
    _meta,
    pipeline_metadata,
    registry_metadata,
    audit_metadata,
    negotiation_metadata,
    dp_metadata,
)
declare_schema(STORE_HEADS, STORE_METADATA)

_JOB_TIMEOUT = "job timeout"


def peer_reason(
    party: str,
    exc: BaseException,
    *,
    roles: Mapping[str, Any],
    loading: bool = False,
    cancelled: bool = False,
    timed_out: bool = False,
    aborted_by: str | None = None,
) -> str:
    """The reason a failing party gives its peers: ``"<party>: <code>"`` with a code from a
    fixed vocabulary chosen by the exception's class — never the exception's text, which may
    hold local values, paths or schemas. A protocol-level fact may name a party of the job
    (the peer that deviated, timed out or aborted first)."""

    def named(other: object) -> str | None:
        return other if isinstance(other, str) and other in roles and other != party else None

    if timed_out:
        code = "the job's time limit was reached"
    elif cancelled:
        code = "cancelled by its operator"
    elif aborted_by is not None and named(aborted_by):
        code = f"stopped because {aborted_by} aborted the job"
    elif loading:
        code = "input rejected"
    elif isinstance(exc, ProtocolAbort) and named(exc.party):
        code = f"protocol violation by {exc.party}"
    elif isinstance(exc, PeerTimeout) and named(exc.peer):
        code = f"no message from {exc.peer} in time"
    elif isinstance(exc, AuthenticationError):
        code = "authentication of a peer failed"
    elif isinstance(exc, DecodeError):
        code = "malformed message from a peer"
    elif isinstance(exc, BudgetExceededError):
        code = "privacy budget exceeded"
    elif isinstance(exc, (ConfigError, ValueError, TypeError, LookupError)):
        code = "input rejected"
    elif isinstance(exc, ProtocolAbort):
        code = "protocol aborted"
    else:
        code = "internal error"
    return f"{party}: {code}"


class ColumnStream(BaseModel):
    """An input streamed from a dataset: the values of one column, in chunks (bounded memory),
    instead of the whole table."""

    model_config = ConfigDict(extra="forbid")
    dataset: str
    column: str
    chunk_rows: int = 250_000


class JobSpec(BaseModel):
    """A job as submitted to each party's node."""

    model_config = ConfigDict(extra="forbid")
    job: str
    component: str
    roles: dict[str, list[str]]
    params: dict[str, Any] = {}
    # party -> {input name: dataset name (a whole table) or a column stream}
    inputs: dict[str, dict[str, str | ColumnStream]] = {}
    timeout: float | None = None

    @field_validator("job", "component")
    @classmethod
    def _names(cls, v: str) -> str:
        return validate_name("name", v)

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if len(v) < 2:
            raise ValueError("a job needs at least two parties")
        for party in v:
            validate_name("party", party)
        return v


AnySpec = JobSpec | PipelineSpec


def load_any(text: str) -> AnySpec:
    """A stored spec: a pipeline (has ``steps``) or a single-component job."""
    data = json.loads(text)
    if isinstance(data, dict) and "steps" in data:
        return PipelineSpec.model_validate(data)
    return JobSpec.model_validate(data)


def spec_parties(spec: AnySpec) -> list[str]:
    return list(spec.parties) if isinstance(spec, PipelineSpec) else list(spec.roles)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(v) in _PLAIN for v in value):  # long id/row lists: no call per item
            return list(value)
        return [jsonable(v) for v in value]
    pd = sys.modules.get("pandas")  # a DataFrame implies pandas was imported
    if pd is not None and isinstance(value, pd.DataFrame):
        return {"columns": list(map(str, value.columns)), "rows": len(value)}
    if isinstance(value, bytes):
        return value.hex()
    to_json = getattr(value, "to_json", None)
    if callable(to_json):  # models and other objects that serialise themselves
        return json.loads(to_json())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"a job result of type {type(value).__name__} cannot be stored as JSON")


class JobRunner:
    """Runs jobs for one node; every state change is persisted before it is acted on."""

    def __init__(self, config: NodeConfig, mailbox: Mailbox) -> None:
        self.config = config
        self.mailbox = mailbox
        _meta.create_all(mailbox.engine)
        pipeline_metadata.create_all(mailbox.engine)
        registry_metadata.create_all(mailbox.engine)
        audit_metadata.create_all(mailbox.engine)
        negotiation_metadata.create_all(mailbox.engine)
        dp_metadata.create_all(mailbox.engine)
        self.audit = AuditLog(mailbox.engine, node=config.party)
        self.pipelines = PipelineStore(mailbox.engine)
        self.registry = DatasetRegistry(mailbox.engine)
        # the privacy-budget ledger of this node's datasets; every change is audited
        self.dp_ledger = BudgetLedger(mailbox.engine, self.registry, on_event=self._dp_event)
        for name, what in self.registry.sync_config(config.datasets).items():
            if what != "unchanged":
                _log.info("dataset %s (node.yaml): %s", name, what)
        self._pipes: dict[str, PartyPipeline] = {}  # running pipeline jobs
        self._specs: dict[str, AnySpec] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._cancel: dict[str, CancelToken] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._warmed: set[str] = set()  # components whose code a check has imported
        self._roles: dict[str, frozenset[str]] = {}  # job -> its parties (specs never change)
        self._components: dict[str, str] = {}  # job -> its component
        # job -> its status as this process last wrote or read it (only this process writes
        # the jobs table): a message for a running job needs no status query.
        self._status: dict[str, str] = {}
        # notified when a job's status changes (long-polling clients: :meth:`wait_ended`)
        self._status_changed = threading.Condition()
        self._wake = threading.Event()
        self._to_purge: list[str] = []  # ended jobs whose payloads housekeeping deletes
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._housekeeping_lock = threading.Lock()
        self._abort_transport: HttpTransport | None = None
        self._last_sweep = 0
        self._faults: dict[str, PrivfinError] = {}  # job -> local fault that stopped it
        self._audit_queue: collections.deque[tuple[Action, dict[str, Any]]] = collections.deque()
        self.negotiator = Negotiator(self)
        # signed checkpoints of the audit log at each job's end and on a timer, their heads
        # kept outside the database (config.audit)
        self.sealer = Sealer(
            self.audit,
            self.negotiator.private_key,
            config.heads_file(),
            interval=config.audit.seal_interval,
        )
        self.contacts = PeerContacts()  # when each peer last reached this node
        self._stream_client: StreamClient | None = None
        #: this node's stream listener (set by the node once started): the jobs' ``recv``
        #: reads their peers' connections while it waits
        self.stream_server: StreamServer | None = None

    # -- records
    def _record(self, job: str) -> dict[str, Any] | None:
        with self.mailbox.engine.connect() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.job == job)).mappings().first()
        return None if row is None else dict(row)

    def _set(self, job: str, **values: Any) -> None:
        with self.mailbox.engine.begin() as conn:
            conn.execute(
                update(jobs_table)
                .where(jobs_table.c.job == job)
                .values(updated_at=int(time.time()), **values)
            )
        if "status" in values:
            with self._status_changed:
                self._status[job] = str(values["status"])
                self._status_changed.notify_all()

    def record(self, action: Action, *, required: bool = False, **fields: Any) -> None:
        """Append an audit entry. ``required``: the caller must not go on without it (a data
        access); otherwise a failure to audit is logged and the work goes on."""
        try:
            self.audit.append(action, **fields)
        except Exception:
            if required:
                raise
            _log.exception("could not append %s to the audit log", action)

    def _dp_event(self, event: LedgerEvent) -> None:
        """A change of the DP budget ledger, as a ``dp_spend`` audit entry (a reservation,
        commit, release, refusal or budget change: who, which job, epsilon, delta)."""
        evidence: dict[str, Any] = {
            "event": event.kind,
            "epsilon": event.epsilon,
            "delta": event.delta,
            "mechanism": event.mechanism,
            "spend": event.spend_id,
        }
        if event.reason:
            evidence["reason"] = event.reason[:500]
        budget = self.dp_ledger.budget(event.dataset)
        if budget is not None:
            evidence["remaining_epsilon"] = budget.remaining_epsilon
            evidence["remaining_delta"] = budget.remaining_delta
        self.record(
            Action.dp_spend,
            required=event.kind in ("reserve", "commit"),
            actor=event.who,
            job=event.job,
            dataset=event.dataset,
            party=event.party if event.party != "*" else None,
            evidence=evidence,
        )

    def record_later(self, action: Action, **fields: Any) -> None:
        """Queue an audit entry for the housekeeping thread (callers on the event loop, such
        as a refused request, must not wait for the database)."""
        if len(self._audit_queue) < 10_000:  # refusals are rate-limited upstream as well
            self._audit_queue.append((action, fields))
            self.start_housekeeping()
            self._wake.set()

    def _drain_audit(self) -> None:
        while self._audit_queue:
            action, fields = self._audit_queue.popleft()
            self.record(action, **fields)

    def parties(self, job: str) -> frozenset[str] | None:
        """The parties of ``job``, or None if this node has no such job."""
        roles = self._roles.get(job)
        if roles is None:
            rec = self._record(job)
            if rec is None:
                return None
            spec = load_any(rec["spec"])
            self._specs[job] = spec
            if isinstance(spec, JobSpec):
                self._components[job] = spec.component
            roles = self._roles[job] = frozenset(spec_parties(spec))
        return roles

    def spec(self, job: str) -> AnySpec | None:
        if self.parties(job) is None:
            return None
        return self._specs.get(job)

    def admits(self, job: str, component: str, sender: str) -> str | None:
        """Why a message of ``sender`` for ``component`` of ``job`` is refused (None: it is
        admitted). A pipeline's channels are its steps (``step`` or ``step.a<N>``) and only
        a party of that step may send on one."""
        spec = self.spec(job)
        if spec is None:
            return None
        if isinstance(spec, JobSpec):
            if component != spec.component:
                return f"job {job!r} runs component {spec.component!r}, not {component!r}"
            return None
        step, _, attempt = component.partition(".a")
        st = spec.steps.get(step)
        if st is None or (
            attempt and (not attempt.isdigit() or not 2 <= int(attempt) <= MAX_STEP_ATTEMPTS)
        ):
            return f"job {job!r} has no step channel {component!r}"
        if channel_name(step, int(attempt or 1)) != component:
            return f"job {job!r} has no step channel {component!r}"
        if sender not in st.roles or self.config.party not in st.roles:
            return f"{sender!r} and {self.config.party!r} do not share step {step!r}"
        return None

    def volatile(self, key: MessageKey) -> bool:
        """Whether the mailbox may hold ``key``'s payload in memory only: a message of a
        component that declares it cannot resume in place after a crash, so its messages are
        never read again after one. In a pipeline such a step restarts as a new attempt (the
        pipeline notices a lost message before it starts the step: :meth:`Mailbox.lost`). A
        single-component job of such a component reruns from the start with fresh randomness
        after a crash, and its peers refuse its new messages as conflicts anyway; a lost
        payload ends it at once (``ProtocolAbort``: no longer held) instead of waiting. This
        spares the disk (and the writer thread) the payloads of many-round protocols."""
        spec = self._specs.get(key.job)
        if isinstance(spec, JobSpec):
            if key.component == spec.component and spec.component in RESTARTS:
                return True
            component = spec.component if key.component == spec.component else None
        elif isinstance(spec, PipelineSpec):
            st = spec.steps.get(key.component.partition(".a")[0])
            component = None if st is None else st.component
        else:
            return False
        decl = None if component is None else DECLARATIONS.get(component)
        return decl is not None and not decl.resumable

    def component(self, job: str) -> str | None:
        """The component of ``job``, or None if this node has no such job."""
        return self._components.get(job) if self.parties(job) is not None else None

    def wait_ended(self, job: str, timeout: float) -> bool:
        """Block until ``job``, running in this process, is done or failed, or ``timeout``
        seconds pass; whether it ended. A job this process does not run returns at once
        (its status will not change here)."""
        deadline = time.monotonic() + timeout
        with self._status_changed:
            while True:
                status = self._status.get(job)
                if status != "running" or self._stop.is_set():
                    return status in ("done", "failed")
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._status_changed.wait(left)

    def running(self, job: str) -> bool:
        """Whether ``job`` runs here, from memory only (False when not known yet)."""
        return self._status.get(job) == "running"

    def ended(self, job: str) -> bool:
        """Whether ``job`` is over here (done or failed): it takes no more messages."""
        status = self._status.get(job)
        if status is None:
            with self.mailbox.engine.connect() as conn:
                status = conn.execute(
                    select(jobs_table.c.status).where(jobs_table.c.job == job)
                ).scalar()
            if status is None:
                return False
            self._status[job] = status
        return status in ("done", "failed")

    def knows(self, job: str) -> bool:
        return self.parties(job) is not None

    def accept_abort(self, job: str, sender: str, reason: str) -> None:
        """Record that ``sender`` (a party of ``job``, checked by the caller) aborted it; a
        running job stops at its next wait and relays the abort."""
        if self.mailbox.abort(job, sender, reason):  # a repeated abort is not logged again
            _log.warning("party %s aborted job %s: %s", sender, job, reason)

    def jobs(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """This node's jobs, most recently updated first: name, status, kind (``pipeline``
        or the legacy job's component), its parties and when it last changed."""
        q = select(
            jobs_table.c.job, jobs_table.c.spec, jobs_table.c.status, jobs_table.c.updated_at
        )
        if status is not None:
            q = q.where(jobs_table.c.status == status)
        q = q.order_by(jobs_table.c.updated_at.desc(), jobs_table.c.job).limit(limit)
        with self.mailbox.engine.connect() as conn:
            rows = conn.execute(q).all()
        out = []
        for row in rows:
            try:
                spec = load_any(row.spec)
            except (ValueError, ConfigError):  # an unreadable spec never hides the others
                kind, parties = "(unreadable spec)", []
            else:
                kind = "pipeline" if isinstance(spec, PipelineSpec) else spec.component
                parties = spec_parties(spec)
            out.append(
                {
                    "job": row.job,
                    "status": row.status,
                    "kind": kind,
                    "parties": parties,
                    "updated_at": int(row.updated_at),
                }
            )
        return out

    def status(self, job: str) -> dict[str, Any] | None:
        rec = self._record(job)
        if rec is None:
            return None
        out = {
            "job": job,
            "status": rec["status"],
            "result": json.loads(rec["result"]) if rec["result"] else None,
            "error": rec["error"],
            "progress": self._progress.get(job, {}),
        }
        pipe = self._pipes.get(job)
        spec = self.spec(job)
        if isinstance(spec, PipelineSpec):
            if pipe is not None and rec["status"] == "running":
                out["progress"] = pipe.progress()
            steps = self.pipelines.steps(job)
            out["steps"] = {
                s: {
                    "status": steps[s].status if s in steps else "pending",
                    "attempt": steps[s].attempt if s in steps else 1,
                }
                for s in spec.steps_of(self.config.party)
            }
        return out

    # -- lifecycle
    def check(self, spec: AnySpec) -> None:
        """Raise ConfigError if this node would refuse ``spec`` (nothing is recorded)."""
        if isinstance(spec, PipelineSpec):
            self._check_pipeline(spec)
            self._warm(spec)
            return
        if self.config.party not in spec.roles:
            raise ConfigError(f"party {self.config.party!r} has no role in job {spec.job!r}")
        get_component(spec.component)
        for party in spec.roles:
            if party != self.config.party and party not in self.config.peers:
                raise ConfigError(f"party {party!r} of job {spec.job!r} is not a pinned peer")
        for source in spec.inputs.get(self.config.party, {}).values():
            dataset = source if isinstance(source, str) else source.dataset
            self._check_legacy_use(spec, dataset)
        rec = self._record(spec.job)
        if rec is not None and rec["spec"] != spec.model_dump_json():
            raise ConfigError(f"job {spec.job!r} exists with another spec")

    def _warm(self, spec: PipelineSpec) -> None:
        """Import the code of this party's steps in the background once a pipeline passed
        the checks (a component's first use imports its libraries: seconds of CPU that would
        otherwise delay the job's first round while the other parties wait)."""
        names = {
            st.component for st in spec.steps.values() if self.config.party in st.roles
        } - self._warmed
        if not names:
            return
        self._warmed |= names

        def load() -> None:
            for name in sorted(names):
                try:
                    DECLARATIONS[name].function()
                except Exception:  # the step reports it when it runs
                    _log.debug("warming component %s failed", name, exc_info=True)

        threading.Thread(target=load, name="warm-components", daemon=True).start()

    def _check_legacy_use(self, spec: JobSpec, dataset: str) -> None:
        """A single-component job (no declared purpose, fields or keeps-private facts): the
        dataset must be registered and its policy must allow every other party for an
        unspecified purpose; only its non-C3 fields are read (every legacy component keeps
        its inputs private)."""
        self.registry.get(dataset)  # ConfigError naming it if it is not registered
        for partner in spec.roles:
            if partner != self.config.party:
                self.registry.check_use(
                    dataset, [], partner=partner, purpose="unspecified", keeps_private=True
                )

    def _check_pipeline(self, spec: PipelineSpec) -> None:
        if self.config.party not in spec.parties:
            raise ConfigError(f"party {self.config.party!r} has no part in job {spec.job!r}")
        for party in spec.parties:
            if party != self.config.party and party not in self.config.peers:
                raise ConfigError(f"party {party!r} of job {spec.job!r} is not a pinned peer")
        check_pipeline(
            spec,
            party=self.config.party,
            local=LocalDatasetChecks(self.config, self.registry, spec),
        )
        rec = self._record(spec.job)
        if rec is not None and rec["spec"] != spec.model_dump_json():
            raise ConfigError(f"job {spec.job!r} exists with another spec")

    def submit(self, spec: AnySpec) -> dict[str, Any]:
        """Record and start a job (idempotent for an identical spec)."""
        try:
            self.check(spec)
        except ConfigError as exc:
            self.record(
                Action.validation_failed,
                actor="operator",
                job=spec.job,
                evidence={"reason": str(exc)[:500]},
            )
            raise
        text = spec.model_dump_json()
        with self._lock:
            rec = self._record(spec.job)
            if rec is not None:
                if rec["spec"] != text:
                    raise ConfigError(f"job {spec.job!r} exists with another spec")
                return self.status(spec.job) or {}
            with self.mailbox.engine.begin() as conn:
                conn.execute(
                    insert(jobs_table).values(
                        job=spec.job, spec=text, status="running", updated_at=int(time.time())
                    )
                )
            self.record(
                Action.job_started,
                actor="operator",
                job=spec.job,
                evidence={
                    "spec_sha256": hashlib.sha256(text.encode()).hexdigest(),
                    "parties": sorted(spec_parties(spec)),
                    "purpose": getattr(spec, "purpose", "unspecified"),
                },
            )
            self._start(spec)
        return self.status(spec.job) or {}

    def resume(self) -> list[str]:
        """Restart the jobs a previous process left running (after a crash or restart), and
        start housekeeping (abort delivery, retention sweeps). A resumed job whose peers have
        failed it stops as soon as their retried aborts arrive."""
        self.start_housekeeping()
        with self.mailbox.engine.connect() as conn:
            rows = conn.execute(
                select(jobs_table.c.spec).where(jobs_table.c.status == "running")
            ).scalars()
            specs = [load_any(s) for s in rows]
        for spec in specs:
            _log.info("resuming job %s", spec.job)
            with self._lock:
                self._start(spec, resumed=True)
        return [s.job for s in specs]

    def failure_for_peer(self, job: str) -> str | None:
        """The generic reason this node gave for ``job`` failing here, or None if it did not
        fail (asked by a party of the job when it resumes it)."""
        with self.mailbox.engine.connect() as conn:
            reason = conn.execute(
                select(peer_reasons.c.reason).where(peer_reasons.c.job == job)
            ).scalar()
        return None if reason is None else str(reason)

    def _ask_peers(self, spec: AnySpec, transport: HttpTransport) -> None:
        """On resume: stop at once if a party failed the job while this node was down (in case
        its retried abort expired before this node came back); its abort is recorded."""
        for peer in spec_parties(spec):
            if peer == self.config.party:
                continue
            reason = transport.peer_failure(spec.job, peer)
            if reason is not None:
                self.accept_abort(spec.job, peer, reason)
                raise ProtocolAbort(f"party {peer!r} aborted the job: {reason}", party=peer)

    def cancel(self, job: str, reason: str = "cancelled by the operator") -> bool:
        """Stop ``job`` here (its peers are told); False if this node has no such job."""
        if not self.knows(job):
            return False
        token = self._cancel.get(job)
        if token is not None:
            token.cancel(reason)
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._status_changed:  # long polls answer now
            self._status_changed.notify_all()
        self._wake.set()
        for token in list(self._cancel.values()):
            token.cancel("node shutting down")
        for t in list(self._threads.values()):
            t.join(timeout)
        if self._housekeeper is not None:
            self._housekeeper.join(timeout)
        if self._stream_client is not None:
            self._stream_client.close()

    # -- housekeeping: abort delivery and retention
    def start_housekeeping(self) -> None:
        """Start the thread that delivers queued aborts and applies retention (once)."""
        with self._housekeeping_lock:
            if self._stop.is_set():
                return
            if self._housekeeper is None or not self._housekeeper.is_alive():
                self._housekeeper = threading.Thread(
                    target=self._housekeep, name="node-housekeeping", daemon=True
                )
                self._housekeeper.start()

    def _queue_abort(self, job: str, receivers: list[str], reason: str) -> None:
        deadline = int(time.time() + self.config.retention.abort_retry_for)
        with self.mailbox.engine.begin() as conn:
            for peer in receivers:
                exists = conn.execute(
                    select(abort_outbox.c.job).where(
                        abort_outbox.c.job == job, abort_outbox.c.receiver == peer
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        insert(abort_outbox).values(
                            job=job, receiver=peer, reason=reason[:400], deadline=deadline
                        )
                    )
        self.start_housekeeping()
        self._wake.set()

    def routed(
        self, http: HttpTransport, parties: list[str], cancel: CancelToken
    ) -> HttpTransport | RoutedTransport:
        """The transport of a job's channel: ``http`` alone, or — for peers configured with
        ``transport: stream`` — the node's shared stream connections, per peer."""
        stream_peers = self.config.stream_peers()
        streamed = [p for p in parties if p in stream_peers and p != self.config.party]
        if not streamed:
            return http
        with self._lock:
            if self._stream_client is None:
                self._stream_client = StreamClient(self.config.identity, stream_peers)
            client = self._stream_client
        stream = StreamTransport(
            self.config.identity,
            {p: stream_peers[p] for p in streamed},
            self.mailbox,
            send_timeout=http.send_timeout,
            cancel=cancel,
            client=client,
            server=self.stream_server,
        )
        routes: dict[str, Any] = {p: http for p in parties if p != self.config.party}
        routes.update(dict.fromkeys(streamed, stream))
        return RoutedTransport(routes, local=http)

    def control_transport(self) -> HttpTransport:
        """The transport of this node's control messages (aborts, restarts, negotiation)."""
        if self._abort_transport is None:
            self._abort_transport = HttpTransport(
                self.config.identity,
                self.config.transport_peers(),
                self.mailbox,
                request_timeout=5.0,
            )
        return self._abort_transport

    def deliver_outbox(
        self,
        backoff: dict[tuple[str, str], tuple[float, float]],
        rows: Sequence[Mapping[str, Any]],
        *,
        key: Callable[[Mapping[str, Any]], str],
        send: Callable[[HttpTransport, Mapping[str, Any]], str],
        done: Callable[[Mapping[str, Any]], None],
    ) -> None:
        """Deliver queued control messages (a row has ``receiver`` and ``deadline``): each
        is retried with exponential backoff (0.25 s doubling to 10 s) until the peer takes
        or refuses it, or its deadline passes; then ``done`` removes it."""
        now = time.time()
        for row in rows:
            k = (key(row), str(row["receiver"]))
            due, delay = backoff.get(k, (0.0, 0.25))
            if now < due:
                continue
            outcome = "expired"
            if now <= row["deadline"] and k[1] in self.config.peers:
                outcome = send(self.control_transport(), row)
            if outcome == "retry":
                backoff[k] = (time.time() + delay, min(delay * 2, 10.0))
                continue
            if outcome != "delivered":
                _log.warning("%s to %s: %s", k[0], k[1], outcome)
            backoff.pop(k, None)
            done(row)

    def _deliver_aborts(self, backoff: dict[tuple[str, str], tuple[float, float]]) -> None:
        with self.mailbox.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(abort_outbox)).mappings()]

        def done(row: Mapping[str, Any]) -> None:
            with self.mailbox.engine.begin() as conn:
                conn.execute(
                    delete(abort_outbox).where(
                        abort_outbox.c.job == row["job"],
                        abort_outbox.c.receiver == row["receiver"],
                    )
                )

        self.deliver_outbox(
            backoff,
            rows,
            key=lambda row: f"abort of {row['job']}",
            send=lambda t, row: t.deliver_abort(row["job"], row["receiver"], row["reason"]),
            done=done,
        )

    def _sweep(self) -> None:
        swept = self.mailbox.sweep(self.config.mailbox_quotas(), self.knows)
        if self.config.retention.payloads == "job_end":
            # Messages that arrived after their job ended here (late retries).
            since, self._last_sweep = self._last_sweep, int(time.time()) - 1
            with self.mailbox.engine.connect() as conn:
                late = select(messages.c.job).where(messages.c.received_at >= since).distinct()
                ended = conn.execute(
                    select(jobs_table.c.job).where(
                        jobs_table.c.status.in_(("done", "failed")), jobs_table.c.job.in_(late)
                    )
                ).scalars()
                ended_jobs = [str(j) for j in ended]
            for job in ended_jobs:
                if job not in self._threads or not self._threads[job].is_alive():
                    swept["payloads"] = swept.get("payloads", 0) + self.mailbox.purge_job(job)
        if any(swept.values()):
            _log.info("retention sweep: %s", swept)

    def _purge(self, job: str) -> None:
        n = self.mailbox.purge_job(job)
        _log.info("job %s: deleted %d message payloads (digests kept)", job, n)

    def _housekeep(self) -> None:
        backoff: dict[tuple[str, str], tuple[float, float]] = {}
        next_sweep = time.monotonic() + self.config.retention.sweep_interval
        while not self._stop.is_set():
            try:
                while self._to_purge:
                    self._purge(self._to_purge.pop(0))
                self._drain_audit()
                self.sealer.tick()
                self._deliver_aborts(backoff)
                self._deliver_restarts(backoff)
                self.negotiator.deliver(backoff)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.config.retention.sweep_interval
                    self._sweep()
            except Exception:
                _log.exception("node housekeeping failed; retrying")
            self._wake.wait(0.25 if backoff else 1.0)
            self._wake.clear()
        try:
            self.sealer.tick()  # a job that ended just before the stop is still sealed
        except Exception:
            _log.exception("could not seal the audit log at shutdown")
        if self._abort_transport is not None:
            self._abort_transport.close()
        self.negotiator.close()

    def _start(self, spec: AnySpec, *, resumed: bool = False) -> None:
        if spec.job in self._threads and self._threads[spec.job].is_alive():
            return
        token = CancelToken()
        self._cancel[spec.job] = token
        target = self._run_pipeline if isinstance(spec, PipelineSpec) else self._run
        thread = threading.Thread(
            target=target, args=(spec, token, resumed), name=f"job-{spec.job}", daemon=True
        )
        self._threads[spec.job] = thread
        thread.start()

    def _load_inputs(self, spec: JobSpec) -> dict[str, Any]:
        from privfin.psi.sources import iter_id_chunks

        out: dict[str, Any] = {}
        for name, source in spec.inputs.get(self.config.party, {}).items():
            if isinstance(source, str):
                out[name] = self._load_dataset(source, None, job=spec.job)
            else:
                info = self.registry.get(source.dataset)
                self.record(
                    Action.data_access,
                    required=True,
                    actor="scheduler",
                    job=spec.job,
                    dataset=source.dataset,
                    evidence={
                        "version": info.version,
                        "digest": info.digest,
                        "fields": [source.column],
                    },
                )
                info = self.registry.verify(source.dataset)
                if info.kind == SourceKind.sql:
                    raise ConfigError("a column stream needs a file dataset, not a SQL query")
                out[name] = iter_id_chunks(info.location, source.column, source.chunk_rows)
        return out

    def _run(self, spec: JobSpec, token: CancelToken, resumed: bool = False) -> None:
        party = self.config.party
        peers = self.config.transport_peers()
        transport = HttpTransport(
            self.config.identity,
            {p: peers[p] for p in spec.roles if p != party},
            self.mailbox,
            send_timeout=spec.timeout or self.config.message_timeout,
            cancel=token,
        )
        channel_transport = self.routed(transport, list(spec.roles), token)
        channel = Channel(
            channel_transport,
            job=spec.job,
            component=spec.component,
            party=party,
            peers=list(spec.roles),
            default_timeout=spec.timeout or self.config.message_timeout,
            max_message_size=self.config.max_message_size,
            cancel=token,
        )
        progress_state: dict[str, Any] = {}
        self._progress[spec.job] = progress_state

        def sink(name: str, done: int, total: int | None) -> None:
            progress_state[name] = {"done": done, "total": total}

        compute = self.config.compute_backend()
        ctx = Context(
            job=spec.job,
            component=spec.component,
            party=party,
            roles={p: tuple(r) for p, r in spec.roles.items()},
            channel=channel,
            compute=compute,
            artifacts=DirectoryArtifacts(Path(self.config.state_dir) / "jobs" / spec.job),
            settings=self.config.settings,
            metrics=Metrics(),
            progress=Progress(sink),
            log=logging.LoggerAdapter(_log, {"job": spec.job, "party": party}),
        )
        loading = True
        try:
            if resumed:
                self._ask_peers(spec, transport)
            inputs = self._load_inputs(spec)
            loading = False
            result = get_component(spec.component)(ctx, spec.params, inputs)
            channel.flush()  # its messages are on the peers' disks before the job is done
            payload = {"output": jsonable(result), "traffic": channel.stats.as_dict()}
            self._discard_secrets(spec.job)
            self._set(spec.job, status="done", result=json.dumps(payload))
            self.record(Action.job_finished, actor="scheduler", job=spec.job)
            _log.info("job %s done", spec.job)
        except Exception as exc:
            self._failed(spec, token, exc, loading, transport)
        finally:
            if channel_transport is not transport:
                channel_transport.close()
            transport.close()
            compute.close()
            self._finished(spec.job)

    # -- pipelines
    def _run_pipeline(self, spec: PipelineSpec, token: CancelToken, resumed: bool = False) -> None:
        party = self.config.party
        peers = self.config.transport_peers()
        others = {p: peers[p] for p in spec.parties if p != party}
        control = HttpTransport(
            self.config.identity, others, self.mailbox, send_timeout=30.0, cancel=token
        )
        compute = self.config.compute_backend()
        root = Path(self.config.state_dir) / "jobs" / spec.job
        log = logging.LoggerAdapter(_log, {"job": spec.job, "party": party})
        timeout = self.config.message_timeout
        config = self.config
        mailbox = self.mailbox
        runner = self

        class NodeIO:
            def open(
                self,
                step: str,
                component: str,
                parties: list[str],
                cancel: CancelToken,
                timeout: float,
            ) -> tuple[Channel, Any]:
                transport = HttpTransport(
                    config.identity,
                    {p: peers[p] for p in parties if p != party},
                    mailbox,
                    send_timeout=timeout,
                    cancel=cancel,
                )
                routed = runner.routed(transport, parties, cancel)
                channel = Channel(
                    routed,
                    job=spec.job,
                    component=component,
                    party=party,
                    peers=parties,
                    default_timeout=timeout,
                    max_message_size=config.max_message_size,
                    cancel=cancel,
                )

                def close() -> None:
                    if routed is not transport:
                        routed.close()
                    transport.close()

                return channel, close

        def make_context(
            step: str, component: str, channel: Channel, artifacts: Any, progress: Progress
        ) -> Context:
            return Context(
                job=spec.job,
                component=component,
                party=party,
                roles={p: tuple(r) for p, r in spec.steps[step].roles.items()},
                channel=channel,
                compute=compute,
                artifacts=artifacts,
                settings=config.settings,
                metrics=Metrics(),
                progress=progress,
                log=log,
            )

        on_restart = self._restart_notifier(spec.job)

        pipe = PartyPipeline(
            spec,
            party,
            store=self.pipelines,
            root=root,
            io=NodeIO(),
            load_dataset=lambda name, fields: self._load_dataset(name, fields, job=spec.job),
            load_model=self._load_model,
            make_context=make_context,
            on_restart=on_restart,
            on_step=lambda step, status, attempt: self._step_event(spec.job, step, status, attempt),
            lost=lambda component: self.mailbox.lost(spec.job, component),
            default_timeout=spec.timeout or timeout,
            ledger=self.dp_ledger,
        )
        self._pipes[spec.job] = pipe
        deadline_timer: threading.Timer | None = None
        if spec.timeout:
            deadline_timer = threading.Timer(
                spec.timeout, lambda: token.cancel(f"{_JOB_TIMEOUT} ({spec.timeout:g} s)")
            )
            deadline_timer.daemon = True
            deadline_timer.start()
        try:
            if resumed:
                self._ask_peers(spec, control)
            summary = pipe.run(token)
            self._discard_secrets(spec.job)
            self._set(spec.job, status="done", result=json.dumps(summary))
            self.record(Action.job_finished, actor="scheduler", job=spec.job)
            _log.info("job %s done", spec.job)
        except Exception as exc:
            self._failed(spec, token, exc, False, control)
        finally:
            if deadline_timer is not None:
                deadline_timer.cancel()
            control.close()
            compute.close()
            self._pipes.pop(spec.job, None)
            self._finished(spec.job)

    def _restart_notifier(self, job: str) -> Callable[[str, int, list[str]], None]:
        """Announce a step restarted here under a new attempt to its other parties (queued,
        delivered with retries by housekeeping)."""

        def notify(step: str, attempt: int, receivers: list[str]) -> None:
            deadline = int(time.time() + self.config.retention.abort_retry_for)
            self.pipelines.queue_restart(job, step, attempt, receivers, deadline)
            self.start_housekeeping()
            self._wake.set()

        return notify

    def _load_dataset(self, name: str, fields: list[str] | None, *, job: str) -> pd.DataFrame:
        """The job's fields of a registered dataset (all its non-C3 fields if the spec names
        none), after checking its source is unchanged since registration; audited first."""
        info = self.registry.get(name)
        self.record(
            Action.data_access,
            required=True,
            actor="scheduler",
            job=job,
            dataset=name,
            evidence={
                "version": info.version,
                "digest": info.digest,
                "fields": list(fields) if fields is not None else "all non-C3",
            },
        )
        return self.registry.load(name, fields)

    def _step_event(self, job: str, step: str, status: str, attempt: int) -> None:
        _log.info("job %s: step %s %s (attempt %d)", job, step, status, attempt)
        if status == "running":
            self.record(
                Action.step_started,
                actor="scheduler",
                job=job,
                step=step,
                evidence={"attempt": attempt},
            )
        elif status == "done":
            arts = self.pipelines.artifacts(job, step)
            outputs = {a.name: a.sha256 for a in arts}
            self.record(
                Action.step_done,
                actor="scheduler",
                job=job,
                step=step,
                evidence={"attempt": attempt, "outputs": outputs},
            )
            for art in arts:
                if art.name == "release" and art.attempt == attempt:
                    self._record_key_release(job, step, art.path)

    def _record_key_release(self, job: str, step: str, relative: str) -> None:
        """A ``tee`` step's key release (the data key this party released to an attested
        enclave) as a ``key_release`` audit entry."""
        spec = self.spec(job)
        if not isinstance(spec, PipelineSpec) or spec.steps[step].component != "tee":
            return
        try:
            rec = json.loads(self.artifact_path(job, relative).read_text())
        except (OSError, ValueError, ConfigError):
            _log.exception("job %s: step %s: cannot read its key release record", job, step)
            return
        if not isinstance(rec, dict) or rec.get("action") != "key_release":
            return
        evidence = rec.get("evidence")
        self.record(
            Action.key_release,
            actor=str(rec.get("actor") or "key-broker"),
            job=job,
            step=step,
            dataset=str(rec["dataset"]) if rec.get("dataset") else None,
            party=str(rec["party"]) if rec.get("party") else None,
            evidence=evidence if isinstance(evidence, dict) else {},
        )

    def _load_model(self, name: str) -> bytes:
        path = self.models_dir() / f"{validate_name('model', name)}.json"
        if not path.is_file():
            raise ConfigError(f"no imported model {name!r} on this node")
        return path.read_bytes()

    def models_dir(self) -> Path:
        return Path(self.config.state_dir) / "models"

    def artifact_path(self, job: str, relative: str) -> Path:
        """The file of an artifact row (inside the job's directory; checked)."""
        root = (Path(self.config.state_dir) / "jobs" / validate_name("job", job)).resolve()
        path = (root / relative).resolve()
        if root not in path.parents:
            raise ConfigError("artifact path outside its job directory")
        return path

    def import_model(self, name: str, data: bytes) -> dict[str, Any]:
        """Keep a model file for later jobs (``models.<alias>`` inputs); it must be a privfin
        model file of a supported format version. Replacing an existing name is refused."""
        from privfin.jobs.scheduler import read_model_file

        validate_name("model", name)
        env = read_model_file(data)
        target = self.models_dir() / f"{name}.json"
        if target.exists():
            if target.read_bytes() == data:
                return self._model_info(name, env, data)
            raise ConfigError(f"a different model named {name!r} exists; pick another name")
        DirectoryArtifacts(self.models_dir()).put(f"{name}.json", data)
        return self._model_info(name, env, data)

    @staticmethod
    def _model_info(name: str, env: Mapping[str, Any], data: bytes) -> dict[str, Any]:
        import hashlib

        return {
            "name": name,
            "component": env.get("component"),
            "party": env.get("party"),
            "job": env.get("job"),
            "step": env.get("step"),
            "format_version": env.get("format_version"),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def list_models(self) -> list[dict[str, Any]]:
        from privfin.jobs.scheduler import read_model_file

        out = []
        d = self.models_dir()
        for path in sorted(d.glob("*.json")) if d.is_dir() else []:
            data = path.read_bytes()
            try:
                out.append(self._model_info(path.stem, read_model_file(data), data))
            except ConfigError:
                continue
        return out

    def request_restart(self, job: str, step: str, attempt: int, sender: str) -> str:
        """A party of ``step`` restarted it at ``attempt`` after a crash: rerun it here (and
        everything that depends on it). Reopens the job if it had finished here. Returns
        ``"ok"``, ``"stale"`` or a refusal reason."""
        spec = self.spec(job)
        if not isinstance(spec, PipelineSpec):
            return "no such pipeline job"
        st = spec.steps.get(step)
        if st is None or sender not in st.roles or self.config.party not in st.roles:
            return "not a step shared with the sender"
        decl = DECLARATIONS.get(st.component)
        if decl is None or decl.resumable:  # such a step resumes in place, never restarts
            return "the step resumes in place"
        if attempt > MAX_STEP_ATTEMPTS:
            return "too many attempts"
        proposal = self.negotiator.store.proposal(job)
        if proposal is None or proposal["status"] != "approved":  # revoked: nothing reruns
            return "the job is not approved here"
        rec = self._record(job)
        if rec is None or rec["status"] == "failed":
            return "job has failed here"
        with self._lock:
            pipe = self._pipes.get(job)
            if pipe is not None:
                return "ok" if pipe.restart(step, attempt, sender) else "stale"
            current = self.pipelines.step(job, step)
            if current is not None and current.attempt >= attempt:
                return "stale"
            # finished here (or not started yet): record the new attempt and run again
            rewind(
                self.pipelines,
                spec,
                self.config.party,
                step,
                attempt,
                self._restart_notifier(spec.job),
            )
            if rec["status"] == "done":
                self._set(job, status="running")
            self._start(spec, resumed=False)
        return "ok"

    def _deliver_restarts(self, backoff: dict[tuple[str, str], tuple[float, float]]) -> None:
        self.deliver_outbox(
            backoff,
            self.pipelines.pending_restarts(),
            key=lambda row: f"restart of {row['job']}/{row['step']}",
            send=lambda t, row: t.deliver_restart(
                row["job"], row["receiver"], row["step"], int(row["attempt"])
            ),
            done=lambda row: self.pipelines.restart_done(
                row["job"], row["receiver"], row["step"], int(row["attempt"])
            ),
        )

    def _failed(
        self,
        spec: AnySpec,
        token: CancelToken,
        exc: Exception,
        loading: bool,
        transport: HttpTransport,
    ) -> None:
        """Record a job's failure here and tell its other parties a generic reason."""
        party = self.config.party
        if token.cancelled and "shutting down" in token.reason:
            _log.info("job %s interrupted by shutdown; it resumes on restart", spec.job)
            return
        # A local fault (disk full) says so here; peers get "internal error", not a timeout.
        fault = self._faults.pop(spec.job, None) or disk_full(exc, str(self.config.state_dir))
        if fault is not None:
            exc = fault
        # The full message stays here (status readable by this node's identity only, and
        # the local log); peers get a generic reason.
        message = f"{type(exc).__name__}: {exc}"
        _log.error("job %s failed: %s", spec.job, message)
        cancelled = token.cancelled and fault is None and not self.mailbox.aborters(spec.job)
        self.record(
            Action.job_cancelled if cancelled else Action.job_failed,
            actor="scheduler",
            job=spec.job,
            evidence={"error": type(exc).__name__},
        )
        try:
            self._discard_secrets(spec.job)
            self._set(spec.job, status="failed", error=message)
            aborted = self.mailbox.aborters(spec.job)
        except Exception as store_exc:  # e.g. the disk is full: still tell the peers
            _log.error("job %s: cannot record the failure: %s", spec.job, store_exc)
            aborted = []
        origin = getattr(exc, "party", None)
        reason = peer_reason(
            party,
            exc,
            roles=dict.fromkeys(spec_parties(spec), ()),
            loading=loading,
            cancelled=token.cancelled and fault is None,
            timed_out=token.cancelled and fault is None and _JOB_TIMEOUT in str(token.reason),
            aborted_by=origin if isinstance(exc, ProtocolAbort) and origin in aborted else None,
        )
        receivers = [p for p in spec_parties(spec) if p != party and p not in aborted]
        _log.info("job %s: telling %s: %s", spec.job, ", ".join(receivers) or "nobody", reason)
        try:
            if self.failure_for_peer(spec.job) is None:
                with self.mailbox.engine.begin() as conn:
                    conn.execute(insert(peer_reasons).values(job=spec.job, reason=reason))
            self._queue_abort(spec.job, receivers, reason)
        except Exception as queue_exc:  # cannot queue (disk full): send once, now
            _log.error("job %s: abort not queued (%s); sending it once", spec.job, queue_exc)
            transport.abort(spec.job, party, receivers, reason)

    def _finished(self, job: str) -> None:
        """Retention at the end of a job (done or failed; not on shutdown, which resumes)."""
        rec = self._record(job)
        if rec is None or rec["status"] == "running":
            return
        if self.config.audit.seal_on_job_end:
            self.sealer.request()  # by the housekeeping thread: signing is off the job's path
            self.start_housekeeping()
            self._wake.set()
        if self.config.retention.payloads == "job_end":
            housekeeper = self._housekeeper
            if housekeeper is not None and housekeeper.is_alive():
                # Off the job's thread: deleting a large job's payloads takes seconds and
                # must not hold up its status or a peer still finishing.
                self._to_purge.append(job)
                self._wake.set()
            else:
                self._purge(job)
        self._discard_secrets(job)  # normally done already, before the status changed

    def _discard_secrets(self, job: str) -> None:
        """Delete ``job``'s secret checkpoints. Called before its status becomes done or
        failed, so whoever sees the end of a job never finds its keys still on disk."""
        root = Path(self.config.state_dir) / "jobs" / job
        try:
            gone = DirectoryArtifacts(root).discard_secrets()
            # a pipeline's steps keep their checkpoints in steps/<step>/a<attempt>/
            for attempt_dir in sorted(root.glob("steps/*/a*")):
                if attempt_dir.is_dir():
                    gone += DirectoryArtifacts(attempt_dir).discard_secrets()
        except OSError as exc:  # the job still ends; _finished tries again
            _log.error("job %s: cannot delete its secret checkpoints: %s", job, exc)
            return
        if gone:
            _log.info("job %s: deleted its secret checkpoints (%s)", job, ", ".join(gone))

    def fail(self, job: str, fault: PrivfinError) -> None:
        """Stop ``job`` because of a local fault (e.g. :class:`DiskFullError` while storing one
        of its messages): the local status and log say what happened, peers are told
        "internal error" at once instead of waiting for a timeout."""
        token = self._cancel.get(job)
        if token is not None and not token.cancelled:
            self._faults[job] = fault
            token.cancel(str(fault))


def parse_spec(raw: Any) -> AnySpec:
    """A submitted spec: a pipeline (has ``steps``) or a single-component job."""
    if isinstance(raw, dict) and "steps" in raw:
        return parse_spec_data(raw)
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid job spec: {exc}") from None


class LocalDatasetChecks:
    """A node's local checks of a pipeline: each dataset is registered here, the fields the
    job uses exist and may be used (JR/T 0171: never a C3 field; a C2 field only by a
    component that keeps it private), its usage policy allows every other party of the job
    and the job's purpose; each imported model exists."""

    def __init__(self, config: NodeConfig, registry: DatasetRegistry, spec: PipelineSpec) -> None:
        self.config = config
        self.registry = registry
        self.spec = spec

    def dataset(self, name: str, fields: list[str] | None, *, keeps_private: bool) -> None:
        info = self.registry.get(name)
        mine = self.spec.parties.get(self.config.party)
        for u in mine.datasets.values() if mine else []:
            if u.name == name and u.legal_basis is not None:
                check_legal_basis(info, u.legal_basis)
        use = list(fields) if fields is not None else info.usable_fields(keeps_private=True)
        for partner in self.spec.parties:
            if partner != self.config.party:
                self.registry.check_use(
                    name,
                    use,
                    partner=partner,
                    purpose=self.spec.purpose,
                    keeps_private=keeps_private,
                )

    def model(self, name: str) -> None:
        path = Path(self.config.state_dir) / "models" / f"{validate_name('model', name)}.json"
        if not path.is_file():
            raise ConfigError(f"no imported model {name!r} on this node")
