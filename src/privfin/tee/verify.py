"""One entry point for every kind of evidence: :func:`verify_evidence`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from privfin.tee._x509 import load_der_certificate, load_pem_certificates, name_of
from privfin.tee.dcap import Collateral, parse_quote, verify_dcap
from privfin.tee.errors import CollateralError, EvidenceFormatError, UntrustedRootError
from privfin.tee.nitro import verify_nitro
from privfin.tee.result import AttestationResult, Platform
from privfin.tee.simulated import verify_simulated
from privfin.tee.snp import verify_snp

__all__ = ["Evidence", "load_amd_certificates", "verify_evidence"]


@dataclass(frozen=True)
class Evidence:
    """Evidence as it arrives from an enclave host.

    ``collateral``: Intel collateral for SGX/TDX. ``certificates``: for SNP, the VCEK/VLEK
    (and optionally the ASK/ASVK); unused elsewhere.
    """

    platform: Platform
    data: bytes
    collateral: Collateral | None = None
    certificates: tuple[x509.Certificate, ...] = ()


def load_amd_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate in a file (DER or PEM) or in the ``*.der``/``*.pem``/``*.cer`` files
    of a directory."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in (".der", ".pem", ".cer", ".crt"))
        if path.is_dir()
        else [path]
    )
    out: list[x509.Certificate] = []
    for f in files:
        raw = f.read_bytes()
        out.extend(
            load_pem_certificates(raw) if b"-----BEGIN" in raw else [load_der_certificate(raw)]
        )
    if not out:
        raise CollateralError(f"no certificates in {path}")
    return tuple(out)


def verify_evidence(
    evidence: Evidence,
    *,
    at: datetime | None = None,
    simulation_root: x509.Certificate | None = None,
) -> AttestationResult:
    """Verify ``evidence`` for its platform as of ``at`` (default now).

    Simulated evidence verifies only against an explicitly given ``simulation_root``.
    """
    platform = Platform(evidence.platform)
    if platform is Platform.nitro:
        return verify_nitro(evidence.data, at=at)
    if platform in (Platform.sgx, Platform.tdx):
        quote = parse_quote(evidence.data)
        if quote.platform is not platform:
            raise EvidenceFormatError(
                f"the quote is a {quote.platform.value} quote, not {platform.value}"
            )
        return verify_dcap(evidence.data, collateral=evidence.collateral, at=at)
    if platform is Platform.snp:
        keys = [c for c in evidence.certificates if name_of(c) in ("SEV-VCEK", "SEV-VLEK")]
        chain = [c for c in evidence.certificates if c not in keys]
        return verify_snp(evidence.data, keys, chain=chain, at=at)
    if simulation_root is None:
        raise UntrustedRootError(
            "simulated evidence needs an explicit simulation root; none is trusted by default"
        )
    return verify_simulated(evidence.data, root=simulation_root, at=at)
