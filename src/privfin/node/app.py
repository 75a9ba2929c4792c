"""The node's HTTP API (FastAPI). Every request comes over mutual TLS; the caller is the party
whose pinned certificate it presented (see :mod:`privfin.node.server`).

Trust no peer: every name in a path is validated (``validate_name``: 1-64 characters, not
``.``/``..``) and every body is capped. A peer may send messages and aborts only for jobs it is
a party of; a message for a job this node has not started (yet) goes to the sender's small
pre-job buffer (429 when it is full: the sender retries until the job is submitted here). An
abort for a job this node does not have, or whose parties do not include the caller, gets 404
(the same answer, so a peer cannot probe which jobs exist).

Status codes a peer sees: 400 malformed name/body, 403 wrong sender or not a party of the job,
404 unknown job (aborts), 409 conflicting message, 413 too large or job quota exhausted, 429
pre-job buffer (or chunks in flight) full.
"""

import json
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from privfin import __version__
from privfin.errors import ConfigError, disk_full
from privfin.federation.mailbox import Mailbox, MessageConflict, MessageTooLarge, QuotaExceeded
from privfin.federation.tls import fingerprint, fingerprint_der
from privfin.federation.transport import MessageKey, validate_name
from privfin.node.config import NodeConfig
from privfin.node.logs import peer_text
from privfin.node.runner import JobRunner, parse_spec

__all__ = ["PEER_CERT_SCOPE_KEY", "create_app"]

PEER_CERT_SCOPE_KEY = "privfin.peer_cert_der"
audit = logging.getLogger("privfin.node.audit")
MAX_ABORT_BODY = 4096
MAX_SPEC_BODY = 16 * 1024 * 1024
MAX_CHUNK = 64 * 1024 * 1024


def create_app(config: NodeConfig, mailbox: Mailbox, runner: JobRunner) -> FastAPI:
    """Build the node's ASGI app."""
    app = FastAPI(title=f"privfin node {config.party}", version=__version__)
    known = {fingerprint(pem): name for name, pem in config.peer_certs().items()}
    known[fingerprint(config.cert.read_bytes())] = config.party

    def caller(request: Request) -> str:
        der = request.scope.get("extensions", {}).get(PEER_CERT_SCOPE_KEY)
        if not der:
            audit.warning(
                "refused request without a client certificate: %s", peer_text(request.url.path)
            )
            raise HTTPException(401, "a client certificate is required")
        party = known.get(fingerprint_der(der))
        if party is None:
            audit.warning("refused unknown certificate %s", fingerprint_der(der))
            raise HTTPException(403, "certificate is not pinned by this node")
        claimed = request.headers.get("X-Privfin-Sender")
        if claimed is not None and claimed != party:
            shown = peer_text(claimed, 64)
            audit.warning("party %s claimed to be %s; refused", party, shown)
            raise HTTPException(403, f"certificate of {party!r} cannot send as {shown!r}")
        return party

    def admin(party: Annotated[str, Depends(caller)]) -> str:
        if party != config.party:
            audit.warning("party %s tried to use the job API of %s", party, config.party)
            raise HTTPException(403, "only this node's own identity may manage its jobs")
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
            audit.warning("party %s sent a message claiming sender %s; refused", party, sender)
            raise HTTPException(403, f"certificate of {party!r} cannot send as {sender!r}")
        if receiver != config.party:
            raise HTTPException(400, f"this node is {config.party!r}, not {receiver!r}")
        parties = runner.parties(job)
        if parties is not None and party not in parties:
            audit.warning("party %s sent a message for job %s it is not part of", party, job)
            raise HTTPException(403, f"{party!r} is not a party of job {job!r}")
        return key

    quotas = config.mailbox_quotas()

    def store(put: Any, job: str) -> Any:
        try:
            return put()
        except MessageConflict as exc:
            audit.warning("conflicting message refused: %s", exc)
            raise HTTPException(409, str(exc)) from None
        except MessageTooLarge as exc:
            audit.warning("message refused: %s", exc)
            raise HTTPException(413, str(exc)) from None
        except QuotaExceeded as exc:
            audit.info("message deferred: %s", exc)
            raise HTTPException(429, str(exc)) from None
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
        except ValueError:
            raise HTTPException(400, "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the body must be a JSON object")
        return data

    async def read_body(request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise HTTPException(413, f"message larger than {limit} bytes")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise HTTPException(413, f"message larger than {limit} bytes")
        return bytes(body)

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
        body = await read_body(request, config.max_message_size)
        stored = store(lambda: mailbox.put(key, body, quotas=quotas, known=runner.knows), job)
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
        if total > 1 + config.max_message_size // 1024:
            raise HTTPException(413, "message larger than allowed")
        # One chunk, and all chunks of the message together (checked by the mailbox before
        # it stores a chunk), stay within max_message_size.
        body = await read_body(request, min(MAX_CHUNK, config.max_message_size))
        complete = store(
            lambda: mailbox.put_chunk(
                key, index, total, digest, body, quotas=quotas, known=runner.knows
            ),
            job,
        )
        return JSONResponse({"complete": complete}, status_code=201)

    @app.post("/v1/abort/{job}")
    async def abort(request: Request, job: str, party: Annotated[str, Depends(caller)]) -> Any:
        checked("job", job)
        if party == config.party:
            raise HTTPException(400, "a node cancels its own jobs with /v1/jobs/{job}/cancel")
        parties = runner.parties(job)
        if parties is None or party not in parties:
            audit.warning("refused abort of job %s by %s (not a party of it here)", job, party)
            raise HTTPException(404, f"no job {job!r} of party {party!r} on this node")
        data = await read_json_object(request, MAX_ABORT_BODY)
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise HTTPException(400, "reason must be a string")
        runner.accept_abort(job, party, peer_text(reason) or "(no reason)")
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

    @app.post("/v1/jobs")
    async def submit(
        request: Request,
        party: Annotated[str, Depends(admin)],
        check: Annotated[bool, Query()] = False,
    ) -> Any:
        """Record and start a job; with ``?check=true`` only say whether this node would."""
        data = await read_json_object(request, MAX_SPEC_BODY)
        try:
            spec = parse_spec(data)
            if check:
                runner.check(spec)
                return {"job": spec.job, "accepted": True}
            return runner.submit(spec)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(400, f"malformed job spec: {exc}") from None

    @app.get("/v1/jobs/{job}")
    def job_status(job: str, party: Annotated[str, Depends(admin)]) -> Any:
        status = runner.status(checked("job", job))
        if status is None:
            raise HTTPException(404, f"no job {job!r} on this node")
        return status

    @app.post("/v1/jobs/{job}/cancel")
    def cancel(job: str, party: Annotated[str, Depends(admin)]) -> Any:
        if not runner.cancel(checked("job", job)):
            raise HTTPException(404, f"no job {job!r} on this node")
        return {"ok": True}

    return app
