"""Party identities and mutual-TLS contexts.

Each party has an ECDSA P-256 key (128-bit security) and a self-signed **leaf** certificate
whose common name is the party name: ``CA:FALSE``, key usage ``digitalSignature`` only,
extended key usage serverAuth + clientAuth, the node's host names as subject alternative names.
It cannot sign other certificates, so a pinned identity can never act as a CA for anything
else. Nodes **pin** their peers: a node's TLS server trusts exactly the certificates listed in
its config, and a client connecting to a peer trusts only that peer's certificate (so another
federation member cannot impersonate it); the pinned leaf is its own trust anchor
(``VERIFY_X509_PARTIAL_CHAIN``). Private keys are written with mode 0600 to a new file
(``O_EXCL``), synced and renamed into place; a symlink at the key path is refused. Keys never
leave the party.

Validity: :func:`validity_problem` says whether a certificate is expired or not yet valid
(with the date), and :func:`describe_tls_failure` turns a failed handshake into what happened
(a peer's or our own certificate expired on a date, or a certificate that is not the pinned
one), for the local operator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import logging
import os
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privfin.errors import ConfigError
from privfin.federation.transport import validate_name

__all__ = [
    "Identity",
    "cert_party",
    "client_context",
    "create_identity",
    "describe_tls_failure",
    "fingerprint",
    "fingerprint_der",
    "is_ca",
    "server_context",
    "validity_problem",
    "write_private_file",
]


@dataclass(frozen=True)
class Identity:
    """Paths of a party's key and certificate."""

    party: str
    cert: Path
    key: Path


