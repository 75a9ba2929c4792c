"""The typed outcome of verifying a piece of attestation evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from privfin.tee._x509 import iso

__all__ = ["TCB_RANK", "AttestationResult", "Platform", "TcbStatus", "utc"]


class Platform(StrEnum):
    sgx = "sgx"
    tdx = "tdx"
    snp = "snp"
    nitro = "nitro"
    simulated = "simulated"


class TcbStatus(StrEnum):
    """Intel's TCB statuses (best first). AMD SEV-SNP and AWS Nitro have no collateral that
    gives one: their results carry ``None``."""

    up_to_date = "UpToDate"
    sw_hardening_needed = "SWHardeningNeeded"
    configuration_needed = "ConfigurationNeeded"
    configuration_and_sw_hardening_needed = "ConfigurationAndSWHardeningNeeded"
    out_of_date = "OutOfDate"
    out_of_date_configuration_needed = "OutOfDateConfigurationNeeded"
    revoked = "Revoked"


#: Rank of each status, 0 = best; a policy's minimum admits every status of lower or equal rank.
TCB_RANK: Mapping[TcbStatus, int] = {s: i for i, s in enumerate(TcbStatus)}


def utc(at: datetime | None) -> datetime:
    """``at`` as an aware UTC datetime (now when ``None``; a naive value is taken as UTC)."""
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)


@dataclass(frozen=True)
class AttestationResult:
    """Evidence that verified.

    Attributes
    ----------
    platform:
        Which TEE produced the evidence.
    measurement:
        The primary code identity as lowercase hex: MRENCLAVE (SGX), MRTD (TDX), MEASUREMENT
        (SEV-SNP), PCR0 (Nitro), the component digest (simulated).
    measurements:
        Every measurement register the evidence carries (``mrenclave``, ``mrsigner``,
        ``mrtd``, ``rtmr0``…, ``pcr0``…), hex.
    signer:
        The identity that signed the code, where the platform has one: MRSIGNER (SGX), the
        author key digest or ID key digest (SNP), PCR8 (Nitro, signing certificate); else None.
    debug:
        The enclave runs in debug mode (its memory is readable by the host).
    tcb_status, advisory_ids:
        From Intel collateral; ``None``/empty when no collateral was given or the platform
        has none.
    report_data:
        The 64 bytes of user data bound into the evidence (SGX/TDX/SNP); Nitro's
        ``user_data`` (possibly empty).
    nonce, public_key:
        Nitro's optional fields (None elsewhere).
    issued_at:
        When the evidence says it was produced (Nitro, simulated), else None.
    valid_from, valid_until:
        The window in which every certificate/CRL/collateral item used is current: the
        freshness of this verdict.
    verified_at:
        The (injected) time of verification.
    simulated:
        True only for the simulated enclave; such evidence proves nothing about hardware.
    checks:
        The checks that passed, in order (e.g. ``quote_signature``, ``pck_chain``,
        ``tcb_info_signature``); a check that could not be done is absent.
    details:
        Platform-specific facts (FMSPC, QE identity, SNP policy bits, module id…).
    """

    platform: Platform
    measurement: str
    measurements: Mapping[str, str]
    signer: str | None
    debug: bool
    tcb_status: TcbStatus | None
    advisory_ids: tuple[str, ...]
    report_data: bytes
    verified_at: datetime
    valid_from: datetime
    valid_until: datetime
    checks: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)
    nonce: bytes | None = None
    public_key: bytes | None = None
    issued_at: datetime | None = None
    simulated: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (bytes as hex, times as ISO 8601 UTC)."""
        return {
            "platform": self.platform.value,
            "simulated": self.simulated,
            "measurement": self.measurement,
            "measurements": dict(self.measurements),
            "signer": self.signer,
            "debug": self.debug,
            "tcb_status": self.tcb_status.value if self.tcb_status else None,
            "advisory_ids": list(self.advisory_ids),
            "report_data": self.report_data.hex(),
            "nonce": self.nonce.hex() if self.nonce is not None else None,
            "public_key": self.public_key.hex() if self.public_key is not None else None,
            "issued_at": iso(self.issued_at) if self.issued_at else None,
            "verified_at": iso(self.verified_at),
            "valid_from": iso(self.valid_from),
            "valid_until": iso(self.valid_until),
            "checks": list(self.checks),
            "details": dict(self.details),
        }
