"""The node's HTTP API (FastAPI). Every request comes over mutual TLS; the caller is the party
whose pinned certificate it presented (see :mod:`privfin.node.server`).

Trust no peer: every name in a path is validated (``validate_name``: 1-64 characters, not
``.``/``..``) and every body is capped. A peer may send messages and aborts only for jobs it is
a party of, messages only for the job's component and only while the job runs here; a message
for a job this node has not started (yet) goes to the sender's small pre-job buffer (429 when
it is full: the sender retries until the job is submitted here). An abort for a job this node
does not have, or whose parties do not include the caller, gets 404 (the same answer, so a peer
cannot probe which jobs exist).

Bounded work before the body is read: a message or chunk must declare its ``Content-Length``
(at most ``min(max_message_size, 64 MiB)``: larger messages travel in chunks);
the sender, job, component and every quota (with the declared size) are checked first, and
the body is read only within the upload limits (per peer ``uploads_per_peer`` bodies and half
of ``upload_buffer_bytes``, all peers together ``upload_buffer_bytes``), so a refused message
costs no memory. Storing (SQLite, hashing) runs in a worker thread: the event loop keeps
answering other parties. Audit lines a peer can trigger are rate-limited per (peer, kind)
(:class:`privfin.node.logs.LogLimiter`).

Status codes a peer sees: 400 malformed name/body or chunk (every chunk but the last at least
``min_chunk`` bytes), 403 wrong sender or not a party of the job, 404 unknown job (aborts), 409
conflicting message, 408 body slower than upload_timeout + size / upload_min_rate, 410 the job
has ended here (the sender stops), 411 no Content-Length, 413
too large or job quota exhausted, 429 pre-job buffer (or chunks in flight) full, 503 too many
uploads in flight (both with ``Retry-After``; the sender retries), 507 this node cannot store
(disk full).
"""

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from privfin import __version__
from privfin.audit import Action
from privfin.errors import ConfigError, disk_full
from privfin.federation.mailbox import Mailbox, MessageConflict, MessageTooLarge, QuotaExceeded
from privfin.federation.tls import fingerprint, fingerprint_der
from privfin.federation.transport import MessageKey, validate_name
from privfin.node.config import NodeConfig
from privfin.node.logs import LogLimiter, peer_text
from privfin.node.negotiate import NotAParty, ProposalQuota
from privfin.node.runner import MAX_STEP_ATTEMPTS, JobRunner

__all__ = ["PEER_CERT_SCOPE_KEY", "UploadGate", "create_app"]

PEER_CERT_SCOPE_KEY = "privfin.peer_cert_der"
audit = logging.getLogger("privfin.node.audit")
MAX_ABORT_BODY = 4096
MAX_SPEC_BODY = 16 * 1024 * 1024
#: A peer's proposal (a real one is a few KiB; its spec has at most 256 steps).
MAX_PROPOSAL_BODY = 1024 * 1024
RETRY_AFTER = {"Retry-After": "1"}
#: Bodies up to this size are read before the checks (bounded by the upload gate); larger ones
#: are refused, if they are to be, before a byte is read.
SMALL_BODY = 256 * 1024


class UploadGate:
    """Request bodies in flight: at most ``per_peer`` per peer and ``budget`` declared bytes
    in all, of which one peer holds at most half (so one peer cannot lock the others out, and
    a single body up to ``budget // 2`` always fits for an idle peer). Used from the event
    loop only, so it needs no lock."""

    def __init__(self, per_peer: int, budget: int) -> None:
        self.per_peer = per_peer
        self.budget = budget
        self.total = 0
        self._peers: dict[str, tuple[int, int]] = {}

    def acquire(self, peer: str, size: int) -> bool:
        count, held = self._peers.get(peer, (0, 0))
        if (
            count >= self.per_peer
            or held + size > self.budget // 2
            or self.total + size > self.budget
        ):
            return False
        self._peers[peer] = (count + 1, held + size)
        self.total += size
        return True

    def release(self, peer: str, size: int) -> None:
        count, held = self._peers[peer]
        if count == 1:
            del self._peers[peer]
        else:
            self._peers[peer] = (count - 1, held - size)
        self.total -= size


