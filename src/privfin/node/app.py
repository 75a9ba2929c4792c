"""The node's HTTP API (FastAPI). Every request comes over mutual TLS; the caller is the party
whose pinned certificate it presented (see :mod:`privfin.node.server`)."""

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from privfin import __version__
from privfin.errors import ConfigError
from privfin.federation.mailbox import Mailbox, MessageConflict
from privfin.federation.tls import fingerprint, fingerprint_der
from privfin.federation.transport import MessageKey
from privfin.node.config import NodeConfig
from privfin.node.runner import JobRunner, parse_spec

__all__ = ["PEER_CERT_SCOPE_KEY", "create_app"]

PEER_CERT_SCOPE_KEY = "privfin.peer_cert_der"
audit = logging.getLogger("privfin.node.audit")


def create_app(config: NodeConfig, mailbox: Mailbox, runner: JobRunner) -> FastAPI:
    """Build the node's ASGI app."""
    app = FastAPI(title=f"privfin node {config.party}", version=__version__)
    known = {fingerprint(pem): name for name, pem in config.peer_certs().items()}
    known[fingerprint(config.cert.read_bytes())] = config.party

    def caller(request: Request) -> str:
        der = request.scope.get("extensions", {}).get(PEER_CERT_SCOPE_KEY)
        if not der:
            audit.warning("refused request without a client certificate: %s", request.url.path)
            raise HTTPException(401, "a client certificate is required")
        party = known.get(fingerprint_der(der))
        if party is None:
            audit.warning("refused unknown certificate %s", fingerprint_der(der))
            raise HTTPException(403, "certificate is not pinned by this node")
        claimed = request.headers.get("X-Privfin-Sender")
        if claimed is not None and claimed != party:
            audit.warning("party %s claimed to be %s; refused", party, claimed)
            raise HTTPException(403, f"certificate of {party!r} cannot send as {claimed!r}")
        return party

    def admin(party: Annotated[str, Depends(caller)]) -> str:
        if party != config.party:
            audit.warning("party %s tried to use the job API of %s", party, config.party)
            raise HTTPException(403, "only this node's own identity may manage its jobs")
        return party

    def message_key(
        job: str, component: str, tag: str, sender: str, receiver: str, seq: int, party: str
    ) -> MessageKey:
        if sender != party:
            audit.warning("party %s sent a message claiming sender %s; refused", party, sender)
            raise HTTPException(403, f"certificate of {party!r} cannot send as {sender!r}")
        if receiver != config.party:
            raise HTTPException(400, f"this node is {config.party!r}, not {receiver!r}")
        try:
            return MessageKey(job, component, tag, sender, receiver, seq)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

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
        try:
            stored = mailbox.put(key, body)
        except MessageConflict as exc:
            audit.warning("conflicting message from %s refused: %s", party, exc)
            raise HTTPException(409, str(exc)) from None
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
        chunk_limit = 64 * 1024 * 1024
        if total * chunk_limit < 1 or index >= total:
            raise HTTPException(400, "chunk index out of range")
        if total > 1 + config.max_message_size // 1024:
            raise HTTPException(413, "message larger than allowed")
        body = await read_body(request, chunk_limit)
        try:
            complete = mailbox.put_chunk(key, index, total, digest, body)
        except MessageConflict as exc:
            audit.warning("conflicting chunk from %s refused: %s", party, exc)
            raise HTTPException(409, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return JSONResponse({"complete": complete}, status_code=201)

    @app.post("/v1/abort/{job}")
    async def abort(request: Request, job: str, party: Annotated[str, Depends(caller)]) -> Any:
        try:
            data = await request.json()
            reason = str(data.get("reason", ""))[:900]
        except ValueError:
            reason = "(no reason)"
        mailbox.abort(job, party, reason)
        audit.info("party %s aborted job %s: %s", party, job, reason)
        return {"ok": True}

    @app.post("/v1/jobs")
    async def submit(request: Request, party: Annotated[str, Depends(admin)]) -> Any:
        try:
            spec = parse_spec(await request.json())
            return runner.submit(spec)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(400, f"malformed job spec: {exc}") from None

    @app.get("/v1/jobs/{job}")
    def job_status(job: str, party: Annotated[str, Depends(admin)]) -> Any:
        status = runner.status(job)
        if status is None:
            raise HTTPException(404, f"no job {job!r} on this node")
        return status

    @app.post("/v1/jobs/{job}/cancel")
    def cancel(job: str, party: Annotated[str, Depends(admin)]) -> Any:
        runner.cancel(job)
        return {"ok": True}

    return app
