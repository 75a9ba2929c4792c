"""Node configuration (``node.yaml``), validated once at the boundary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from privfin.config import Settings
from privfin.errors import ConfigError, StoreError
from privfin.federation.tls import Identity, fingerprint
from privfin.federation.transport import validate_name

if TYPE_CHECKING:  # imported where used: a client of the node (``privfin psi``) needs none
    from privfin.compute import ComputeBackend
    from privfin.federation.http import Peer
    from privfin.federation.mailbox import Quotas

__all__ = [
    "MAX_REQUEST_BODY",
    "STORE_FILE",
    "NodeConfig",
    "PeerConfig",
    "QuotaConfig",
    "RetentionConfig",
    "load_config",
]

# The largest body of one request (a message, or one chunk of a larger one): the HTTP transport
# sends anything above 4 MiB in chunks, so honest requests stay far below it.
MAX_REQUEST_BODY = 64 * 1024 * 1024
#: The node's SQLite store under ``state_dir`` when node.yaml names no ``store``.
STORE_FILE = "node.sqlite"


class PeerConfig(BaseModel):
    """A pinned peer: its URL, its certificate file and (optionally) the expected fingerprint."""

    model_config = ConfigDict(extra="forbid")
    url: str
    cert: Path
    fingerprint: str | None = None
    #: ``stream``: job messages go over one long-lived mutual-TLS connection to the peer's
    #: stream port (``stream_port``; host from ``url``); ``http`` (default): one request each.
    transport: Literal["http", "stream"] = "http"
    stream_port: int | None = Field(default=None, ge=1, le=65535)


class QuotaConfig(BaseModel):
    """What one peer can make this node store (see :class:`privfin.federation.mailbox.Quotas`).

    ``prejob_*``: a peer may send messages for a job before this node's operator submits it
    (``job run`` submits party by party); up to ``prejob_messages`` messages and
    ``prejob_bytes`` bytes per peer are kept for ``prejob_ttl`` seconds, beyond that the node
    answers 429 and the sender retries. ``job_*``: per peer and job (defaults 200,000
    messages / 8 GiB: far above what a protocol sends in one job, and a bound on what a party
    can park on this node's disk). ``chunk_*``: a peer's incomplete chunked messages;
    ``min_chunk``: every chunk but the last has at least this many bytes.

    ``uploads_per_peer``: request bodies one peer may have in flight at once;
    ``upload_buffer_bytes``: declared body bytes of all peers in flight at once (at least, and
    by default, twice the largest request body, ``min(max_message_size, 64 MiB)``; one peer may
    hold at most half of it). Beyond either the node answers 503 with ``Retry-After`` before
    reading the body; the sender retries. A body must arrive within ``upload_timeout +
    size / upload_min_rate`` seconds (30 s + 1 s per MiB), else 408 (the sender retries), so
    a peer cannot hold its slots with a trickle."""

    model_config = ConfigDict(extra="forbid")
    job_messages: int = Field(default=200_000, ge=1)
    job_bytes: int = Field(default=8 * 1024**3, ge=1024)
    prejob_messages: int = Field(default=64, ge=0)
    prejob_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    prejob_ttl: float = Field(default=600.0, gt=0)
    chunk_bytes: int = Field(default=1024**3, ge=1024)
    chunk_rows: int = Field(default=16384, ge=1)
    min_chunk: int = Field(default=64 * 1024, ge=1)
    uploads_per_peer: int = Field(default=4, ge=1)
    upload_buffer_bytes: int | None = Field(default=None, ge=2048)
    upload_timeout: float = Field(default=30.0, gt=0)
    upload_min_rate: int = Field(default=1024 * 1024, ge=1024)


class RetentionConfig(BaseModel):
    """What the node keeps of the messages it received.

    ``payloads: job_end`` (default) deletes message payloads when a job ends (done, failed or
    cancelled) and keeps their digests, sizes and times for audit; ``keep`` keeps them.
    Incomplete chunked messages are deleted after ``chunk_ttl`` seconds. The node sweeps every
    ``sweep_interval`` seconds. An abort this node sends is retried for ``abort_retry_for``
    seconds until every other party of the job has it."""

    model_config = ConfigDict(extra="forbid")
    payloads: Literal["job_end", "keep"] = "job_end"
    chunk_ttl: float = Field(default=3600.0, gt=0)
    sweep_interval: float = Field(default=60.0, gt=0)
    abort_retry_for: float = Field(default=3600.0, ge=0)


class OperatorConfig(BaseModel):
    """The operator listener (jobs, approvals, datasets, artifacts, audit; dashboard later):
    loopback by default, port ``port`` (default: the federation port + 1), a bearer token
    read from ``token_file`` (default ``state_dir/operator.token``, written 0600 at first
    start), plain HTTP unless ``tls`` (then the node's own certificate and key)."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    token_file: Path | None = None
    tls: bool = False


class AuditConfig(BaseModel):
    """Automatic sealing of the node's audit log (:mod:`privfin.audit.sealer`): a checkpoint
    signed with the node's identity key when a job ends (``seal_on_job_end``) and every
    ``seal_interval`` seconds (0: never on a timer), each only if the log grew since the last
    one; the signed heads go to ``heads_file`` (default ``state_dir/audit/heads.jsonl``),
    outside the database, where ``privfin audit verify`` and the dashboard check the log
    against them."""

    model_config = ConfigDict(extra="forbid")
    seal_on_job_end: bool = True
    seal_interval: float = Field(default=3600.0, ge=0)
    heads_file: Path | None = None


class AutoApprove(BaseModel):
    """A standing approval: proposals from ``partner`` for ``purpose`` that use only these of
    this node's ``datasets`` are approved without an operator (needed for scheduled jobs).
    Every field must match; the approval is signed and audited like an operator's."""

    model_config = ConfigDict(extra="forbid")
    partner: str
    purpose: str
    datasets: list[str] = []


class NodeConfig(BaseModel):
    """What a node needs to run.

    Example::

        party: bank_a
        host: 127.0.0.1
        port: 8443
        state_dir: ./state
        cert: ./bank_a.crt
        key: ./bank_a.key
        peers:
          bank_b: {url: "https://127.0.0.1:8444", cert: ./bank_b.crt}
        datasets:
          loans: ./loans.csv
        # store: postgresql://privfin@db.internal/bank_a   (default: state_dir/node.sqlite)

    ``store``: the node's database (mailbox, jobs, registry, audit log): a SQLAlchemy URL
    (``postgresql://user@host:5432/db``, password preferably in ``~/.pgpass``) or a SQLite file
    path (relative to node.yaml); by default the SQLite file ``node.sqlite`` in ``state_dir``.
    The node migrates it at start (:func:`privfin.store.upgrade`).
    """

    model_config = ConfigDict(extra="forbid")
    party: str
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    state_dir: Path
    cert: Path
    key: Path
    peers: dict[str, PeerConfig] = {}
    datasets: dict[str, Path] = {}
    mode: str = "production"
    compute: Literal["local", "thread", "serial"] = "local"
    compute_workers: int | None = Field(default=None, ge=1)
    allow_insecure: bool = False
    max_message_size: int = Field(default=256 * 1024 * 1024, ge=1024)
    message_timeout: float = Field(default=120.0, gt=0)
    quotas: QuotaConfig = QuotaConfig()
    retention: RetentionConfig = RetentionConfig()
    auto_approve: list[AutoApprove] = []
    operator: OperatorConfig = OperatorConfig()
    audit: AuditConfig = AuditConfig()
    #: This node's stream listener (peers configured with ``transport: stream`` connect to it
    #: on ``host``); None: no listener.
    stream_port: int | None = Field(default=None, ge=1, le=65535)
    store: str | None = None

    @field_validator("party")
    @classmethod
    def _party(cls, v: str) -> str:
        return validate_name("party", v)

    def store_url(self) -> str:
        """The node's store: ``store`` as configured, or the SQLite file ``node.sqlite`` in
        ``state_dir`` (what :func:`privfin.store.open_engine` takes)."""
        return self.store if self.store is not None else str(Path(self.state_dir) / STORE_FILE)

    def heads_file(self) -> Path:
        """Where the node keeps the signed heads of its audit log (:class:`AuditConfig`)."""
        configured = self.audit.heads_file
        return (
            configured if configured is not None else Path(self.state_dir) / "audit" / "heads.jsonl"
        )

    @property
    def identity(self) -> Identity:
        return Identity(self.party, self.cert, self.key)

    @property
    def settings(self) -> Settings:
        return Settings(mode=self.mode, allow_insecure=self.allow_insecure)

    def mailbox_quotas(self) -> Quotas:
        from privfin.federation.mailbox import Quotas

        q = self.quotas
        return Quotas(
            max_message_size=self.max_message_size,
            job_messages=q.job_messages,
            job_bytes=q.job_bytes,
            prejob_messages=q.prejob_messages,
            prejob_bytes=q.prejob_bytes,
            prejob_ttl=q.prejob_ttl,
            chunk_bytes=q.chunk_bytes,
            chunk_rows=q.chunk_rows,
            min_chunk=q.min_chunk,
            chunk_ttl=self.retention.chunk_ttl,
        )

    def request_body_limit(self) -> int:
        """The largest body of one request (message or chunk)."""
        return min(MAX_REQUEST_BODY, self.max_message_size)

    def upload_buffer(self) -> int:
        """Bytes of request bodies all peers may have in flight at once (at least two of the
        largest, so one peer holding its half never locks the others out)."""
        configured = self.quotas.upload_buffer_bytes
        return max(configured or 0, 2 * self.request_body_limit())

    def operator_port(self) -> int:
        return self.operator.port or self.port + 1

    def operator_url(self) -> str:
        scheme = "https" if self.operator.tls else "http"
        host = self.operator.host
        if host in ("0.0.0.0", "::"):  # noqa: S104 (what a client connects to)
            host = "127.0.0.1"
        return f"{scheme}://{host}:{self.operator_port()}"

    def peer_certs(self) -> dict[str, bytes]:
        """Each pinned peer's certificate; checks files and fingerprints."""
        out: dict[str, bytes] = {}
        for name, peer in self.peers.items():
            validate_name("party", name)
            try:
                pem = peer.cert.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read certificate of peer {name!r}: {exc}") from None
            if peer.fingerprint is not None and fingerprint(pem) != peer.fingerprint:
                raise ConfigError(
                    f"certificate {peer.cert} of peer {name!r} does not match the pinned "
                    f"fingerprint {peer.fingerprint}"
                )
            out[name] = pem
        return out

    def compute_backend(self) -> ComputeBackend:
        """A new compute backend of the configured kind (the caller closes it)."""
        from privfin.compute import LocalBackend, SerialBackend, ThreadBackend

        if self.compute == "serial":
            return SerialBackend()
        if self.compute == "thread":
            return ThreadBackend(self.compute_workers)
        return LocalBackend(self.compute_workers)

    def stream_peers(self) -> dict[str, tuple[str, int, bytes]]:
        """The peers reached over the streaming transport: ``{party: (host, port, cert)}``."""
        from urllib.parse import urlsplit

        certs = self.peer_certs()
        out: dict[str, tuple[str, int, bytes]] = {}
        for name, p in self.peers.items():
            if p.transport != "stream":
                continue
            if p.stream_port is None:
                raise ConfigError(f"peer {name!r} uses transport: stream but has no stream_port")
            host = urlsplit(p.url).hostname or "127.0.0.1"
            out[name] = (host, p.stream_port, certs[name])
        return out

    def transport_peers(self) -> dict[str, Peer]:
        from privfin.federation.http import Peer

        certs = self.peer_certs()
        return {n: Peer(n, p.url.rstrip("/"), certs[n]) for n, p in self.peers.items()}


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config; relative paths are relative to the file."""
    p = Path(path)
    try:
        raw: Any = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read node config {p}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"node config {p} must be a mapping")
    base = p.resolve().parent

    def fix(value: object) -> object:
        return str(base / str(value)) if not Path(str(value)).is_absolute() else value

    for k in ("state_dir", "cert", "key"):
        if k in raw:
            raw[k] = fix(raw[k])
    if isinstance(raw.get("store"), str) and raw["store"].strip() and "://" not in raw["store"]:
        raw["store"] = fix(raw["store"])  # a SQLite file path
    for peer in (raw.get("peers") or {}).values():
        if isinstance(peer, dict) and "cert" in peer:
            peer["cert"] = fix(peer["cert"])
    raw["datasets"] = {k: fix(v) for k, v in (raw.get("datasets") or {}).items()}
    op = raw.get("operator")
    if isinstance(op, dict) and op.get("token_file"):
        op["token_file"] = fix(op["token_file"])
    audit = raw.get("audit")
    if isinstance(audit, dict) and audit.get("heads_file"):
        audit["heads_file"] = fix(audit["heads_file"])
    try:
        config = NodeConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid node config {p}:\n{exc}") from None
    # Checked here, not by pydantic, whose message would echo the URL (and its password).
    if config.store is not None:
        from privfin.store import to_url

        try:
            if not config.store.strip():
                raise StoreError("the store is empty")
            to_url(config.store)
        except StoreError as exc:
            raise ConfigError(f"invalid node config {p}: store: {exc}") from None
    return config
