"""The node's operator API: jobs, approvals, datasets, artifacts, models, audit, health.

It listens on its own address — loopback by default (``operator:`` in node.yaml), plain HTTP
or TLS — separate from the federation port, which stays mutual-TLS-only and serves peers only
the federation endpoints (messages, aborts, restarts, proposals, decisions). A request needs
``Authorization: Bearer <token>`` with the token the node writes to ``operator.token`` in its
state directory (mode 0600) at its first start: whoever can read that file operates the node.
The OpenAPI document is at ``/openapi.json`` (``/docs`` renders it).
"""

from __future__ import annotations

import hmac
import json
import threading
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from privfin import __version__
from privfin.audit import Action, VerifyReport
from privfin.audit.sealer import read_heads
from privfin.errors import ConfigError
from privfin.federation.transport import validate_name
from privfin.node.config import NodeConfig
from privfin.node.runner import JobRunner, parse_spec
from privfin.node.tokens import TOKEN_FILE, ensure_token, read_token

__all__ = [
    "TOKEN_FILE",
    "create_operator_app",
    "ensure_token",
    "job_events",
    "read_token",
    "verify_audit",
]

MAX_SPEC_BODY = 16 * 1024 * 1024
MAX_SMALL_BODY = 4096
MAX_MODEL_BODY = 64 * 1024 * 1024
#: the longest a status request may wait for its job's end (``GET /v1/jobs/{job}?wait=``)
MAX_STATUS_WAIT = 30.0
_MAX_STATUS_WAITERS = 16


def _operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller presents the operator token (compared in constant time)."""
    token: str = request.app.state.token
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    party: str = request.app.state.party
    return party


Operator = Annotated[str, Depends(_operator)]


def create_operator_app(config: NodeConfig, runner: JobRunner) -> FastAPI:
    """The operator API of one node."""
    api = FastAPI(
        title=f"privfin node {config.party}: operator API",
        version=__version__,
        description="Jobs, approvals, datasets, artifacts, models and audit of one node.",
    )
    api.state.token = read_token(ensure_token(config))
    api.state.party = config.party

    def checked(kind: str, value: str) -> str:
        try:
            return validate_name(kind, value)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    async def read_body(request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise HTTPException(413, f"request body over {limit} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, f"request body over {limit} bytes")
        return body

    async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
        body = await read_body(request, limit)
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            raise HTTPException(400, "the body must be JSON") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object")
        return data

    @api.get("/health")
    def health(op: Operator) -> dict[str, Any]:
        return {"party": config.party, "version": __version__, "status": "ok"}

    @api.get("/v1/datasets")
    def datasets(op: Operator) -> Any:
        """The datasets registered on this node (schemas with JR/T 0171 levels, policies)."""
        return {"datasets": [d.public() for d in runner.registry.list()]}

    @api.get("/v1/datasets/{name}")
    def dataset(name: str, op: Operator) -> Any:
        try:
            return runner.registry.get(checked("dataset", name)).public()
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None

    @api.get("/v1/jobs")
    def list_jobs(op: Operator, status: str | None = None) -> Any:
        """This node's jobs, most recently changed first (``?status=running`` etc.)."""
        return {"jobs": runner.jobs(status)}

    @api.get("/v1/jobs/{job}/logs")
    def job_logs(job: str, op: Operator) -> Any:
        """The job's events at this node, from its audit log: proposal and decisions, data
        accesses, steps started and done, result deliveries, the end (and the local error)."""
        logs = job_events(runner, checked("job", job))
        if logs is None:
            raise HTTPException(404, f"no job {job!r} on this node")
        return logs

    @api.get("/v1/audit/verify")
    def audit_verify(op: Operator) -> Any:
        """Check this node's audit chain (checkpoint signatures with this node's key)."""
        report = verify_audit(config, runner)
        return {
            "ok": report.ok,
            "first_bad_seq": report.first_bad_seq,
            "reason": report.reason,
            "summary": str(report),
        }

    # -- negotiation: this node's operator
    @api.post("/v1/proposals")
    async def propose(request: Request, op: Operator) -> Any:
        """Propose a pipeline to its parties (this node approves it as the initiator)."""
        data = await read_json_object(request, MAX_SPEC_BODY)
        try:
            return await run_in_threadpool(runner.negotiator.propose, data)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None

    @api.get("/v1/proposals")
    def inbox(op: Operator, status: str | None = None) -> Any:
        """The approvals inbox: every proposal with exactly what it uses of this party."""
        return {"proposals": runner.negotiator.inbox(status)}

    @api.get("/v1/proposals/{job}")
    def proposal(job: str, op: Operator) -> Any:
        try:
            return runner.negotiator.view(checked("job", job))
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None

    @api.post("/v1/proposals/{job}/{decision}")
    async def decide(request: Request, job: str, decision: str, op: Operator) -> Any:
        """``approve``, ``reject`` or ``revoke`` (signed with this node's identity key)."""
        checked("job", job)
        if decision not in ("approve", "reject", "revoke"):
            raise HTTPException(404, "decision must be approve, reject or revoke")
        data = await read_json_object(request, MAX_SMALL_BODY)
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise HTTPException(400, "reason must be a string")
        try:
            return await run_in_threadpool(runner.negotiator.decide, job, decision, reason[:500])
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from None

    @api.post("/v1/jobs")
    async def submit(
        request: Request,
        op: Operator,
        check: Annotated[bool, Query()] = False,
    ) -> Any:
        """Record and start a job; with ``?check=true`` only say whether this node would."""
        data = await read_json_object(request, MAX_SPEC_BODY)
        try:
            spec = parse_spec(data)
            if check:
                runner.check(spec)
                return {"job": spec.job, "accepted": True}
            if "steps" in data:
                raise ConfigError(
                    "a pipeline starts only when every party approves it: propose it with "
                    "POST /v1/proposals (privfin job submit)"
                )
            return runner.submit(spec)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(400, f"malformed job spec: {exc}") from None

    # at most this many requests wait for a job's end at once (each holds a worker thread);
    # beyond, a request answers at once as without ``wait``
    waiters = threading.BoundedSemaphore(_MAX_STATUS_WAITERS)

    @api.get("/v1/jobs/{job}")
    def job_status(job: str, op: Operator, wait: float = 0.0) -> Any:
        """The job's status. ``wait`` (seconds, at most ``MAX_STATUS_WAIT``): if the job is
        running here, answer when it is done or failed, or after ``wait`` seconds (a client
        learns of the end at once, without polling)."""
        name = checked("job", job)
        if not 0.0 <= wait <= MAX_STATUS_WAIT:  # (NaN fails both)
            raise HTTPException(400, f"wait must be between 0 and {MAX_STATUS_WAIT} seconds")
        status = runner.status(name)
        if status is None:
            raise HTTPException(404, f"no job {job!r} on this node")
        if wait and status["status"] == "running" and waiters.acquire(blocking=False):
            try:
                if runner.wait_ended(name, wait):
                    status = runner.status(name) or status
            finally:
                waiters.release()
        # Already plain JSON (the result is stored as JSON text): rendered as it is, without
        # FastAPI's per-item encoder (1.2 core-s for a PSI result of 500k row numbers).
        return JSONResponse(status)

    @api.post("/v1/jobs/{job}/cancel")
    def cancel(job: str, op: Operator) -> Any:
        if not runner.cancel(checked("job", job)):
            raise HTTPException(404, f"no job {job!r} on this node")
        return {"ok": True}

    @api.get("/v1/jobs/{job}/artifacts")
    def job_artifacts(job: str, op: Operator) -> Any:
        """This party's output files of ``job`` (latest attempt of each step), with digests
        and lineage."""
        checked("job", job)
        if not runner.knows(job):
            raise HTTPException(404, f"no job {job!r} on this node")
        return {"job": job, "artifacts": [a.as_dict() for a in runner.pipelines.artifacts(job)]}

    @api.get("/v1/jobs/{job}/artifacts/{step}/{name}")
    def job_artifact(job: str, step: str, name: str, op: Operator) -> Any:
        checked("job", job)
        arts = {(a.step, a.name): a for a in runner.pipelines.artifacts(job)}
        art = arts.get((step, name))
        if art is None:
            raise HTTPException(404, f"job {job!r} has no output {step}.{name} here")
        path = runner.artifact_path(job, art.path)
        runner.record(
            Action.result_delivered,
            actor="operator",
            job=job,
            step=step,
            evidence={"output": name, "sha256": art.sha256},
        )
        return FileResponse(path, headers={"X-Privfin-Sha256": art.sha256})

    @api.put("/v1/models/{name}")
    async def import_model(request: Request, name: str, op: Operator) -> Any:
        """Import a model file (exported from an earlier job) under ``name`` for later jobs'
        scoring steps (``models.<alias>`` in a spec)."""
        checked("model", name)
        body = await read_body(request, MAX_MODEL_BODY)
        try:
            info = await run_in_threadpool(runner.import_model, name, body)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        await run_in_threadpool(
            runner.record,
            Action.artifact_imported,
            actor="operator",
            evidence={k: v for k, v in info.items() if isinstance(v, (str, int))},
        )
        return info

    @api.get("/v1/models")
    def list_models(op: Operator) -> Any:
        return {"models": runner.list_models()}

    from privfin.node.dashboard import mount_dashboard

    mount_dashboard(api, config, runner)
    return api


