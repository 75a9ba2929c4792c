"""X.509 helpers for attestation chains: loading (AMD's zero-serial certificates included),
one-link signature checks with a precise error, validity at an injected time, CRLs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.utils import CryptographyDeprecationWarning

from privfin.tee.errors import (
    CertificateChainError,
    CollateralError,
    EvidenceFormatError,
    NotValidAtTimeError,
    RevokedError,
    SignatureError,
    UntrustedRootError,
)

__all__ = [
    "check_crl",
    "check_time",
    "check_window",
    "fingerprint",
    "iso",
    "load_der_certificate",
    "load_pem_certificates",
    "name_of",
    "raw_ecdsa_to_der",
    "verify_chain",
    "verify_ecdsa",
    "verify_link",
]


def iso(at: datetime) -> str:
    """``at`` in UTC as ``YYYY-MM-DDTHH:MM:SSZ`` (milliseconds kept when present)."""
    at = at.astimezone(UTC)
    if at.microsecond:
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quiet_load(fn: object, data: bytes) -> list[x509.Certificate]:
    # AMD KDS issues VCEKs/VLEKs with serial number 0, which `cryptography` still loads but
    # flags with a CryptographyDeprecationWarning; that one warning is expected here.
    # Any other warning while parsing (e.g. a name attribute of the wrong length) means the
    # certificate is malformed: it is refused here, so it cannot warn later.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            if fn is x509.load_der_x509_certificate:
                certs = [x509.load_der_x509_certificate(data)]
            else:
                certs = x509.load_pem_x509_certificates(data)
            for cert in certs:
                _ = (cert.subject, cert.issuer, cert.extensions)
        except Exception as exc:  # any parse failure of foreign bytes is a format error
            raise EvidenceFormatError(f"not a valid certificate: {exc}") from None
    return certs


def load_der_certificate(data: bytes) -> x509.Certificate:
    return _quiet_load(x509.load_der_x509_certificate, data)[0]


def load_pem_certificates(data: bytes | str) -> list[x509.Certificate]:
    raw = data.encode() if isinstance(data, str) else data
    return _quiet_load(x509.load_pem_x509_certificates, raw)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def name_of(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def check_window(what: str, not_before: datetime, not_after: datetime, at: datetime) -> None:
    """Raise :class:`NotValidAtTimeError` unless ``not_before <= at <= not_after``."""
    if at < not_before:
        raise NotValidAtTimeError(
            f"{what} is not valid yet at {iso(at)}: its validity starts {iso(not_before)}",
            what=what,
            not_before=iso(not_before),
            not_after=iso(not_after),
        )
    if at > not_after:
        raise NotValidAtTimeError(
            f"{what} expired at {iso(not_after)}, before the verification time {iso(at)}",
            what=what,
            not_before=iso(not_before),
            not_after=iso(not_after),
        )


def check_time(cert: x509.Certificate, at: datetime, what: str) -> None:
    check_window(
        f"{what} certificate '{name_of(cert)}'",
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        at,
    )


def verify_link(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    """Check that ``issuer`` signed ``cert`` (names and signature); ``issuer`` must be a CA."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise CertificateChainError(
            f"{what}: certificate '{name_of(cert)}' is not signed by '{name_of(issuer)}' "
            f"({type(exc).__name__}: {exc})"
        ) from None
    try:
        bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    if not bc.ca:
        raise CertificateChainError(f"{what}: issuer '{name_of(issuer)}' is not a CA")


def verify_chain(
    chain: Sequence[x509.Certificate],
    root: x509.Certificate,
    at: datetime,
    what: str,
) -> None:
    """Verify ``chain`` (leaf first; it may or may not end with a copy of the root) up to the
    pinned ``root``: every link's signature, every certificate's validity at ``at``, and that
    a root copy in the chain is byte-identical to the pinned one."""
    if not chain:
        raise CertificateChainError(f"{what}: empty certificate chain")
    certs = list(chain)
    if certs[-1].subject == root.subject and certs[-1] != root:
        raise UntrustedRootError(
            f"{what}: the chain ends at a root named '{name_of(certs[-1])}' that is not the "
            f"pinned root (fingerprint {fingerprint(certs[-1])}, pinned {fingerprint(root)})"
        )
    if certs[-1] == root:
        certs = certs[:-1]
    if not certs:
        raise CertificateChainError(f"{what}: the chain holds only the root")
    if certs[-1].issuer != root.subject:
        raise UntrustedRootError(
            f"{what}: the chain's top certificate '{name_of(certs[-1])}' is issued by "
            f"'{certs[-1].issuer.rfc4514_string()}', not by the pinned root '{name_of(root)}'"
        )
    try:
        root.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise UntrustedRootError(f"{what}: the pinned root is not self-signed") from None
    full = [*certs, root]
    for cert, issuer in pairwise(full):
        try:
            verify_link(cert, issuer, what)
        except CertificateChainError as exc:
            if issuer is root:
                raise UntrustedRootError(str(exc)) from None
            raise
    for cert in full:
        check_time(cert, at, what)


def raw_ecdsa_to_der(raw: bytes) -> bytes:
    """An ECDSA signature given as r‖s (each half the length) in DER form."""
    if not raw or len(raw) % 2:
        raise EvidenceFormatError("an r||s ECDSA signature must have two halves")
    half = len(raw) // 2
    return utils.encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


def verify_ecdsa(
    key: object,
    signature_der: bytes,
    message: bytes,
    algorithm: hashes.HashAlgorithm,
    what: str,
) -> None:
    """ECDSA check with a :class:`SignatureError` naming ``what`` on failure."""
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError(f"{what}: the signing key is not an EC key")
    try:
        key.verify(signature_der, message, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise SignatureError(f"{what}: signature does not verify") from None


def check_crl(
    crl_der: bytes,
    issuer: x509.Certificate,
    subjects: Sequence[x509.Certificate],
    at: datetime,
    what: str,
) -> None:
    """Check a CRL: signed by ``issuer``, current at ``at``, and none of ``subjects`` (the
    certificates it covers) revoked."""
    try:
        crl = x509.load_der_x509_crl(crl_der)
    except ValueError as exc:
        raise CollateralError(f"{what}: not a DER CRL ({exc})") from None
    if crl.issuer != issuer.subject:
        raise CollateralError(
            f"{what}: CRL issued by '{crl.issuer.rfc4514_string()}', expected '{name_of(issuer)}'"
        )
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        raise SignatureError(f"{what}: the CRL signature does not verify")
    next_update = crl.next_update_utc
    if next_update is None:
        raise CollateralError(f"{what}: CRL has no nextUpdate")
    check_window(f"{what} CRL", crl.last_update_utc, next_update, at)
    for cert in subjects:
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise RevokedError(
                f"{what}: certificate '{name_of(cert)}' (serial {cert.serial_number:x}) is revoked"
            )
