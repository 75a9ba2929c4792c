"""The SIMULATED enclave's evidence: a local "simulation root" stands in for the CPU vendor.

Evidence from here proves nothing about hardware: it only says that a process holding a key
certified by the local simulation root claimed a measurement. It is labelled ``simulated`` in
every result, log line and report, and every policy refuses it unless the policy *and* the
process settings explicitly allow insecure modes (:mod:`privfin.config`).

Format: JSON ``{"format": "privfin-simulated-tee-v1", "body": <base64 canonical JSON>,
"signature": <hex DER ECDSA P-256/SHA-256>, "certificate": <PEM platform cert>}``; the body holds
``measurement`` (hex SHA-384), ``signer``, ``debug``, ``report_data`` (hex, 64 bytes) and
``issued_at`` (ISO 8601 UTC).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privfin.tee._x509 import iso, load_pem_certificates, verify_chain, verify_ecdsa
from privfin.tee.errors import EvidenceFormatError
from privfin.tee.result import AttestationResult, Platform, utc

__all__ = [
    "FORMAT",
    "SimulationRoot",
    "make_simulated_evidence",
    "verify_simulated",
]

FORMAT = "privfin-simulated-tee-v1"
ROOT_NAME = "privfin SIMULATED TEE root (not hardware)"
MAX_EVIDENCE_BYTES = 16 * 1024


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True, repr=False)
class SimulationRoot:
    """The local stand-in for a CPU vendor's root key. Holds its private key; ``repr`` hides
    it. Give :attr:`certificate` to verifiers that should accept simulated evidence."""

    _key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, *, now: datetime | None = None) -> SimulationRoot:
        key = ec.generate_private_key(ec.SECP256R1())
        start = utc(now) - timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(ROOT_NAME))
            .issuer_name(_name(ROOT_NAME))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue_platform_key(
        self, *, now: datetime | None = None, days: int = 1
    ) -> tuple[bytes, bytes]:
        """A fresh "simulated CPU" attestation key and its certificate, as PEM (private key,
        certificate) to hand to the simulated enclave process."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = utc(now) - timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("privfin SIMULATED enclave platform key"))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem_key, cert.public_bytes(serialization.Encoding.PEM)


def make_simulated_evidence(
    platform_key_pem: bytes,
    platform_cert_pem: bytes,
    *,
    measurement: bytes,
    signer: bytes,
    report_data: bytes,
    debug: bool = False,
    now: datetime | None = None,
) -> bytes:
    """Evidence signed with the simulated platform key (run inside the simulated enclave)."""
    if len(measurement) != 48 or len(signer) != 32 or len(report_data) != 64:
        raise ValueError("measurement 48 bytes, signer 32 bytes, report data 64 bytes")
    key = serialization.load_pem_private_key(platform_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the platform key must be an EC key")
    body = json.dumps(
        {
            "measurement": measurement.hex(),
            "signer": signer.hex(),
            "debug": debug,
            "report_data": report_data.hex(),
            "issued_at": iso(utc(now)),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    sig = key.sign(body, ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {
            "format": FORMAT,
            "body": base64.b64encode(body).decode(),
            "signature": sig.hex(),
            "certificate": platform_cert_pem.decode(),
        }
    ).encode()


def _field_hex(body: dict[str, object], key: str, size: int) -> bytes:
    value = body.get(key)
    if not isinstance(value, str):
        raise EvidenceFormatError(f"simulated evidence: {key} must be hex")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise EvidenceFormatError(f"simulated evidence: {key} is not hex") from None
    if len(raw) != size:
        raise EvidenceFormatError(f"simulated evidence: {key} must be {size} bytes")
    return raw


def verify_simulated(
    data: bytes, *, root: x509.Certificate, at: datetime | None = None
) -> AttestationResult:
    """Verify simulated evidence against the given simulation ``root`` (there is no pinned
    one: each deployment that enables simulation makes its own). The result is marked
    ``simulated=True``."""
    when = utc(at)
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceFormatError("simulated evidence is too large")
    try:
        outer = json.loads(data)
        if not isinstance(outer, dict) or outer.get("format") != FORMAT:
            raise EvidenceFormatError(f"not {FORMAT} evidence")
        body_raw = base64.b64decode(str(outer["body"]), validate=True)
        signature = bytes.fromhex(str(outer["signature"]))
        cert_pem = str(outer["certificate"]).encode()
        body = json.loads(body_raw)
    except (ValueError, KeyError, TypeError):
        raise EvidenceFormatError("simulated evidence is malformed") from None
    if not isinstance(body, dict):
        raise EvidenceFormatError("simulated evidence body must be an object")
    certs = load_pem_certificates(cert_pem)
    if len(certs) != 1:
        raise EvidenceFormatError("simulated evidence carries exactly one certificate")
    verify_chain(certs, root, when, "simulated platform key")
    verify_ecdsa(certs[0].public_key(), signature, body_raw, hashes.SHA256(), "simulated evidence")
    measurement = _field_hex(body, "measurement", 48)
    signer = _field_hex(body, "signer", 32)
    report_data = _field_hex(body, "report_data", 64)
    debug = body.get("debug")
    issued = body.get("issued_at")
    if not isinstance(debug, bool) or not isinstance(issued, str):
        raise EvidenceFormatError("simulated evidence: debug/issued_at have the wrong type")
    try:
        issued_at = utc(datetime.fromisoformat(issued.replace("Z", "+00:00")))
    except ValueError:
        raise EvidenceFormatError("simulated evidence: issued_at is not a time") from None
    return AttestationResult(
        platform=Platform.simulated,
        measurement=measurement.hex(),
        measurements={"component": measurement.hex()},
        signer=signer.hex(),
        debug=debug,
        tcb_status=None,
        advisory_ids=(),
        report_data=report_data,
        verified_at=when,
        valid_from=max(certs[0].not_valid_before_utc, root.not_valid_before_utc),
        valid_until=min(certs[0].not_valid_after_utc, root.not_valid_after_utc),
        checks=("simulated_chain", "simulated_signature"),
        details={"warning": "SIMULATED enclave: no hardware protection"},
        issued_at=issued_at,
        simulated=True,
    )
