"""Errors of :mod:`privfin.tee`: one class per way a piece of evidence, a policy check or a
key release can fail, so a caller (and the ``privfin tee verify`` JSON) can tell *which* check
failed. Every class carries a stable ``code`` string.
"""

from __future__ import annotations

from privfin.errors import PrivfinError

__all__ = [
    "AttestationError",
    "BindingError",
    "CertificateChainError",
    "CollateralError",
    "DebugEnclaveError",
    "EvidenceFormatError",
    "FreshnessError",
    "KeyReleaseRefused",
    "MeasurementNotAllowed",
    "NotValidAtTimeError",
    "PolicyViolation",
    "RevokedError",
    "SealError",
    "SignatureError",
    "SimulatedEnclaveRefused",
    "TcbStatusError",
    "TcbStatusNotAllowed",
    "UntrustedRootError",
]


class AttestationError(PrivfinError):
    """A piece of attestation evidence does not verify. Subclasses say which check failed."""

    code = "attestation_error"


class EvidenceFormatError(AttestationError):
    """The evidence (quote, report, document, collateral) is malformed, truncated, of an
    unsupported version or algorithm, or a field is out of range."""

    code = "evidence_format"


class SignatureError(AttestationError):
    """A signature over the evidence, a QE report or a collateral item does not verify."""

    code = "signature"


class BindingError(AttestationError):
    """Two parts of the evidence that must agree do not: the QE report does not bind the
    attestation key, the VCEK's TCB or chip id differs from the report, the collateral is for
    another FMSPC, platform or enclave."""

    code = "binding"


class CertificateChainError(AttestationError):
    """A certificate is not signed by the next one of its chain, is not a CA where it must be,
    or a chain is missing or has the wrong length."""

    code = "certificate_chain"


class UntrustedRootError(CertificateChainError):
    """The chain does not end at the pinned vendor root (Intel SGX Root CA, AMD ARK, AWS Nitro
    root) or at the configured simulation root."""

    code = "untrusted_root"


class NotValidAtTimeError(AttestationError):
    """A certificate, CRL or collateral item is not valid at the verification time (expired,
    or not yet valid). ``what`` names it; ``not_before``/``not_after`` give its window."""

    code = "not_valid_at_time"

    def __init__(self, message: str, *, what: str, not_before: str, not_after: str) -> None:
        super().__init__(message)
        self.what = what
        self.not_before = not_before
        self.not_after = not_after


class RevokedError(AttestationError):
    """A certificate of the chain is listed in its issuer's CRL."""

    code = "revoked"


class CollateralError(AttestationError):
    """Collateral (TCB info, QE identity, CRLs) is missing where it is required, malformed, or
    of an unsupported version."""

    code = "collateral"


class TcbStatusError(AttestationError):
    """The platform's TCB could not be given a status (no TCB level of the collateral matches:
    the platform is older than every level Intel lists), or the QE is not a known one."""

    code = "tcb_status"


class PolicyViolation(AttestationError):
    """Evidence that verifies, but that a policy does not accept."""

    code = "policy"


class MeasurementNotAllowed(PolicyViolation):
    """The enclave's measurement or signer is not on the policy's allowlist."""

    code = "measurement_not_allowed"


class DebugEnclaveError(PolicyViolation):
    """The enclave (TD, VM, Nitro enclave) runs in debug mode: its memory can be read by the
    host, so it must never see data."""

    code = "debug_enclave"


class FreshnessError(PolicyViolation):
    """The evidence does not carry the expected nonce (or key binding) in its report data, the
    nonce is unknown, used already or expired, or the evidence is too old."""

    code = "freshness"


class SimulatedEnclaveRefused(PolicyViolation):
    """Evidence from the *simulated* enclave under a policy that requires real hardware."""

    code = "simulated_enclave"


class TcbStatusNotAllowed(PolicyViolation):
    """The TCB status is below the policy's minimum, or missing where the policy requires
    one."""

    code = "tcb_status_not_allowed"


class KeyReleaseRefused(PrivfinError):
    """The key broker refused to release a data key. ``cause`` is the failed check."""

    code = "key_release_refused"

    def __init__(self, message: str, *, cause: PrivfinError | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class SealError(PrivfinError):
    """A sealed (or wrapped) blob does not open: wrong key, wrong context, or tampered."""

    code = "seal"