def write_private_file(path: str | Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` safely: a new file (``O_EXCL``, ``O_NOFOLLOW``) created with
    ``mode`` next to it, ``fchmod`` to exactly ``mode`` (whatever the umask), fsync, then an
    atomic rename over ``path`` and an fsync of the directory. Refuses a symlink at ``path``
    (``rename`` would replace the link, but a reader might still follow an old one: the
    operator should know). A crash leaves either the old file or the new one, never a
    half-written or world-readable key.

    Raises
    ------
    ConfigError
        If ``path`` is a symlink or is not a regular file.
    """
    target = Path(path)
    if target.is_symlink():
        raise ConfigError(f"{target} is a symbolic link; refusing to write a key through it")
    if target.exists() and not target.is_file():
        raise ConfigError(f"{target} exists and is not a regular file")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def create_identity(
    party: str,
    directory: str | Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    valid_days: int = 825,
    overwrite: bool = False,
    not_before: dt.datetime | None = None,
) -> Identity:
    """Create ``<dir>/<party>.key`` (0600) and ``<dir>/<party>.crt`` for ``party``: a
    self-signed leaf certificate (``CA:FALSE``; digitalSignature; serverAuth + clientAuth;
    ``hosts`` as subject alternative names).

    ``hosts`` are the DNS names and IP addresses peers use to reach the node. ``not_before``
    (default: five minutes ago) is the start of the validity period (tests use it to make
    expired certificates).

    Concurrent calls for the same party and directory (two ``privfin init --force``) are
    serialised by an exclusive lock on ``<dir>/.<party>.lock`` held from the existence check to
    the write of both files, and the written pair is read back and checked, so the key and the
    certificate always match.

    Raises
    ------
    ConfigError
        If the key or certificate exists and ``overwrite`` is false, or a path is a symlink.
    """
    validate_name("party", party)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out / f"{party}.key", out / f"{party}.crt"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, party),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "privfin federation"),
        ]
    )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    lock = os.open(
        out / f".{party}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600
    )
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for path in (key_path, cert_path):
            if path.is_symlink():
                raise ConfigError(f"{path} is a symbolic link; refusing to write a key through it")
        if not overwrite and (os.path.lexists(key_path) or os.path.lexists(cert_path)):
            raise ConfigError(
                f"{key_path} or {cert_path} exists already; refusing to overwrite a key"
            )
        write_private_file(key_path, key_pem)
        write_private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        written = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
        stored = serialization.load_pem_private_key(key_path.read_bytes(), None).public_key()
        if written != stored:
            raise ConfigError(
                f"{key_path} and {cert_path} do not match after writing (another process wrote "
                "one of them without the lock); run privfin init --force again"
            )
    finally:
        os.close(lock)  # closing releases the lock
    return Identity(party, cert_path, key_path)


def _load(cert_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ConfigError(f"not a PEM certificate: {exc}") from None


def _date(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def validity_problem(cert_pem: bytes, *, now: dt.datetime | None = None) -> str | None:
    """``"expired on <date>"`` or ``"not valid before <date>"`` if ``cert_pem`` is outside its
    validity period at ``now`` (default: the current time); ``None`` if it is valid."""
    cert = _load(cert_pem)
    now = now or dt.datetime.now(dt.UTC)
    if now > cert.not_valid_after_utc:
        return f"expired on {_date(cert.not_valid_after_utc)}"
    if now < cert.not_valid_before_utc:
        return f"not valid before {_date(cert.not_valid_before_utc)}"
    return None


def is_ca(cert_pem: bytes) -> bool:
    """Whether a certificate says ``CA:TRUE`` (identities made before leaf certificates)."""
    try:
        bc = _load(cert_pem).extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return bool(bc.value.ca)


# OpenSSL verify codes and TLS alert reasons about validity periods.
_X509_V_ERR_CERT_NOT_YET_VALID = 9
_X509_V_ERR_CERT_HAS_EXPIRED = 10


def describe_tls_failure(
    exc: BaseException, peer: str, pinned_pem: bytes, own_pem: bytes | None = None
) -> str | None:
    """What a failed TLS handshake with ``peer`` means, for the local operator, or ``None`` if
    ``exc`` is not a TLS failure.

    - The peer's certificate is expired or not yet valid: says so, with the date of the pinned
      certificate (``peer`` must renew its identity and send the new certificate).
    - The peer refused our certificate as expired / not yet valid (a TLS alert), or our own
      certificate is outside its validity period: says so, with our date.
    - Otherwise a verification failure: the peer presented a certificate that is not the one
      pinned for it.
    """
    seen: BaseException | None = exc
    chain: list[BaseException] = []
    while seen is not None and len(chain) < 16:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    own = validity_problem(own_pem) if own_pem is not None else None
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            code = getattr(e, "verify_code", None)
            if code in (_X509_V_ERR_CERT_HAS_EXPIRED, _X509_V_ERR_CERT_NOT_YET_VALID):
                problem = validity_problem(pinned_pem) or (
                    "expired" if code == _X509_V_ERR_CERT_HAS_EXPIRED else "not yet valid"
                )
                return (
                    f"the certificate of {peer!r} {problem}: {peer!r} must create a new "
                    "identity (privfin init --force) and every node must pin the new certificate"
                )
            return f"{peer!r} presented a certificate that is not the one pinned for it: {e}"
    for e in chain:
        text = str(e).upper()
        if isinstance(e, ssl.SSLError) and (
            "CERTIFICATE_EXPIRED" in text or "CERTIFICATE EXPIRED" in text or own is not None
        ):
            detail = own or "expired"
            return (
                f"{peer!r} refused this node's certificate: it {detail}; create a new identity "
                "(privfin init --force), restart the node and give peers the new certificate"
            )
    return None


def fingerprint_der(der: bytes) -> str:
    """``sha256:<hex>`` of a DER certificate."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def fingerprint(cert_pem: bytes) -> str:
    """``sha256:<hex>`` of a PEM certificate's DER encoding."""
    return fingerprint_der(_load(cert_pem).public_bytes(serialization.Encoding.DER))


def cert_party(cert_pem: bytes) -> str:
    """The party name (common name) of a certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise ConfigError("certificate has no common name")
    return str(attrs[0].value)


def _base(purpose: ssl.Purpose, identity: Identity) -> ssl.SSLContext:
    # Not ssl.create_default_context: it loads the system's CA bundle (~150 certificates,
    # 0.05-0.5 s per context here), which pinning does not want: only the pinned peer
    # certificates are trust anchors (with hostname checks off, a system CA would otherwise
    # vouch for any certificate it signed).
    proto = (
        ssl.PROTOCOL_TLS_CLIENT if purpose == ssl.Purpose.SERVER_AUTH else ssl.PROTOCOL_TLS_SERVER
    )
    ctx = ssl.SSLContext(proto)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # peers are pinned by certificate, not by name
    ctx.verify_mode = ssl.CERT_REQUIRED
    # the pinned certificates are leaves (CA:FALSE), each its own trust anchor
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.load_cert_chain(str(identity.cert), str(identity.key))
    return ctx


_log = logging.getLogger("privfin.federation.tls")
_LOG_EVERY = 60.0  # seconds between two log lines about the same kind of refused handshake
_last_logged: dict[str, float] = {}


def _log_refused(exc: ssl.SSLCertVerificationError) -> None:
    code = getattr(exc, "verify_code", None)
    if code == _X509_V_ERR_CERT_HAS_EXPIRED:
        kind, text = "expired", "a client's certificate has expired"
    elif code == _X509_V_ERR_CERT_NOT_YET_VALID:
        kind, text = "not_yet_valid", "a client's certificate is not valid yet"
    else:
        kind, text = "unpinned", "a client presented a certificate this node does not pin"
    now = time.monotonic()
    if now - _last_logged.get(kind, -_LOG_EVERY) < _LOG_EVERY:  # a scanner cannot flood the log
        return
    _last_logged[kind] = now
    _log.warning(
        "TLS handshake refused: %s (%s); if it is a peer, it must create a new identity and "
        "every node must pin the new certificate",
        text,
        getattr(exc, "verify_message", "") or exc,
    )


class _ServerSSLObject(ssl.SSLObject):
    """Logs why a client's handshake was refused (expired, not yet valid, not pinned): the
    event loop would otherwise drop the reason silently."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except ssl.SSLCertVerificationError as exc:
            _log_refused(exc)
            raise


def server_context(identity: Identity, trusted: Sequence[bytes]) -> ssl.SSLContext:
    """TLS server context requiring a client certificate from ``trusted`` (PEM) certificates.
    A refused client certificate is logged with the reason (rate-limited)."""
    ctx = _base(ssl.Purpose.CLIENT_AUTH, identity)
    ctx.load_verify_locations(cadata="".join(c.decode() for c in trusted))
    ctx.sslobject_class = _ServerSSLObject
    return ctx


def client_context(identity: Identity, peer_cert: bytes) -> ssl.SSLContext:
    """TLS client context that presents ``identity`` and trusts only ``peer_cert`` (PEM)."""
    ctx = _base(ssl.Purpose.SERVER_AUTH, identity)
    ctx.load_verify_locations(cadata=peer_cert.decode())
    return ctx
