"""AMD SEV-SNP attestation reports: a 1184-byte report signed (ECDSA P-384, SHA-384) by the
chip's VCEK, or a cloud provider's VLEK; VCEK ← ASK (VLEK ← ASVK) ← ARK with RSA-PSS, the ARK
pinned per product (Milan, Genoa, Turin).

The VCEK/VLEK is the caller's (fetched from AMD KDS by the host, or shipped with the report);
the ASK/ASVK may be given or taken from privfin's copies. Checks besides the signatures: the
report's ``reported_tcb`` equals the SPLs in the VCEK/VLEK, and for a VCEK its ``hwID`` equals
the report's ``chip_id`` (unless the guest asked for the chip id to be masked).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from privfin.tee._der import read_integer, read_tlv
from privfin.tee._x509 import name_of, verify_chain, verify_ecdsa
from privfin.tee.errors import (
    BindingError,
    CertificateChainError,
    EvidenceFormatError,
    SignatureError,
)
from privfin.tee.result import AttestationResult, Platform, utc
from privfin.tee.roots import (
    AMD_ARK_GENOA,
    AMD_ARK_MILAN,
    AMD_ARK_TURIN,
    AMD_ASK_GENOA,
    AMD_ASK_MILAN,
    AMD_ASK_TURIN,
    AMD_ASVK_MILAN,
    PinnedCert,
    pinned,
)

__all__ = ["REPORT_SIZE", "SnpReport", "parse_snp_report", "verify_snp"]

REPORT_SIZE = 1184
_SIGNED = 0x2A0
_POLICY_DEBUG = 1 << 19
_POLICY_SMT = 1 << 16
_POLICY_MIGRATE_MA = 1 << 18
_POLICY_SINGLE_SOCKET = 1 << 20

_OID_PRODUCT = "1.3.6.1.4.1.3704.1.2"
_OID_BL = "1.3.6.1.4.1.3704.1.3.1"
_OID_TEE = "1.3.6.1.4.1.3704.1.3.2"
_OID_SNP = "1.3.6.1.4.1.3704.1.3.3"
_OID_UCODE = "1.3.6.1.4.1.3704.1.3.8"
_OID_FMC = "1.3.6.1.4.1.3704.1.3.9"
_OID_HWID = "1.3.6.1.4.1.3704.1.4"

_ROOTS: dict[str, PinnedCert] = {
    "Milan": AMD_ARK_MILAN,
    "Genoa": AMD_ARK_GENOA,
    "Turin": AMD_ARK_TURIN,
}
_SIGNERS: dict[tuple[str, str], PinnedCert] = {
    ("Milan", "vcek"): AMD_ASK_MILAN,
    ("Milan", "vlek"): AMD_ASVK_MILAN,
    ("Genoa", "vcek"): AMD_ASK_GENOA,
    ("Turin", "vcek"): AMD_ASK_TURIN,
}


class SnpReport:
    """The fields of an SNP attestation report (versions 2 to 5) that verification uses."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != REPORT_SIZE:
            raise EvidenceFormatError(f"an SNP report is {REPORT_SIZE} bytes, not {len(raw)}")
        self.raw = raw
        self.version, self.guest_svn, self.policy = struct.unpack_from("<IIQ", raw, 0)
        if not 2 <= self.version <= 5:
            raise EvidenceFormatError(f"unsupported SNP report version {self.version}")
        self.family_id = raw[0x10:0x20]
        self.image_id = raw[0x20:0x30]
        self.vmpl, self.sig_algo = struct.unpack_from("<II", raw, 0x30)
        if self.sig_algo != 1:
            raise EvidenceFormatError(
                f"SNP signature algorithm {self.sig_algo} is not ECDSA P-384 with SHA-384 (1)"
            )
        self.current_tcb = raw[0x38:0x40]
        (self.platform_info,) = struct.unpack_from("<Q", raw, 0x40)
        (self.flags,) = struct.unpack_from("<I", raw, 0x48)
        self.report_data = raw[0x50:0x90]
        self.measurement = raw[0x90:0xC0]
        self.host_data = raw[0xC0:0xE0]
        self.id_key_digest = raw[0xE0:0x110]
        self.author_key_digest = raw[0x110:0x140]
        self.report_id = raw[0x140:0x160]
        self.report_id_ma = raw[0x160:0x180]
        self.reported_tcb = raw[0x180:0x188]
        self.chip_id = raw[0x1A0:0x1E0]
        self.committed_tcb = raw[0x1E0:0x1E8]
        self.current_build, self.current_minor, self.current_major = raw[0x1E8:0x1EB]
        self.signature = raw[_SIGNED : _SIGNED + 0x200]

    @property
    def signing_key(self) -> str:
        """``vcek``, ``vlek`` or ``none`` (flags bits 2-4)."""
        key = (self.flags >> 2) & 0x7
        return {0: "vcek", 1: "vlek"}.get(key, "none")

    @property
    def chip_id_masked(self) -> bool:
        return bool(self.flags & 0x2)

    @property
    def debug(self) -> bool:
        return bool(self.policy & _POLICY_DEBUG)

    def signature_der(self) -> bytes:
        r_le, s_le = self.signature[:72], self.signature[72:144]
        if any(r_le[48:]) or any(s_le[48:]) or any(self.signature[144:]):
            raise EvidenceFormatError("SNP signature: non-zero bytes past r and s")
        return utils.encode_dss_signature(
            int.from_bytes(r_le[:48], "little"), int.from_bytes(s_le[:48], "little")
        )


