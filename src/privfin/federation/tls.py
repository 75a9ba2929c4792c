"""Party identities and mutual-TLS contexts.

Each party has an ECDSA P-256 key (128-bit security) and a self-signed certificate whose common
name is the party name. Nodes **pin** their peers: a node's TLS server trusts exactly the
certificates listed in its config, and a client connecting to a peer trusts only that peer's
certificate (so another federation member cannot impersonate it). Private keys are written with
mode 0600 and never leave the party.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
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
    "fingerprint",
    "fingerprint_der",
    "server_context",
]


@dataclass(frozen=True)
class Identity:
    """Paths of a party's key and certificate."""

    party: str
    cert: Path
    key: Path


def create_identity(
    party: str,
    directory: str | Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    valid_days: int = 825,
    overwrite: bool = False,
) -> Identity:
    """Create ``<dir>/<party>.key`` (0600) and ``<dir>/<party>.crt`` for ``party``.

    ``hosts`` are the DNS names and IP addresses peers use to reach the node.
    """
    validate_name("party", party)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out / f"{party}.key", out / f"{party}.crt"
    if not overwrite and (key_path.exists() or cert_path.exists()):
        raise ConfigError(f"{key_path} or {cert_path} exists already; refusing to overwrite a key")
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
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
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
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(party, cert_path, key_path)


def fingerprint_der(der: bytes) -> str:
    """``sha256:<hex>`` of a DER certificate."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def fingerprint(cert_pem: bytes) -> str:
    """``sha256:<hex>`` of a PEM certificate's DER encoding."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ConfigError(f"not a PEM certificate: {exc}") from None
    return fingerprint_der(cert.public_bytes(serialization.Encoding.DER))


def cert_party(cert_pem: bytes) -> str:
    """The party name (common name) of a certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise ConfigError("certificate has no common name")
    return str(attrs[0].value)


def _base(purpose: ssl.Purpose, identity: Identity) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # peers are pinned by certificate, not by name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(identity.cert), str(identity.key))
    return ctx


def server_context(identity: Identity, trusted: Sequence[bytes]) -> ssl.SSLContext:
    """TLS server context requiring a client certificate from ``trusted`` (PEM) certificates."""
    ctx = _base(ssl.Purpose.CLIENT_AUTH, identity)
    ctx.load_verify_locations(cadata="".join(c.decode() for c in trusted))
    return ctx


def client_context(identity: Identity, peer_cert: bytes) -> ssl.SSLContext:
    """TLS client context that presents ``identity`` and trusts only ``peer_cert`` (PEM)."""
    ctx = _base(ssl.Purpose.SERVER_AUTH, identity)
    ctx.load_verify_locations(cadata=peer_cert.decode())
    return ctx
