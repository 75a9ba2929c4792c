"""Intel DCAP quotes: SGX (quote v3, SGX report body) and TDX (quote v4 with a TD report 1.0,
v5 with a TD report 1.0 or 1.5), ECDSA P-256 attestation keys, PCK chain to the pinned Intel
SGX Root CA, TCB status from Intel collateral.

Verification steps (Intel's *Quote Verification* flow, done here in Python with
``cryptography``):

1. Parse the quote (header, report body, signature data), checking every length.
2. PCK certificate chain (certification data type 5, PEM) → pinned Intel SGX Root CA, each
   certificate valid at the verification time.
3. QE report signature by the PCK key; the QE report's ``report_data`` binds the attestation
   key: ``SHA-256(attestation_key ‖ qe_auth_data) ‖ 0³²``.
4. Quote signature (header ‖ body) by the attestation key.
5. With collateral: TCB info and QE identity signatures by the TCB Signing certificate (chained
   to the root), their issue/next-update window; the root CA CRL and PCK CA CRL (signature,
   window, PCK CA and PCK not revoked); FMSPC and PCE-ID of the PCK match the TCB info; the QE
   identity matches the QE report (MRSIGNER, ISVPRODID, masked MISCSELECT/ATTRIBUTES); the first
   TCB level not above the platform's SVNs gives the TCB status (for TDX, also the TDX module
   identity), converged with the QE's TCB status. No matching level → :class:`TcbStatusError`.

Without collateral, steps 1-4 run and the result has no TCB status. ``dcap-qvl`` (Phala's
Rust verifier, also on PyPI for Python 3.11) is used in the tests as an independent
cross-check of the TCB verdicts; it is not a runtime dependency, because it cannot check a
quote without full collateral and its errors are strings.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from privfin.tee._der import decode_oid, read_integer, read_tlv, read_tlvs
from privfin.tee._x509 import (
    check_crl,
    check_window,
    load_pem_certificates,
    name_of,
    raw_ecdsa_to_der,
    verify_chain,
    verify_ecdsa,
)
from privfin.tee.errors import (
    BindingError,
    CertificateChainError,
    CollateralError,
    EvidenceFormatError,
    TcbStatusError,
)
from privfin.tee.result import TCB_RANK, AttestationResult, Platform, TcbStatus, utc
from privfin.tee.roots import INTEL_SGX_ROOT_CA, pinned

__all__ = [
    "Collateral",
    "Quote",
    "decode_quote_bytes",
    "parse_quote",
    "verify_dcap",
]

MAX_QUOTE_BYTES = 64 * 1024
_HEADER = 48
_SGX_REPORT = 384
_TD10_REPORT = 584
_TD15_REPORT = 648
_TEE_SGX = 0x00
_TEE_TDX = 0x81
_ATT_KEY_ECDSA_P256 = 2
_INTEL_QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_CERT_PCK_CHAIN = 5
_CERT_QE_REPORT = 6
_SGX_EXT = "1.2.840.113741.1.13.1"
_SGX_EXT_TCB = _SGX_EXT + ".2"
_SGX_EXT_PCEID = _SGX_EXT + ".3"
_SGX_EXT_FMSPC = _SGX_EXT + ".4"
_SGX_EXT_CPUSVN = _SGX_EXT_TCB + ".18"
_SGX_EXT_PCESVN = _SGX_EXT_TCB + ".17"


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class EnclaveReport:
    """An SGX report body (384 bytes): the ISV enclave's, or the QE's."""

    raw: bytes
    cpu_svn: bytes
    misc_select: int
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes

    @classmethod
    def parse(cls, raw: bytes) -> EnclaveReport:
        if len(raw) != _SGX_REPORT:
            raise EvidenceFormatError("an SGX report body is 384 bytes")
        (misc,) = struct.unpack_from("<I", raw, 16)
        prod, svn = struct.unpack_from("<HH", raw, 256)
        return cls(
            raw=raw,
            cpu_svn=raw[0:16],
            misc_select=misc,
            attributes=raw[48:64],
            mr_enclave=raw[64:96],
            mr_signer=raw[128:160],
            isv_prod_id=prod,
            isv_svn=svn,
            report_data=raw[320:384],
        )

    @property
    def debug(self) -> bool:
        return bool(self.attributes[0] & 0x02)


@dataclass(frozen=True)
class TdReport:
    """A TD report (1.0: 584 bytes; 1.5: 648 bytes, adds TEE_TCB_SVN2 and MRSERVICETD)."""

    raw: bytes
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_service_td: bytes | None = None

    @classmethod
    def parse(cls, raw: bytes) -> TdReport:
        if len(raw) not in (_TD10_REPORT, _TD15_REPORT):
            raise EvidenceFormatError("a TD report is 584 (1.0) or 648 (1.5) bytes")
        o = 0

        def take(n: int) -> bytes:
            nonlocal o
            out = raw[o : o + n]
            o += n
            return out

        return cls(
            raw=raw,
            tee_tcb_svn=take(16),
            mr_seam=take(48),
            mr_signer_seam=take(48),
            seam_attributes=take(8),
            td_attributes=take(8),
            xfam=take(8),
            mr_td=take(48),
            mr_config_id=take(48),
            mr_owner=take(48),
            mr_owner_config=take(48),
            rtmrs=(take(48), take(48), take(48), take(48)),
            report_data=take(64),
            tee_tcb_svn2=take(16) if len(raw) == _TD15_REPORT else None,
            mr_service_td=take(48) if len(raw) == _TD15_REPORT else None,
        )

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes[0] & 0x01)


@dataclass(frozen=True)
class Quote:
    """A parsed DCAP quote. ``signed`` is the byte range the attestation key signs."""

    raw: bytes
    version: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    report: EnclaveReport | TdReport
    signed: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: EnclaveReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes

    @property
    def platform(self) -> Platform:
        return Platform.sgx if self.tee_type == _TEE_SGX else Platform.tdx


class _Reader:
    def __init__(self, data: bytes, offset: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = offset
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise EvidenceFormatError(f"DCAP quote truncated while reading {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])


def decode_quote_bytes(data: bytes) -> bytes:
    """Raw quote bytes from raw bytes or hex text (optionally ``0x``-prefixed)."""
    head = data[:2]
    if head in (b"\x03\x00", b"\x04\x00", b"\x05\x00"):
        return data
    text = data.strip()
    if text[:2].lower() == b"0x":
        text = text[2:]
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise EvidenceFormatError("not a DCAP quote (version 3-5) nor its hex") from None


def parse_quote(data: bytes) -> Quote:
    """Parse a DCAP quote (v3 SGX, v4/v5 SGX or TDX) with every length checked."""
    raw = decode_quote_bytes(data)
    if len(raw) > MAX_QUOTE_BYTES:
        raise EvidenceFormatError(f"a DCAP quote larger than {MAX_QUOTE_BYTES} bytes")
    r = _Reader(raw)
    version = r.u16("version")
    key_type = r.u16("attestation key type")
    tee_type = r.u32("TEE type")
    qe_svn = r.u16("QE SVN")
    pce_svn = r.u16("PCE SVN")
    vendor = r.take(16, "QE vendor id")
    r.take(20, "user data")
    if version not in (3, 4, 5):
        raise EvidenceFormatError(f"unsupported DCAP quote version {version}")
    if key_type != _ATT_KEY_ECDSA_P256:
        raise EvidenceFormatError(f"attestation key type {key_type} is not ECDSA P-256 (2)")
    if tee_type not in (_TEE_SGX, _TEE_TDX) or (version == 3 and tee_type != _TEE_SGX):
        raise EvidenceFormatError(f"TEE type 0x{tee_type:x} is not valid for quote v{version}")
    if vendor != _INTEL_QE_VENDOR:
        raise EvidenceFormatError("the quote's QE vendor id is not Intel's")
    report: EnclaveReport | TdReport
    if version == 5:
        body_type = r.u16("body type")
        body_size = r.u32("body size")
        sizes = {1: _SGX_REPORT, 2: _TD10_REPORT, 3: _TD15_REPORT}
        if sizes.get(body_type) != body_size:
            raise EvidenceFormatError(f"quote v5 body type {body_type} with size {body_size}")
        if (body_type == 1) != (tee_type == _TEE_SGX):
            raise EvidenceFormatError("quote v5 body type does not match its TEE type")
        body = r.take(body_size, "report body")
        report = EnclaveReport.parse(body) if body_type == 1 else TdReport.parse(body)
    elif tee_type == _TEE_SGX:
        report = EnclaveReport.parse(r.take(_SGX_REPORT, "report body"))
    else:
        report = TdReport.parse(r.take(_TD10_REPORT, "report body"))
    signed = raw[: r.pos]
    sig_len = r.u32("signature data length")
    end = r.pos + sig_len
    # A TDX quote buffer from the quote generation service is often zero-padded to a fixed
    # size: zero bytes after the signature data are accepted, anything else is refused.
    if end > len(raw) or any(raw[end:]):
        raise EvidenceFormatError(
            f"signature data length {sig_len} does not match the quote's size {len(raw)}"
        )
    raw = raw[:end]
    s = _Reader(raw, r.pos)
    signature = s.take(64, "quote signature")
    att_key = s.take(64, "attestation key")
    if version == 3:
        cert_data = s
    else:
        ctype = s.u16("certification data type")
        csize = s.u32("certification data size")
        if ctype != _CERT_QE_REPORT:
            raise EvidenceFormatError(f"certification data type {ctype}, expected 6")
        cert_data = _Reader(raw, s.pos, s.pos + csize)
        s.take(csize, "QE report certification data")
    qe_raw = cert_data.take(_SGX_REPORT, "QE report")
    qe_sig = cert_data.take(64, "QE report signature")
    auth_len = cert_data.u16("QE auth data size")
    auth = cert_data.take(auth_len, "QE auth data")
    inner_type = cert_data.u16("PCK certification data type")
    inner_size = cert_data.u32("PCK certification data size")
    if inner_type != _CERT_PCK_CHAIN:
        raise EvidenceFormatError(
            f"PCK certification data type {inner_type} is not supported (only 5, PEM chain)"
        )
    pck_pem = cert_data.take(inner_size, "PCK certificate chain")
    if cert_data.pos != cert_data.end:
        raise EvidenceFormatError("trailing bytes after the certification data")
    return Quote(
        raw=raw,
        version=version,
        tee_type=tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=vendor,
        report=report,
        signed=signed,
        signature=signature,
        attestation_key=att_key,
        qe_report=EnclaveReport.parse(qe_raw),
        qe_report_signature=qe_sig,
        qe_auth_data=auth,
        pck_chain_pem=pck_pem,
    )


# --------------------------------------------------------------------------- PCK extension


@dataclass(frozen=True)
class PckInfo:
    fmspc: bytes
    pce_id: bytes
    cpu_svn: tuple[int, ...]
    pce_svn: int


def _pck_info(cert: x509.Certificate) -> PckInfo:
    ext = None
    for e in cert.extensions:
        if e.oid.dotted_string == _SGX_EXT and isinstance(e.value, x509.UnrecognizedExtension):
            ext = e.value.value
    if ext is None:
        raise EvidenceFormatError("the PCK certificate has no SGX extension")
    tag, content, _ = read_tlv(ext)
    if tag != 0x30:
        raise EvidenceFormatError("SGX extension: expected a SEQUENCE")
    values: dict[str, bytes] = {}

    def walk(seq: bytes) -> None:
        for t, item in read_tlvs(seq):
            if t != 0x30:
                continue
            parts = read_tlvs(item)
            if len(parts) != 2 or parts[0][0] != 0x06:
                continue
            oid = decode_oid(parts[0][1])
            if oid == _SGX_EXT_TCB:
                walk(parts[1][1])
            else:
                values[oid] = bytes([parts[1][0]]) + parts[1][1]

    walk(content)
    try:
        fmspc = values[_SGX_EXT_FMSPC][1:]
        pce_id = values[_SGX_EXT_PCEID][1:]
        cpu_svn = tuple(values[_SGX_EXT_CPUSVN][1:])
        pce_raw = values[_SGX_EXT_PCESVN]
    except KeyError as exc:
        raise EvidenceFormatError(f"SGX extension lacks {exc.args[0]}") from None
    pce_svn = read_integer(bytes([pce_raw[0], len(pce_raw) - 1]) + pce_raw[1:])
    if len(fmspc) != 6 or len(pce_id) != 2 or len(cpu_svn) != 16:
        raise EvidenceFormatError("SGX extension: FMSPC, PCE-ID or CPUSVN has the wrong size")
    return PckInfo(fmspc=fmspc, pce_id=pce_id, cpu_svn=cpu_svn, pce_svn=pce_svn)


# --------------------------------------------------------------------------- collateral


def _extract_body(text: str, key: str) -> str:
    """The exact JSON text of the value of top-level ``key`` (the bytes Intel signed)."""
    marker = f'"{key}":'
    start = text.find(marker)
    if start < 0:
        raise CollateralError(f"collateral has no {key!r}")
    i = start + len(marker)
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    if i >= len(text) or text[i] != "{":
        raise CollateralError(f"collateral {key!r} is not an object")
    depth, in_str, esc = 0, False, False
    for j in range(i, len(text)):
        ch = text[j]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i : j + 1]
    raise CollateralError(f"collateral {key!r} is not closed")


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise CollateralError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CollateralError(f"{what} is not hex") from None


@dataclass(frozen=True)
class Collateral:
    """Intel DCAP collateral for one quote.

    ``tcb_info`` and ``qe_identity`` are the exact signed JSON texts; signatures are r‖s. The
    CRLs (DER) and issuer chains may be absent (partial collateral): the TCB status is then
    still computed, but the result's ``checks`` lack ``crl`` and ``details['crl_checked']``
    is False, which a production policy refuses.
    """

    tcb_info: str
    tcb_info_signature: bytes
    qe_identity: str
    qe_identity_signature: bytes
    tcb_signing_chain: tuple[x509.Certificate, ...] = ()
    pck_crl: bytes | None = None
    root_ca_crl: bytes | None = None
    pck_crl_issuer_chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_qvl_json(cls, text: str | bytes) -> Collateral:
        """Load dcap-qvl's ``QuoteCollateralV3`` JSON (hex CRLs and signatures)."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CollateralError(f"collateral is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise CollateralError("collateral JSON must be an object")
        try:
            tcb_chain = load_pem_certificates(doc["tcb_info_issuer_chain"])
            qe_chain = load_pem_certificates(doc["qe_identity_issuer_chain"])
            crl_chain = load_pem_certificates(doc["pck_crl_issuer_chain"])
            tcb_info, qe_identity = doc["tcb_info"], doc["qe_identity"]
        except (KeyError, TypeError) as exc:
            raise CollateralError(f"collateral lacks {exc}") from None
        except EvidenceFormatError as exc:
            raise CollateralError(f"collateral issuer chain: {exc}") from None
        if not isinstance(tcb_info, str) or not isinstance(qe_identity, str):
            raise CollateralError("tcb_info and qe_identity must be JSON strings")
        if [c.public_bytes(_DER) for c in tcb_chain] != [c.public_bytes(_DER) for c in qe_chain]:
            raise CollateralError("tcb_info and qe_identity have different issuer chains")
        return cls(
            tcb_info=tcb_info,
            tcb_info_signature=_hex(doc.get("tcb_info_signature"), "tcb_info_signature"),
            qe_identity=qe_identity,
            qe_identity_signature=_hex(doc.get("qe_identity_signature"), "qe_identity_signature"),
            tcb_signing_chain=tuple(tcb_chain),
            pck_crl=_hex(doc.get("pck_crl"), "pck_crl"),
            root_ca_crl=_hex(doc.get("root_ca_crl"), "root_ca_crl"),
            pck_crl_issuer_chain=tuple(crl_chain),
        )

    @classmethod
    def from_pcs(
        cls,
        tcb_info_response: str | bytes,
        qe_identity_response: str | bytes,
        tcb_signing_chain: Sequence[x509.Certificate],
        *,
        pck_crl: bytes | None = None,
        root_ca_crl: bytes | None = None,
        pck_crl_issuer_chain: Sequence[x509.Certificate] = (),
    ) -> Collateral:
        """Load Intel PCS responses (``{"tcbInfo": {...}, "signature": hex}`` and
        ``{"enclaveIdentity": {...}, "signature": hex}``) with the TCB Signing chain (PCS sends
        it in the ``TCB-Info-Issuer-Chain`` header)."""
        tcb_text = (
            tcb_info_response
            if isinstance(tcb_info_response, str)
            else (tcb_info_response.decode("utf-8", "strict"))
        )
        qe_text = (
            qe_identity_response
            if isinstance(qe_identity_response, str)
            else (qe_identity_response.decode("utf-8", "strict"))
        )
        try:
            tcb_sig = json.loads(tcb_text).get("signature")
            qe_sig = json.loads(qe_text).get("signature")
        except (ValueError, AttributeError) as exc:
            raise CollateralError(f"PCS response is not a JSON object: {exc}") from None
        return cls(
            tcb_info=_extract_body(tcb_text, "tcbInfo"),
            tcb_info_signature=_hex(tcb_sig, "tcbInfo signature"),
            qe_identity=_extract_body(qe_text, "enclaveIdentity"),
            qe_identity_signature=_hex(qe_sig, "enclaveIdentity signature"),
            tcb_signing_chain=tuple(tcb_signing_chain),
            pck_crl=pck_crl,
            root_ca_crl=root_ca_crl,
            pck_crl_issuer_chain=tuple(pck_crl_issuer_chain),
        )

    @classmethod
    def load(cls, path: Path) -> Collateral:
        """A dcap-qvl JSON file, or a directory with ``tcb_info.json``, ``qe_identity.json``
        (PCS responses), ``tcb_signing_chain.pem`` and optionally ``pck_crl.der``,
        ``root_ca_crl.der``, ``pck_crl_issuer_chain.pem``."""
        if path.is_file():
            return cls.from_qvl_json(path.read_bytes())
        if not path.is_dir():
            raise CollateralError(f"collateral {path} is neither a file nor a directory")

        def opt(name: str) -> bytes | None:
            p = path / name
            return p.read_bytes() if p.is_file() else None

        needed = ("tcb_info.json", "qe_identity.json", "tcb_signing_chain.pem")
        missing = [n for n in needed if not (path / n).is_file()]
        if missing:
            raise CollateralError(f"collateral directory {path} lacks {', '.join(missing)}")
        issuer = opt("pck_crl_issuer_chain.pem")
        return cls.from_pcs(
            (path / "tcb_info.json").read_bytes(),
            (path / "qe_identity.json").read_bytes(),
            load_pem_certificates((path / "tcb_signing_chain.pem").read_bytes()),
            pck_crl=opt("pck_crl.der"),
            root_ca_crl=opt("root_ca_crl.der"),
            pck_crl_issuer_chain=load_pem_certificates(issuer) if issuer else (),
        )