def parse_snp_report(data: bytes) -> SnpReport:
    """Parse a report given as raw bytes or as hex text (optionally ``0x``-prefixed)."""
    if len(data) != REPORT_SIZE:
        text = data.strip()
        if text[:2].lower() == b"0x":
            text = text[2:]
        try:
            data = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise EvidenceFormatError(
                f"an SNP report is {REPORT_SIZE} raw bytes or their hex; got {len(data)} bytes"
            ) from None
    return SnpReport(data)


def _ext(cert: x509.Certificate, oid: str) -> bytes | None:
    for ext in cert.extensions:
        if ext.oid.dotted_string == oid and isinstance(ext.value, x509.UnrecognizedExtension):
            return ext.value.value
    return None


def _product(cert: x509.Certificate) -> str:
    raw = _ext(cert, _OID_PRODUCT)
    if raw is None:
        # VLEKs carry no productName; the issuer (SEV-VLEK-Milan) names the product.
        issuer = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        name = str(issuer[0].value) if issuer else ""
        product = name.rsplit("-", 1)[-1]
    else:
        _tag, value, _ = read_tlv(raw)
        product = value.decode("ascii", "replace").split("-")[0]
    if product not in _ROOTS:
        raise EvidenceFormatError(f"unknown AMD product {product!r} in the endorsement key")
    return product


def _spl(cert: x509.Certificate, oid: str) -> int | None:
    raw = _ext(cert, oid)
    return None if raw is None else read_integer(raw)


def _check_tcb(report: SnpReport, key: x509.Certificate, product: str) -> dict[str, int]:
    tcb = report.reported_tcb
    if product == "Turin":
        fields = {"fmc": tcb[0], "bootloader": tcb[1], "tee": tcb[2], "snp": tcb[3]}
        fields["microcode"] = tcb[7]
        oids = {"fmc": _OID_FMC}
    else:
        fields = {"bootloader": tcb[0], "tee": tcb[1], "snp": tcb[6], "microcode": tcb[7]}
        oids = {}
    oids.update({"bootloader": _OID_BL, "tee": _OID_TEE, "snp": _OID_SNP, "microcode": _OID_UCODE})
    for name, value in fields.items():
        spl = _spl(key, oids[name])
        if spl is None:
            raise BindingError(f"SNP endorsement key lacks the {name} SPL extension")
        if spl != value:
            raise BindingError(
                f"SNP reported_tcb {name} SPL is {value} but the endorsement key is for {spl}: "
                "the key is for another TCB version"
            )
    return fields