def job_events(runner: JobRunner, job: str) -> dict[str, Any] | None:
    """``job``'s events at this node from its audit log, and its local error (None: no such
    job here). What ``privfin job logs`` and the dashboard's job page show."""
    events = [
        {
            "seq": e.seq,
            "time": e.ts / 1e6,
            "action": e.action,
            "actor": e.actor,
            "step": e.step,
            "dataset": e.dataset,
            "party": e.party,
            "evidence": e.evidence,
        }
        for e in runner.audit.entries(job=job)
    ]
    status = runner.status(job)
    if not events and status is None:
        return None
    return {"job": job, "events": events, "error": (status or {}).get("error")}


def verify_audit(config: NodeConfig, runner: JobRunner) -> VerifyReport:
    """Walk this node's audit chain, checking checkpoint signatures with its own
    certificate's key (as ``privfin audit verify`` does)."""
    keys: list[ec.EllipticCurvePublicKey] = []
    try:
        key = x509.load_pem_x509_certificate(config.cert.read_bytes()).public_key()
    except (OSError, ValueError):
        key = None  # the chain is still checked; checkpoints are then reported unchecked
    if isinstance(key, ec.EllipticCurvePublicKey):
        keys.append(key)
    # the heads the node sealed itself, kept outside the database (config.audit)
    try:
        heads = read_heads(config.heads_file())
        return runner.audit.verify(keys=keys, heads=heads)
    except ConfigError as exc:  # a damaged or foreign heads file is a finding, not a crash
        seq, digest = runner.audit.head()
        return VerifyReport(
            ok=False,
            entries=max(seq, 0),
            head_seq=seq,
            head_hash=digest,
            checkpoints=0,
            signatures_checked=False,
            heads_checked=0,
            reason=str(exc),
        )