from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

_DER = Encoding.DER
_DER_PEM = Encoding.PEM


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise CollateralError(f"{what} must be an ISO 8601 time")
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise CollateralError(f"{what} is not an ISO 8601 time: {value!r}") from None


def _status(value: Any, what: str) -> TcbStatus:
    try:
        return TcbStatus(value)
    except ValueError:
        raise CollateralError(f"{what}: unknown TCB status {value!r}") from None


def _converge(platform: TcbStatus, other: TcbStatus) -> TcbStatus:
    """Intel's convergence of the platform's status with the QE's (or TDX module's)."""
    if other is TcbStatus.revoked:
        return TcbStatus.revoked
    if other is TcbStatus.out_of_date:
        if platform in (TcbStatus.up_to_date, TcbStatus.sw_hardening_needed):
            return TcbStatus.out_of_date
        if platform in (
            TcbStatus.configuration_needed,
            TcbStatus.configuration_and_sw_hardening_needed,
        ):
            return TcbStatus.out_of_date_configuration_needed
    return platform


def _masked_equal(value: bytes, expected: bytes, mask: bytes) -> bool:
    return len(value) == len(expected) == len(mask) and all(
        (v & m) == (e & m) for v, e, m in zip(value, expected, mask, strict=True)
    )


@dataclass(frozen=True)
class _Verdict:
    status: TcbStatus
    advisories: tuple[str, ...]
    details: dict[str, Any]
    windows: list[tuple[datetime, datetime]]
    checks: list[str]