def verify_snp(
    report_data: bytes,
    endorsement_keys: Sequence[x509.Certificate],
    *,
    chain: Sequence[x509.Certificate] = (),
    at: datetime | None = None,
    roots: dict[str, x509.Certificate] | None = None,
) -> AttestationResult:
    """Verify an SNP report with one of ``endorsement_keys`` (VCEK/VLEK certificates).

    Several candidate keys may be given (e.g. a directory of VCEKs): the one that matches the
    report's signing key type, TCB and chip id *and* whose signature verifies is used.
    ``chain`` may give the ASK/ASVK (and ARK); otherwise privfin's copy of the product's
    ASK/ASVK is used. The ARK is always the pinned one (``roots`` overrides it, for tests).

    Raises
    ------
    EvidenceFormatError, SignatureError, BindingError, CertificateChainError,
    UntrustedRootError, NotValidAtTimeError
    """
    when = utc(at)
    report = parse_snp_report(report_data)
    kind = report.signing_key
    if kind == "none":
        raise EvidenceFormatError("SNP report is unsigned (signing key 'none')")
    expected_cn = "SEV-VCEK" if kind == "vcek" else "SEV-VLEK"
    candidates = [k for k in endorsement_keys if name_of(k) == expected_cn]
    if not candidates:
        raise CertificateChainError(
            f"SNP report is signed with a {kind.upper()}, and no {expected_cn} certificate "
            "was given"
        )
    message = report.raw[:_SIGNED]
    signature = report.signature_der()
    chosen: x509.Certificate | None = None
    binding_error: BindingError | None = None
    for key in candidates:
        product = _product(key)
        try:
            _check_tcb(report, key, product)
            if kind == "vcek" and not report.chip_id_masked:
                hwid = _ext(key, _OID_HWID)
                if hwid is None or hwid != report.chip_id[: len(hwid)]:
                    raise BindingError("SNP report chip_id differs from the VCEK's hwID")
        except BindingError as exc:
            binding_error = exc
            continue
        pub = key.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp384r1":
            raise SignatureError("SNP endorsement key is not a P-384 key")
        try:
            verify_ecdsa(pub, signature, message, hashes.SHA384(), "SNP report")
        except SignatureError:
            if len(candidates) == 1:
                raise
            continue
        chosen = key
        break
    if chosen is None:
        if binding_error is not None and len(candidates) == 1:
            raise binding_error
        raise SignatureError(
            f"SNP report: no given {expected_cn} matches the report and verifies its signature"
        )
    product = _product(chosen)
    tcb = _check_tcb(report, chosen, product)
    trust = (roots or {}).get(product) or pinned(_ROOTS[product])
    signer_name = "SEV-VLEK-" + product if kind == "vlek" else "SEV-" + product
    issuers = [c for c in chain if name_of(c) == signer_name]
    if not issuers:
        default = _SIGNERS.get((product, kind))
        if default is None:
            raise CertificateChainError(f"no {signer_name} certificate given nor built in")
        issuers = [pinned(default)]
    full = [chosen, issuers[0]]
    verify_chain(full, trust, when, f"SNP {kind.upper()} chain")

    measurements = {"measurement": report.measurement.hex()}
    if any(report.host_data):
        measurements["host_data"] = report.host_data.hex()
    signer: str | None = None
    if any(report.author_key_digest):
        signer = report.author_key_digest.hex()
    elif any(report.id_key_digest):
        signer = report.id_key_digest.hex()
    certs = [*full, trust]
    return AttestationResult(
        platform=Platform.snp,
        measurement=report.measurement.hex(),
        measurements=measurements,
        signer=signer,
        debug=report.debug,
        tcb_status=None,
        advisory_ids=(),
        report_data=report.report_data,
        verified_at=when,
        valid_from=max(c.not_valid_before_utc for c in certs),
        valid_until=min(c.not_valid_after_utc for c in certs),
        checks=("report_structure", "tcb_matches_key", "report_signature", "ark_chain"),
        details={
            "product": product,
            "version": report.version,
            "signing_key": kind,
            "policy": f"0x{report.policy:x}",
            "policy_debug": report.debug,
            "policy_smt": bool(report.policy & _POLICY_SMT),
            "policy_migrate_ma": bool(report.policy & _POLICY_MIGRATE_MA),
            "policy_single_socket": bool(report.policy & _POLICY_SINGLE_SOCKET),
            "vmpl": report.vmpl,
            "guest_svn": report.guest_svn,
            "reported_tcb": tcb,
            "firmware": f"{report.current_major}.{report.current_minor} "
            f"build {report.current_build}",
            "report_id": report.report_id.hex(),
            "chip_id": report.chip_id.hex(),
            "id_key_digest": report.id_key_digest.hex(),
            "author_key_digest": report.author_key_digest.hex(),
        },
    )
