"""Attestation policy: which verified evidence may see data.

A policy is checked against an :class:`~privfin.tee.result.AttestationResult` (evidence that
already verified). It names the platforms, the allowed measurements (and optionally signers
and exact values of other registers), the minimum TCB status, and refuses debug and simulated
enclaves unless explicitly allowed (the simulated enclave also needs the process's settings to
allow insecure modes). Freshness is a nonce bound, with the enclave's public key, into the
evidence's report data: :func:`bind_report_data`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from privfin.config import Settings, require_insecure_allowed
from privfin.errors import InsecureModeError
from privfin.tee.errors import (
    DebugEnclaveError,
    FreshnessError,
    MeasurementNotAllowed,
    SimulatedEnclaveRefused,
    TcbStatusNotAllowed,
)
from privfin.tee.result import TCB_RANK, AttestationResult, Platform, TcbStatus, utc

__all__ = ["HARDWARE_PLATFORMS", "AttestationPolicy", "bind_report_data"]

HARDWARE_PLATFORMS = frozenset({Platform.sgx, Platform.tdx, Platform.snp, Platform.nitro})
_COLLATERAL_PLATFORMS = frozenset({Platform.sgx, Platform.tdx})


def bind_report_data(enclave_public: bytes, nonce: bytes) -> bytes:
    """The 64 bytes an enclave puts in its report data to bind its public key to a verifier's
    nonce: ``SHA-512("privfin-tee-bind-v1" ‖ len(key) ‖ key ‖ nonce)``."""
    if not enclave_public or len(enclave_public) > 255 or not 16 <= len(nonce) <= 64:
        raise ValueError("a binding needs a public key of 1..255 bytes and a 16..64-byte nonce")
    return hashlib.sha512(
        b"privfin-tee-bind-v1" + bytes([len(enclave_public)]) + enclave_public + nonce
    ).digest()


def _hexset(values: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    out = set()
    for v in values:
        text = v.lower().removeprefix("0x")
        bytes.fromhex(text)  # raises ValueError on a typo
        out.add(text)
    return frozenset(out)


@dataclass(frozen=True)
class AttestationPolicy:
    """What evidence may see data.

    Parameters
    ----------
    measurements:
        Allowed primary measurements (MRENCLAVE, MRTD, SNP MEASUREMENT, PCR0, simulated
        component digest), hex. Must not be empty: a policy without an allowlist would admit
        any code.
    signers:
        If given, the result's signer (MRSIGNER, SNP author/ID key digest, Nitro PCR8) must be
        one of these.
    registers:
        Exact values required of other registers, e.g. ``{"rtmr0": "…", "pcr1": "…"}``.
    platforms:
        Allowed platforms (default: the four hardware TEEs).
    min_tcb_status:
        Worst acceptable Intel TCB status (default ``UpToDate``).
    require_tcb_status:
        SGX/TDX evidence must come with collateral that gives a TCB status, and with CRLs
        checked (default True). SNP and Nitro have no such collateral.
    allow_debug:
        Admit debug enclaves (never do this with real data).
    allow_simulated:
        Admit the simulated enclave; also needs ``settings`` that allow insecure modes.
    max_age:
        For evidence that carries its issue time (Nitro, simulated): the oldest acceptable.
    min_snp_tcb:
        SEV-SNP has no TCB status from collateral; instead, the minimum security patch levels
        of the report's ``reported_tcb`` (``bootloader``, ``tee``, ``snp``, ``microcode``),
        e.g. from AMD's security bulletins.
    """

    measurements: frozenset[str]
    signers: frozenset[str] | None = None
    registers: Mapping[str, str] = field(default_factory=dict)
    platforms: frozenset[Platform] = HARDWARE_PLATFORMS
    min_tcb_status: TcbStatus = TcbStatus.up_to_date
    require_tcb_status: bool = True
    allow_debug: bool = False
    allow_simulated: bool = False
    max_age: timedelta | None = None
    min_snp_tcb: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "measurements", _hexset(self.measurements))
        if not self.measurements:
            raise ValueError("an attestation policy needs at least one allowed measurement")
        if self.signers is not None:
            object.__setattr__(self, "signers", _hexset(self.signers))
        object.__setattr__(
            self, "registers", {k.lower(): v.lower() for k, v in self.registers.items()}
        )
        object.__setattr__(self, "platforms", frozenset(Platform(p) for p in self.platforms))
        object.__setattr__(self, "min_tcb_status", TcbStatus(self.min_tcb_status))

    def check(
        self,
        result: AttestationResult,
        *,
        settings: Settings,
        report_data: bytes | None = None,
        now: datetime | None = None,
    ) -> None:
        """Raise a :class:`~privfin.tee.errors.PolicyViolation` subclass unless ``result`` is
        acceptable. ``report_data``: the exact report data expected (see
        :func:`bind_report_data`); ``now``: for ``max_age``."""
        if result.simulated or result.platform is Platform.simulated:
            if not self.allow_simulated or Platform.simulated not in self.platforms:
                raise SimulatedEnclaveRefused(
                    "the evidence comes from the SIMULATED enclave (no hardware protection), "
                    "and this policy requires a hardware TEE"
                )
            try:
                require_insecure_allowed(settings, "the simulated enclave", "a hardware TEE")
            except InsecureModeError as exc:
                raise SimulatedEnclaveRefused(str(exc)) from None
        elif result.platform not in self.platforms:
            raise MeasurementNotAllowed(f"platform {result.platform.value} is not allowed")
        if result.debug and not self.allow_debug:
            raise DebugEnclaveError(
                f"the {result.platform.value} enclave runs in debug mode: the host can read "
                "its memory"
            )
        if result.measurement.lower() not in self.measurements:
            raise MeasurementNotAllowed(
                f"measurement {result.measurement} is not on the policy's allowlist"
            )
        if self.signers is not None and (
            result.signer is None or result.signer.lower() not in self.signers
        ):
            raise MeasurementNotAllowed(f"signer {result.signer} is not on the allowlist")
        for name, expected in self.registers.items():
            if result.measurements.get(name, "").lower() != expected:
                raise MeasurementNotAllowed(f"register {name} differs from the policy's value")
        if result.platform in _COLLATERAL_PLATFORMS and self.require_tcb_status:
            if result.tcb_status is None:
                raise TcbStatusNotAllowed(
                    "no TCB status: the quote was verified without collateral"
                )
            if not result.details.get("crl_checked"):
                raise TcbStatusNotAllowed("revocation was not checked (no CRLs in collateral)")
        if result.tcb_status is not None and (
            TCB_RANK[result.tcb_status] > TCB_RANK[self.min_tcb_status]
        ):
            raise TcbStatusNotAllowed(
                f"TCB status {result.tcb_status.value} is worse than the policy's minimum "
                f"{self.min_tcb_status.value}"
            )
        if report_data is not None and result.report_data[: len(report_data)] != report_data:
            raise FreshnessError(
                "the evidence's report data does not carry the expected nonce and key binding"
            )
        if result.platform is Platform.snp and self.min_snp_tcb:
            reported = result.details.get("reported_tcb") or {}
            for name, minimum in self.min_snp_tcb.items():
                if int(reported.get(name, -1)) < int(minimum):
                    raise TcbStatusNotAllowed(
                        f"SEV-SNP {name} SPL {reported.get(name)} is below the policy's "
                        f"minimum {minimum}"
                    )
        too_old = (
            self.max_age is not None
            and result.issued_at is not None
            and utc(now) - result.issued_at > self.max_age
        )
        if too_old:
            raise FreshnessError(
                f"the evidence was issued at {result.issued_at}, older than the policy's "
                f"maximum age {self.max_age}"
            )