def _check_signed_json(
    body: str,
    signature: bytes,
    chain: Sequence[x509.Certificate],
    root: x509.Certificate,
    at: datetime,
    what: str,
) -> tuple[dict[str, Any], tuple[datetime, datetime]]:
    if not chain:
        raise CollateralError(f"{what}: no TCB Signing certificate chain given")
    verify_chain(chain, root, at, f"{what} issuer")
    if len(signature) != 64:
        raise CollateralError(f"{what}: the signature must be 64 bytes (r||s)")
    verify_ecdsa(
        chain[0].public_key(), raw_ecdsa_to_der(signature), body.encode(), hashes.SHA256(), what
    )
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise CollateralError(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CollateralError(f"{what} must be a JSON object")
    issue = _parse_time(doc.get("issueDate"), f"{what} issueDate")
    nxt = _parse_time(doc.get("nextUpdate"), f"{what} nextUpdate")
    check_window(what, issue, nxt, at)
    return doc, (issue, nxt)


def _evaluate(
    quote: Quote,
    pck: PckInfo,
    collateral: Collateral,
    pck_chain: Sequence[x509.Certificate],
    root: x509.Certificate,
    at: datetime,
) -> _Verdict:
    checks: list[str] = []
    windows: list[tuple[datetime, datetime]] = []
    tdx = quote.tee_type == _TEE_TDX
    tcb, window = _check_signed_json(
        collateral.tcb_info,
        collateral.tcb_info_signature,
        collateral.tcb_signing_chain,
        root,
        at,
        "TCB info",
    )
    windows.append(window)
    qe_id, window = _check_signed_json(
        collateral.qe_identity,
        collateral.qe_identity_signature,
        collateral.tcb_signing_chain,
        root,
        at,
        "QE identity",
    )
    windows.append(window)
    windows.extend(
        (c.not_valid_before_utc, c.not_valid_after_utc) for c in collateral.tcb_signing_chain
    )
    checks += ["tcb_info_signature", "qe_identity_signature"]

    crl_checked = collateral.pck_crl is not None and collateral.root_ca_crl is not None
    if crl_checked:
        assert collateral.pck_crl is not None and collateral.root_ca_crl is not None
        from cryptography import x509 as _x

        check_crl(
            collateral.root_ca_crl,
            root,
            [*pck_chain[1:-1], *collateral.tcb_signing_chain[:1]],
            at,
            "Intel root CA",
        )
        check_crl(collateral.pck_crl, pck_chain[1], pck_chain[:1], at, "PCK CA")
        for der in (collateral.root_ca_crl, collateral.pck_crl):
            crl = _x.load_der_x509_crl(der)
            assert crl.next_update_utc is not None
            windows.append((crl.last_update_utc, crl.next_update_utc))
        checks.append("crl")

    # TCB info: platform, version, FMSPC, PCE-ID
    expected_id = "TDX" if tdx else "SGX"
    if tcb.get("id") != expected_id:
        raise BindingError(f"TCB info is for {tcb.get('id')!r}, the quote is {expected_id}")
    if tcb.get("version") != 3 or tcb.get("tcbType") != 0:
        raise CollateralError(
            f"TCB info version {tcb.get('version')}, type {tcb.get('tcbType')} (only version 3, "
            "type 0 is supported)"
        )
    if qe_id.get("version") != 2:
        raise CollateralError(f"QE identity version {qe_id.get('version')} (only 2 is supported)")
    if _hex(tcb.get("fmspc"), "TCB info fmspc") != pck.fmspc:
        raise BindingError(
            f"TCB info is for FMSPC {tcb.get('fmspc')}, the PCK certificate for {pck.fmspc.hex()}"
        )
    if _hex(tcb.get("pceId"), "TCB info pceId") != pck.pce_id:
        raise BindingError("TCB info PCE-ID differs from the PCK certificate's")

    # QE identity
    expected_qe = "TD_QE" if tdx else "QE"
    qe = quote.qe_report
    if qe_id.get("id") != expected_qe:
        raise BindingError(f"QE identity is for {qe_id.get('id')!r}, expected {expected_qe}")
    if _hex(qe_id.get("mrsigner"), "QE identity mrsigner") != qe.mr_signer:
        raise BindingError("the QE report's MRSIGNER is not the QE identity's")
    if qe_id.get("isvprodid") != qe.isv_prod_id:
        raise BindingError("the QE report's ISVPRODID is not the QE identity's")
    misc = struct.pack("<I", qe.misc_select)
    if not _masked_equal(
        misc[::-1],
        _hex(qe_id.get("miscselect"), "miscselect"),
        _hex(qe_id.get("miscselectMask"), "miscselectMask"),
    ):
        raise BindingError("the QE report's MISCSELECT does not match the QE identity")
    if not _masked_equal(
        qe.attributes,
        _hex(qe_id.get("attributes"), "attributes"),
        _hex(qe_id.get("attributesMask"), "attributesMask"),
    ):
        raise BindingError("the QE report's ATTRIBUTES do not match the QE identity")
    qe_status: TcbStatus | None = None
    qe_advisories: list[str] = []
    for level in qe_id.get("tcbLevels") or []:
        if qe.isv_svn >= int(level["tcb"]["isvsvn"]):
            qe_status = _status(level.get("tcbStatus"), "QE identity")
            qe_advisories = list(level.get("advisoryIDs") or [])
            break
    if qe_status is None:
        raise TcbStatusError(f"QE ISVSVN {qe.isv_svn} is below every QE identity TCB level")
    checks.append("qe_identity")

    # platform TCB level
    td = quote.report if isinstance(quote.report, TdReport) else None
    tee_svn = td.tee_tcb_svn if td is not None else b""
    status: TcbStatus | None = None
    advisories: list[str] = []
    level_date = None
    for level in tcb.get("tcbLevels") or []:
        lt = level.get("tcb") or {}
        sgx = [int(c["svn"]) for c in lt.get("sgxtcbcomponents") or []]
        if len(sgx) != 16:
            raise CollateralError("a TCB level must list 16 SGX TCB components")
        if pck.pce_svn < int(lt.get("pcesvn", 1 << 16)):
            continue
        if any(have < need for have, need in zip(pck.cpu_svn, sgx, strict=True)):
            continue
        if td is not None:
            tdxc = [int(c["svn"]) for c in lt.get("tdxtcbcomponents") or []]
            if len(tdxc) != 16:
                raise CollateralError("a TDX TCB level must list 16 TDX TCB components")
            start = 2 if tee_svn[1] > 0 else 0  # the module's own identity covers bytes 0-1
            if any(tee_svn[i] < tdxc[i] for i in range(start, 16)):
                continue
        status = _status(level.get("tcbStatus"), "TCB info")
        advisories = list(level.get("advisoryIDs") or [])
        level_date = level.get("tcbDate")
        break
    if status is None:
        raise TcbStatusError(
            "no TCB level of the collateral matches the platform (its TCB is older than "
            "every level Intel lists: TCB not supported / out of date)"
        )
    checks.append("tcb_level")
    details: dict[str, Any] = {
        "tcb_evaluation_data_number": tcb.get("tcbEvaluationDataNumber"),
        "tcb_date": level_date,
        "platform_tcb_status": status.value,
        "qe_tcb_status": qe_status.value,
        "crl_checked": crl_checked,
    }
    final = _converge(status, qe_status)

    if td is not None and tee_svn[1] > 0:
        module_id = f"TDX_{tee_svn[1]:02X}"
        module_status: TcbStatus | None = None
        for ident in tcb.get("tdxModuleIdentities") or []:
            if ident.get("id") != module_id:
                continue
            if _hex(ident.get("mrsigner"), "TDX module mrsigner") != td.mr_signer_seam:
                raise BindingError(f"MRSIGNERSEAM is not {module_id}'s")
            if not _masked_equal(
                td.seam_attributes,
                _hex(ident.get("attributes"), "TDX module attributes"),
                _hex(ident.get("attributesMask"), "TDX module attributesMask"),
            ):
                raise BindingError(f"SEAM attributes do not match {module_id}")
            for level in ident.get("tcbLevels") or []:
                if tee_svn[0] >= int(level["tcb"]["isvsvn"]):
                    module_status = _status(level.get("tcbStatus"), module_id)
                    break
            if module_status is None:
                raise TcbStatusError(f"TDX module {module_id} SVN {tee_svn[0]} has no TCB level")
        if module_status is None:
            raise TcbStatusError(f"the TCB info lists no TDX module identity {module_id}")
        details["tdx_module"] = module_id
        details["tdx_module_tcb_status"] = module_status.value
        final = _converge(final, module_status)
        checks.append("tdx_module_identity")
    if TCB_RANK[final] < TCB_RANK[status]:  # convergence never improves a status
        final = status
    merged = tuple(dict.fromkeys([*advisories, *qe_advisories]))
    return _Verdict(final, merged, details, windows, checks)


# --------------------------------------------------------------------------- verify


def verify_dcap(
    data: bytes,
    *,
    collateral: Collateral | None = None,
    at: datetime | None = None,
    root: x509.Certificate | None = None,
) -> AttestationResult:
    """Verify an SGX or TDX DCAP quote, with or without collateral (see the module doc).

    Raises
    ------
    EvidenceFormatError, CertificateChainError, UntrustedRootError, NotValidAtTimeError,
    SignatureError, BindingError, RevokedError, CollateralError, TcbStatusError
    """
    when = utc(at)
    trust = root if root is not None else pinned(INTEL_SGX_ROOT_CA)
    quote = parse_quote(data)
    pem = quote.pck_chain_pem.rstrip(b"\0")
    try:
        pck_chain = load_pem_certificates(pem)
    except EvidenceFormatError as exc:
        raise CertificateChainError(f"PCK certificate chain: {exc}") from None
    canonical = b"".join(c.public_bytes(_DER_PEM) for c in pck_chain)
    if pem.rstrip(b"\n") != canonical.rstrip(b"\n"):
        # Bytes outside the certificates (or a re-wrapped PEM) are signed by nothing: refuse
        # them rather than let them change unnoticed.
        raise EvidenceFormatError("the PCK certification data is not a canonical PEM chain")
    if len(pck_chain) != 3:
        raise CertificateChainError(
            f"the PCK chain must be PCK, PCK CA, root (3 certificates), got {len(pck_chain)}"
        )
    verify_chain(pck_chain, trust, when, "PCK")
    pck_chain = [*pck_chain[:2], trust]
    checks = ["quote_structure", "pck_chain"]
    pck_key = pck_chain[0].public_key()
    verify_ecdsa(
        pck_key,
        raw_ecdsa_to_der(quote.qe_report_signature),
        quote.qe_report.raw,
        hashes.SHA256(),
        "QE report",
    )
    checks.append("qe_report_signature")
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest() + bytes(32)
    if quote.qe_report.report_data != expected:
        raise BindingError("the QE report does not bind the quote's attestation key")
    checks.append("qe_binds_attestation_key")
    try:
        att_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b"\x04" + quote.attestation_key
        )
    except ValueError:
        raise EvidenceFormatError("the attestation key is not a P-256 point") from None
    verify_ecdsa(att_key, raw_ecdsa_to_der(quote.signature), quote.signed, hashes.SHA256(), "quote")
    checks.append("quote_signature")
    pck = _pck_info(pck_chain[0])

    windows = [(c.not_valid_before_utc, c.not_valid_after_utc) for c in pck_chain]
    status: TcbStatus | None = None
    advisories: tuple[str, ...] = ()
    details: dict[str, Any] = {
        "quote_version": quote.version,
        "qe_svn": quote.qe_svn,
        "pce_svn": quote.pce_svn,
        "fmspc": pck.fmspc.hex(),
        "pck_ca": name_of(pck_chain[1]),
        "qe_mrenclave": quote.qe_report.mr_enclave.hex(),
        "qe_mrsigner": quote.qe_report.mr_signer.hex(),
        "qe_isvprodid": quote.qe_report.isv_prod_id,
        "qe_isvsvn": quote.qe_report.isv_svn,
        "crl_checked": False,
    }
    if collateral is not None:
        verdict = _evaluate(quote, pck, collateral, pck_chain, trust, when)
        status, advisories = verdict.status, verdict.advisories
        details.update(verdict.details)
        windows += verdict.windows
        checks += verdict.checks

    report = quote.report
    measurements: dict[str, str]
    if isinstance(report, EnclaveReport):
        measurements = {
            "mrenclave": report.mr_enclave.hex(),
            "mrsigner": report.mr_signer.hex(),
        }
        measurement, signer = report.mr_enclave.hex(), report.mr_signer.hex()
        details.update(
            isvprodid=report.isv_prod_id,
            isvsvn=report.isv_svn,
            attributes=report.attributes.hex(),
            cpu_svn=report.cpu_svn.hex(),
        )
    else:
        measurements = {
            "mrtd": report.mr_td.hex(),
            **{f"rtmr{i}": r.hex() for i, r in enumerate(report.rtmrs)},
            "mrseam": report.mr_seam.hex(),
            "mrconfigid": report.mr_config_id.hex(),
            "mrowner": report.mr_owner.hex(),
            "mrownerconfig": report.mr_owner_config.hex(),
        }
        if report.mr_service_td is not None:
            measurements["mrservicetd"] = report.mr_service_td.hex()
        measurement, signer = report.mr_td.hex(), None
        details.update(
            tee_tcb_svn=report.tee_tcb_svn.hex(),
            td_attributes=report.td_attributes.hex(),
            xfam=report.xfam.hex(),
        )
    return AttestationResult(
        platform=quote.platform,
        measurement=measurement,
        measurements=measurements,
        signer=signer,
        debug=report.debug,
        tcb_status=status,
        advisory_ids=advisories,
        report_data=report.report_data,
        verified_at=when,
        valid_from=max(w[0] for w in windows),
        valid_until=min(w[1] for w in windows),
        checks=tuple(checks),
        details=details,
    )
