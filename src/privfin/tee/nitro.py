"""AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) over a CBOR payload, signed
by a leaf certificate that chains through the document's ``cabundle`` to the pinned AWS Nitro
Enclaves root G1.

The COSE_Sign1 check is done here with ``cbor2`` and ``cryptography`` (Sig_structure
``["Signature1", protected, b"", payload]``, raw r‖s ES384 signature): it is a dozen lines,
and ``pycose`` (which also installs on Python 3.11) would add a pure-Python ECDSA dependency
without checking anything more.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.tee._x509 import (
    load_der_certificate,
    raw_ecdsa_to_der,
    verify_chain,
    verify_ecdsa,
)
from privfin.tee.errors import EvidenceFormatError, SignatureError, UntrustedRootError
from privfin.tee.result import AttestationResult, Platform, utc
from privfin.tee.roots import AWS_NITRO_ROOT_G1, pinned

__all__ = ["MAX_DOCUMENT_BYTES", "decode_document_bytes", "verify_nitro"]

#: A Nitro document is a few KiB; anything far larger is refused before decoding.
MAX_DOCUMENT_BYTES = 64 * 1024
#: Upper bound accepted for ``public_key``, ``user_data`` and ``nonce``. AWS's documentation
#: gives 1024 bytes for ``public_key`` and 512 for the other two, but the NSM of a real
#: enclave signed 1024-byte ``user_data``/``nonce`` (recorded evidence), so 1024 is accepted.
MAX_OPTIONAL_FIELD = 1024
_ES384 = -35
_COSE_ALG = 1
_COSE_SIGN1_TAG = 18


def decode_document_bytes(data: bytes) -> bytes:
    """The raw CBOR of a document given as raw bytes or as base64 text."""
    stripped = data.strip()
    if stripped[:1] in (b"\x84", b"\xd2"):  # CBOR array(4) or tag 18
        return data
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceFormatError("not a CBOR attestation document nor its base64") from None


def _bytes(payload: dict[str, Any], key: str, *, sizes: tuple[int, ...] = ()) -> bytes:
    value = payload.get(key)
    if not isinstance(value, bytes):
        raise EvidenceFormatError(f"Nitro document: field {key!r} must be a byte string")
    if sizes and len(value) not in sizes:
        raise EvidenceFormatError(f"Nitro document: field {key!r} has {len(value)} bytes")
    return value


def _optional(payload: dict[str, Any], key: str) -> bytes | None:
    if key not in payload:
        raise EvidenceFormatError(f"Nitro document: field {key!r} is missing")
    value = payload[key]
    if value is None:
        return None
    if not isinstance(value, bytes) or len(value) > MAX_OPTIONAL_FIELD:
        raise EvidenceFormatError(
            f"Nitro document: {key!r} must be null or at most {MAX_OPTIONAL_FIELD} bytes"
        )
    return value


def _parse(raw: bytes) -> tuple[bytes, bytes, bytes, dict[str, Any]]:
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise EvidenceFormatError(f"Nitro document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        outer = cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise EvidenceFormatError(f"Nitro document is not CBOR: {exc}") from None
    if isinstance(outer, cbor2.CBORTag):
        if outer.tag != _COSE_SIGN1_TAG:
            raise EvidenceFormatError(f"Nitro document: unexpected CBOR tag {outer.tag}")
        outer = outer.value
    if not isinstance(outer, list) or len(outer) != 4:
        raise EvidenceFormatError("Nitro document is not a COSE_Sign1 array of 4 items")
    protected, unprotected, payload_raw, signature = outer
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise EvidenceFormatError("COSE_Sign1: bad protected/unprotected headers")
    if not isinstance(payload_raw, bytes) or not isinstance(signature, bytes):
        raise EvidenceFormatError("COSE_Sign1: payload and signature must be byte strings")
    try:
        headers = cbor2.loads(protected)
        payload = cbor2.loads(payload_raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise EvidenceFormatError(f"COSE_Sign1: header or payload is not CBOR: {exc}") from None
    if not isinstance(headers, dict) or headers.get(_COSE_ALG) != _ES384:
        raise EvidenceFormatError("COSE_Sign1: the protected header must say alg ES384 (-35)")
    if len(signature) != 96:
        raise EvidenceFormatError(
            f"COSE_Sign1: an ES384 signature is 96 bytes, not {len(signature)}"
        )
    if not isinstance(payload, dict):
        raise EvidenceFormatError("Nitro document: payload is not a map")
    return protected, payload_raw, signature, payload


def verify_nitro(
    data: bytes,
    *,
    at: datetime | None = None,
    root: x509.Certificate | None = None,
) -> AttestationResult:
    """Verify an AWS Nitro Enclaves attestation document (raw CBOR, or base64 of it).

    Checks, in order: the COSE_Sign1 structure and ES384 header; the payload's fields, types
    and sizes; the certificate chain ``certificate`` ← ``cabundle[-1]`` ← … ← ``cabundle[0]``,
    with ``cabundle[0]`` byte-identical to the pinned AWS root (or ``root``); every certificate
    valid at ``at`` (default: now); the ES384 signature with the leaf key.

    ``debug`` is reported when PCR0, PCR1 and PCR2 are all zero, which is what the Nitro
    hypervisor reports for an enclave started in debug mode.

    Raises
    ------
    EvidenceFormatError, CertificateChainError, UntrustedRootError, NotValidAtTimeError,
    SignatureError
    """
    when = utc(at)
    trust = root if root is not None else pinned(AWS_NITRO_ROOT_G1)
    protected, payload_raw, signature, payload = _parse(decode_document_bytes(data))
    module_id = payload.get("module_id")
    if not isinstance(module_id, str) or not module_id:
        raise EvidenceFormatError("Nitro document: module_id must be a non-empty string")
    if payload.get("digest") != "SHA384":
        raise EvidenceFormatError("Nitro document: digest must be 'SHA384'")
    timestamp = payload.get("timestamp")
    if not isinstance(timestamp, int) or timestamp <= 0 or timestamp >= 2**63:
        raise EvidenceFormatError("Nitro document: timestamp must be a positive integer (ms)")
    pcrs = payload.get("pcrs")
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= 32:
        raise EvidenceFormatError("Nitro document: pcrs must be a map of 1 to 32 entries")
    for index, value in pcrs.items():
        if not isinstance(index, int) or not 0 <= index < 32:
            raise EvidenceFormatError("Nitro document: a PCR index must be 0..31")
        if not isinstance(value, bytes) or len(value) != 48:
            raise EvidenceFormatError(f"Nitro document: PCR{index} must be 48 bytes (SHA-384)")
    if 0 not in pcrs:
        raise EvidenceFormatError("Nitro document: PCR0 is missing")
    leaf_der = _bytes(payload, "certificate")
    bundle = payload.get("cabundle")
    if not isinstance(bundle, list) or not 1 <= len(bundle) <= 8:
        raise EvidenceFormatError("Nitro document: cabundle must hold 1 to 8 certificates")
    bundle_der = [c for c in bundle if isinstance(c, bytes)]
    if len(bundle_der) != len(bundle):
        raise EvidenceFormatError("Nitro document: cabundle entries must be byte strings")
    public_key = _optional(payload, "public_key")
    user_data = _optional(payload, "user_data")
    nonce = _optional(payload, "nonce")

    leaf = load_der_certificate(leaf_der)
    intermediates = [load_der_certificate(c) for c in bundle_der]
    if intermediates[0] != trust:
        raise UntrustedRootError(
            "Nitro document: cabundle[0] is not the pinned AWS Nitro Enclaves root"
        )
    chain = [leaf, *reversed(intermediates)]
    verify_chain(chain, trust, when, "Nitro attestation")

    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise SignatureError("Nitro document: the leaf key is not a P-384 key")
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload_raw])
    verify_ecdsa(key, raw_ecdsa_to_der(signature), to_sign, hashes.SHA384(), "COSE_Sign1")

    measurements = {f"pcr{i}": pcrs[i].hex() for i in sorted(pcrs)}
    zero = bytes(48)
    debug = all(pcrs.get(i, zero) == zero for i in (0, 1, 2))
    pcr8 = pcrs.get(8)
    valid_from = max(c.not_valid_before_utc for c in chain)
    valid_until = min(c.not_valid_after_utc for c in chain)
    return AttestationResult(
        platform=Platform.nitro,
        measurement=pcrs[0].hex(),
        measurements=measurements,
        signer=pcr8.hex() if pcr8 is not None and pcr8 != zero else None,
        debug=debug,
        tcb_status=None,
        advisory_ids=(),
        report_data=user_data or b"",
        verified_at=when,
        valid_from=valid_from,
        valid_until=valid_until,
        checks=("cose_structure", "certificate_chain", "root_pinned", "cose_signature"),
        details={"module_id": module_id, "chain_length": len(chain)},
        nonce=nonce,
        public_key=public_key,
        issued_at=datetime.fromtimestamp(timestamp / 1000, tz=UTC),
    )