def create_app(config: NodeConfig, mailbox: Mailbox, runner: JobRunner) -> FastAPI:
    """Build the node's ASGI app."""
    app = FastAPI(title=f"privfin node {config.party}", version=__version__)
    known = {fingerprint(pem): name for name, pem in config.peer_certs().items()}
    known[fingerprint(config.cert.read_bytes())] = config.party
    limiter = LogLimiter(audit)
    gate = UploadGate(config.quotas.uploads_per_peer, config.upload_buffer())
    ended: set[str] = set()  # jobs seen over here (an ended job never runs again)

    def warn(party: str, kind: str, msg: str, *args: object) -> None:
        if limiter.log(logging.WARNING, party, kind, msg, *args):
            # the audit entry names the kind of refusal and the (authenticated) party only
            runner.record_later(
                Action.message_refused,
                actor="node",
                party=party if party in known.values() else None,
                evidence={"kind": kind},
            )

    def caller(request: Request) -> str:
        der = request.scope.get("extensions", {}).get(PEER_CERT_SCOPE_KEY)
        if not der:
            warn(
                "?",
                "no-certificate",
                "refused request without a client certificate: %s",
                peer_text(request.url.path),
            )
            raise HTTPException(401, "a client certificate is required")
        party = known.get(fingerprint_der(der))
        if party is None:
            warn("?", "unknown-certificate", "refused unknown certificate %s", fingerprint_der(der))
            raise HTTPException(403, "certificate is not pinned by this node")
        claimed = request.headers.get("X-Privfin-Sender")
        if claimed is not None and claimed != party:
            shown = peer_text(claimed, 64)
            warn(party, "claimed-sender", "party %s claimed to be %s; refused", party, shown)
            raise HTTPException(403, f"certificate of {party!r} cannot send as {shown!r}")
        if party != config.party:
            runner.contacts.seen(party)
        return party

    def checked(kind: str, value: str) -> str:
        try:
            return validate_name(kind, value)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    def message_key(
        job: str, component: str, tag: str, sender: str, receiver: str, seq: int, party: str
    ) -> MessageKey:
        try:
            key = MessageKey(job, component, tag, sender, receiver, seq)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if sender != party:
            warn(
                party,
                "claimed-sender",
                "party %s sent a message claiming sender %s; refused",
                party,
                sender,
            )
            raise HTTPException(403, f"certificate of {party!r} cannot send as {sender!r}")
        if receiver != config.party:
            raise HTTPException(400, f"this node is {config.party!r}, not {receiver!r}")
        return key

    def admit_job(key: MessageKey, party: str) -> None:
        """The sender is a party of the job, the component is the job's, and the job has not
        ended here (an unknown job is left to the pre-job buffer). Runs in a worker thread."""
        job = key.job
        parties = runner.parties(job)
        if parties is None:
            return
        if party not in parties:
            warn(
                party,
                "not-a-party",
                "party %s sent a message for job %s it is not part of",
                party,
                job,
            )
            raise HTTPException(403, f"{party!r} is not a party of job {job!r}")
        refused = runner.admits(job, key.component, party)
        if refused is not None:
            warn(
                party,
                "component",
                "party %s sent a message for another component of job %s",
                party,
                job,
            )
            raise HTTPException(400, refused)
        if (job in ended or runner.ended(job)) and not mailbox.has(key):
            # (the retry of a message stored before the job ended is answered as a duplicate)
            ended.add(job)
            warn(party, "ended", "party %s sent a message for job %s, which has ended", party, job)
            raise HTTPException(410, f"job {job!r} has ended at {config.party!r}")

    quotas = config.mailbox_quotas()

    def store(put: Callable[[], Any], job: str, party: str) -> Any:
        try:
            return put()
        except MessageConflict as exc:
            warn(party, "conflict", "conflicting message refused: %s", exc)
            raise HTTPException(409, str(exc)) from None
        except MessageTooLarge as exc:
            warn(party, "too-large", "message refused: %s", exc)
            raise HTTPException(413, str(exc)) from None
        except QuotaExceeded as exc:
            limiter.log(logging.INFO, party, "deferred", "message deferred: %s", exc)
            raise HTTPException(429, str(exc), headers=RETRY_AFTER) from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        except Exception as exc:
            full = disk_full(exc, str(config.state_dir))
            if full is None:
                raise
            # Say what happened here; stop the job (its peers are told "internal error") and
            # answer 507 without the path, so the sender stops retrying instead of timing out.
            logging.getLogger("privfin.node").error("job %s: %s", job, full)
            runner.fail(job, full)
            raise HTTPException(507, f"{config.party}: internal error") from None

    async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
        body = await read_body(request, limit)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # (nesting deeper than the parser's stack)
            raise HTTPException(400, "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object")
        return data

    async def read_body(request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise HTTPException(413, f"message larger than {limit} bytes")
        parts: list[bytes] = []
        size = 0
        async for part in request.stream():
            parts.append(part)
            size += len(part)
            if size > limit:
                raise HTTPException(413, f"message larger than {limit} bytes")
        return b"".join(parts)

    def declared_length(request: Request, limit: int) -> int:
        length = request.headers.get("content-length")
        if length is None:
            raise HTTPException(411, "a message must declare its Content-Length")
        if not length.isdigit() or int(length) > limit:
            raise HTTPException(413, f"message larger than {limit} bytes")
        return int(length)

    async def receive(
        request: Request,
        key: MessageKey,
        party: str,
        limit: int,
        check: Callable[[int], None],
        put: Callable[[bytes], Any],
    ) -> Any:
        """Check everything that does not need the body, then read and store it within the
        upload limits; the database work runs in a worker thread."""
        size = declared_length(request, limit)
        if not gate.acquire(party, size):
            limiter.log(
                logging.INFO, party, "busy", "upload of %s deferred: too many in flight", party
            )
            raise HTTPException(
                503, f"{config.party!r} has too many uploads in flight; retry", headers=RETRY_AFTER
            )
        try:
            small = size <= SMALL_BODY

            def precheck() -> None:
                admit_job(key, party)
                store(lambda: check(size), key.job, party)

            def admit_and_put(body: bytes) -> Any:
                admit_job(key, party)
                return store(lambda: put(body), key.job, party)

            if not small:  # refused before a byte of a large body is read
                await run_in_threadpool(precheck)
            # A peer cannot hold its upload slots with a trickle: the body must arrive within
            # upload_timeout + size / upload_min_rate seconds.
            deadline = config.quotas.upload_timeout + size / config.quotas.upload_min_rate
            try:
                body = await asyncio.wait_for(read_body(request, size), deadline)
            except TimeoutError:
                limiter.log(logging.INFO, party, "slow", "upload from %s too slow; dropped", party)
                raise HTTPException(
                    408, f"the body did not arrive within {deadline:.0f} s"
                ) from None
            except ClientDisconnect:  # no traceback per dropped upload (a peer could flood)
                limiter.log(
                    logging.INFO, party, "disconnect", "upload from %s ended before its body", party
                )
                raise HTTPException(400, "the body ended early") from None
            if small:
                # Small bodies (within the upload gate's bounds) are read first and checked and
                # stored in one worker call: the same checks (put refuses all that precheck
                # does), one thread hop and one transaction per message instead of two.
                return await run_in_threadpool(admit_and_put, body)
            return await run_in_threadpool(store, lambda: put(body), key.job, party)
        finally:
            gate.release(party, size)

    @app.get("/health")
    def health(party: Annotated[str, Depends(caller)]) -> dict[str, Any]:
        return {"party": config.party, "status": "ok", "version": __version__}

    @app.put("/v1/messages/{job}/{component}/{tag}/{sender}/{receiver}/{seq}")
    async def put_message(
        request: Request,
        job: str,
        component: str,
        tag: str,
        sender: str,
        receiver: str,
        seq: int,
        party: Annotated[str, Depends(caller)],
    ) -> JSONResponse:
        key = message_key(job, component, tag, sender, receiver, seq, party)
        stored = await receive(
            request,
            key,
            party,
            config.request_body_limit(),
            lambda size: mailbox.precheck(key, size, quotas, runner.knows),
            lambda body: mailbox.put(key, body, quotas=quotas, known=runner.knows),
        )
        return JSONResponse({"stored": stored}, status_code=201 if stored else 200)

    @app.put("/v1/chunks/{job}/{component}/{tag}/{sender}/{receiver}/{seq}")
    async def put_chunk(
        request: Request,
        job: str,
        component: str,
        tag: str,
        sender: str,
        receiver: str,
        seq: int,
        party: Annotated[str, Depends(caller)],
        index: Annotated[int, Query(ge=0)],
        total: Annotated[int, Query(ge=1)],
        digest: Annotated[str, Query(pattern="^[0-9a-f]{64}$")],
    ) -> JSONResponse:
        key = message_key(job, component, tag, sender, receiver, seq, party)
        if index >= total:
            raise HTTPException(400, "chunk index out of range")
        if total > quotas.max_chunks():
            raise HTTPException(413, "message larger than allowed")
        # One chunk, and all chunks of the message together (checked by the mailbox before
        # it stores a chunk), stay within max_message_size; every chunk but the last is at
        # least min_chunk bytes.
        complete = await receive(
            request,
            key,
            party,
            config.request_body_limit(),
            lambda size: mailbox.precheck(key, size, quotas, runner.knows, chunk=(index, total)),
            lambda body: mailbox.put_chunk(
                key, index, total, digest, body, quotas=quotas, known=runner.knows
            ),
        )
        return JSONResponse({"complete": complete}, status_code=201)

    @app.post("/v1/abort/{job}")
    async def abort(request: Request, job: str, party: Annotated[str, Depends(caller)]) -> Any:
        checked("job", job)
        if party == config.party:
            raise HTTPException(400, "a node cancels its own jobs with /v1/jobs/{job}/cancel")
        parties = await run_in_threadpool(runner.parties, job)
        if parties is None or party not in parties:
            warn(
                party,
                "refused-abort",
                "refused abort of job %s by %s (not a party of it here)",
                job,
                party,
            )
            raise HTTPException(404, f"no job {job!r} of party {party!r} on this node")
        data = await read_json_object(request, MAX_ABORT_BODY)
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise HTTPException(400, "reason must be a string")
        await run_in_threadpool(runner.accept_abort, job, party, peer_text(reason) or "(no reason)")
        return {"ok": True}

    @app.get("/v1/abort/{job}")
    def peer_failure(job: str, party: Annotated[str, Depends(caller)]) -> Any:
        """Did ``job`` fail here? Asked by a party of the job that resumes it after a restart;
        the answer is the generic reason this node sent its peers."""
        checked("job", job)
        parties = runner.parties(job)
        if parties is None or party not in parties or party == config.party:
            raise HTTPException(404, f"no job {job!r} of party {party!r} on this node")
        reason = runner.failure_for_peer(job)
        return {"failed": reason is not None, "reason": reason}

    @app.post("/v1/restart/{job}")
    async def restart(request: Request, job: str, party: Annotated[str, Depends(caller)]) -> Any:
        """A party of a pipeline step restarted it under a new attempt (after a crash in a
        step that cannot resume in place): rerun it here at that attempt."""
        checked("job", job)
        if party == config.party:
            raise HTTPException(400, "a node restarts its own steps itself")
        parties = await run_in_threadpool(runner.parties, job)
        if parties is None or party not in parties:
            warn(party, "refused-restart", "refused restart of job %s by %s", job, party)
            raise HTTPException(404, f"no job {job!r} of party {party!r} on this node")
        data = await read_json_object(request, MAX_ABORT_BODY)
        step, attempt = data.get("step"), data.get("attempt")
        top = MAX_STEP_ATTEMPTS
        if not isinstance(step, str) or type(attempt) is not int or not 2 <= attempt <= top:
            raise HTTPException(400, f"restart needs a step name and an attempt in 2..{top}")
        outcome = await run_in_threadpool(runner.request_restart, job, step, attempt, party)
        if outcome not in ("ok", "stale"):
            warn(party, "refused-restart", "refused restart of %s/%s by %s", job, step, party)
            raise HTTPException(409, "restart refused")
        ended.discard(job)
        return {"ok": True, "outcome": outcome}

    # -- negotiation: federation side (peers)
    @app.post("/v1/proposals/{job}")
    async def receive_proposal(
        request: Request, job: str, party: Annotated[str, Depends(caller)]
    ) -> Any:
        """A proposal from its initiator (with the initiator's signed approval)."""
        checked("job", job)
        if party == config.party:
            raise HTTPException(400, "a node proposes its own jobs with POST /v1/proposals")
        size = declared_length(request, MAX_PROPOSAL_BODY)
        if not gate.acquire(party, size):  # bodies in flight are bounded as for messages
            raise HTTPException(503, "too many uploads in flight; retry", headers=RETRY_AFTER)
        try:
            data = await read_json_object(request, size)
        finally:
            gate.release(party, size)
        spec = data.get("spec")
        if not isinstance(spec, str) or f'"job":{json.dumps(job)}' not in spec:
            raise HTTPException(400, "the proposal's spec must name this job")
        try:
            await run_in_threadpool(runner.negotiator.receive_proposal, party, data, job)
        except ProposalQuota as exc:
            warn(party, "proposal-quota", "deferred proposal %s from %s: %s", job, party, exc)
            raise HTTPException(429, "too many proposals", headers=RETRY_AFTER) from None
        except ConfigError as exc:
            warn(party, "proposal", "refused a proposal of %s from %s: %s", job, party, exc)
            raise HTTPException(422, "proposal refused") from None
        return {"ok": True}

    @app.post("/v1/decisions/{job}")
    async def receive_decision(
        request: Request, job: str, party: Annotated[str, Depends(caller)]
    ) -> Any:
        """A party's signed decision (approve, reject, revoke) on a proposal."""
        checked("job", job)
        if party == config.party:
            raise HTTPException(400, "a node decides with POST /v1/proposals/{job}/<decision>")
        data = await read_json_object(request, MAX_ABORT_BODY)
        if data.get("job") != job:
            raise HTTPException(400, "the decision must name this job")
        try:
            outcome = await run_in_threadpool(runner.negotiator.receive_decision, party, data)
        except NotAParty:  # the same answer as for a job this node does not have
            warn(party, "decision", "refused a decision on %s from %s (not a party)", job, party)
            outcome = "unknown"
        except ConfigError as exc:
            warn(party, "decision", "refused a decision on %s from %s: %s", job, party, exc)
            raise HTTPException(422, "decision refused") from None
        if outcome == "unknown":
            raise HTTPException(404, f"no proposal {job!r} here yet")
        return {"ok": True}

    return app
