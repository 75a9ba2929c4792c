"""Confidential computing: verify TEE attestation evidence, release data keys to attested
enclaves, run approved components in an enclave and seal their results.

Modules, in order of their imports (each uses only those before it):

- ``errors`` — one error class per failed check (:class:`AttestationError` and subclasses).
- ``_der``, ``_x509`` — DER/X.509 helpers (chains, time, CRLs, zero-serial AMD certificates).
- ``result`` — :class:`AttestationResult`, :class:`Platform`, :class:`TcbStatus`.
- ``roots`` — pinned vendor roots (AWS Nitro, Intel SGX Root CA, AMD ARKs).
- ``nitro``, ``dcap`` (SGX/TDX), ``snp``, ``simulated`` — the verifiers.
- ``verify`` — :func:`verify_evidence`, one entry point for all of them.
- ``policy`` — :class:`AttestationPolicy`, :func:`bind_report_data`.
- ``sealing`` — ECIES sealing to X25519 keys.
- ``broker`` — data-key encryption, owner-signed usage policies, :class:`KeyBroker`.
- ``components``, ``enclave`` — approved enclave components, the simulated enclave process,
  the Gramine manifest.

See ``SPEC.md`` for the trust model and what each party learns. Importing this package loads
only ``errors``, ``result`` and ``_x509`` (with ``cryptography``); nothing runs at import.
"""

from __future__ import annotations

from privfin.tee.errors import (
    AttestationError,
    BindingError,
    CertificateChainError,
    CollateralError,
    DebugEnclaveError,
    EvidenceFormatError,
    FreshnessError,
    KeyReleaseRefused,
    MeasurementNotAllowed,
    NotValidAtTimeError,
    PolicyViolation,
    RevokedError,
    SealError,
    SignatureError,
    SimulatedEnclaveRefused,
    TcbStatusError,
    TcbStatusNotAllowed,
    UntrustedRootError,
)
from privfin.tee.result import AttestationResult, Platform, TcbStatus

__all__ = [
    "AttestationError",
    "AttestationResult",
    "BindingError",
    "CertificateChainError",
    "CollateralError",
    "DebugEnclaveError",
    "EvidenceFormatError",
    "FreshnessError",
    "KeyReleaseRefused",
    "MeasurementNotAllowed",
    "NotValidAtTimeError",
    "Platform",
    "PolicyViolation",
    "RevokedError",
    "SealError",
    "SignatureError",
    "SimulatedEnclaveRefused",
    "TcbStatus",
    "TcbStatusError",
    "TcbStatusNotAllowed",
    "UntrustedRootError",
]
