"""The key broker: data keys go only to attested enclaves that every data owner allows.

Data owners (:func:`encrypt_dataset`) encrypt a dataset under a fresh AES-256-GCM data key,
wrap that key to the broker's X25519 key (:mod:`privfin.tee.sealing`) and sign a
:class:`UsagePolicy` (Ed25519) naming the job, the allowed enclave measurements and the other
attestation requirements. The broker (:class:`KeyBroker`) releases data keys for a job only to
an enclave that

1. answers a fresh, single-use nonce the broker issued for that job (:meth:`KeyBroker.challenge`);
2. presents evidence that verifies (:func:`privfin.tee.verify.verify_evidence`);
3. binds its own public key and the nonce into the evidence's report data
   (:func:`privfin.tee.policy.bind_report_data`);
4. is allowed by the policy of *every* owner whose key it asks for (all or nothing).

A released key is re-sealed to the enclave's attested public key, under a context naming the
job, dataset, key and measurement. Every release and every refusal produces an
:class:`AuditRecord` (action ``key_release``) handed to the ``audit`` callback: the broker does
not write the audit log itself (the node does).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509 import Certificate

from privfin.config import Settings
from privfin.crypto.random import RandomSource, SystemRandom
from privfin.errors import PrivfinError
from privfin.tee.errors import (
    AttestationError,
    FreshnessError,
    KeyReleaseRefused,
    PolicyViolation,
    SealError,
)
from privfin.tee.policy import AttestationPolicy, bind_report_data
from privfin.tee.result import AttestationResult, Platform, TcbStatus, utc
from privfin.tee.sealing import SealKeyPair, open_sealed, seal
from privfin.tee.verify import Evidence, verify_evidence

__all__ = [
    "AuditRecord",
    "EncryptedDataset",
    "KeyBroker",
    "ReleasedKey",
    "SignedUsagePolicy",
    "UsagePolicy",
    "WrappedDataKey",
    "data_context",
    "decrypt_dataset",
    "encrypt_dataset",
    "release_context",
    "sign_policy",
]

NONCE_BYTES = 32


def data_context(owner: str, dataset: str, key_id: str) -> bytes:
    return f"privfin-tee-data|{owner}|{dataset}|{key_id}".encode()


def _wrap_context(owner: str, dataset: str, key_id: str) -> bytes:
    return f"privfin-tee-wrap|{owner}|{dataset}|{key_id}".encode()


def release_context(job: str, owner: str, dataset: str, key_id: str, measurement: str) -> bytes:
    """The context a released key is sealed under (the enclave opens it with the same)."""
    return f"privfin-tee-release|{job}|{owner}|{dataset}|{key_id}|{measurement}".encode()


@dataclass(frozen=True)
class EncryptedDataset:
    owner: str
    dataset: str
    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class WrappedDataKey:
    owner: str
    dataset: str
    key_id: str
    blob: bytes


@dataclass(frozen=True)
class ReleasedKey:
    owner: str
    dataset: str
    key_id: str
    blob: bytes  # sealed to the enclave under release_context(...)


def encrypt_dataset(
    owner: str,
    dataset: str,
    plaintext: bytes,
    broker_public: bytes,
    *,
    random: RandomSource | None = None,
) -> tuple[EncryptedDataset, WrappedDataKey]:
    """Encrypt ``plaintext`` under a fresh data key and wrap that key to the broker."""
    rnd = random or SystemRandom()
    key = rnd.bytes(32)
    key_id = rnd.bytes(16).hex()
    nonce = rnd.bytes(12)
    ct = AESGCM(key).encrypt(nonce, plaintext, data_context(owner, dataset, key_id))
    wrapped = seal(key, broker_public, _wrap_context(owner, dataset, key_id), random=rnd)
    return (
        EncryptedDataset(owner, dataset, key_id, nonce, ct),
        WrappedDataKey(owner, dataset, key_id, wrapped),
    )


def decrypt_dataset(data: EncryptedDataset, key: bytes) -> bytes:
    """Decrypt with a released data key (inside the enclave)."""
    from cryptography.exceptions import InvalidTag

    try:
        return AESGCM(key).decrypt(
            data.nonce, data.ciphertext, data_context(data.owner, data.dataset, data.key_id)
        )
    except (InvalidTag, ValueError):
        raise SealError(f"dataset {data.dataset!r} does not decrypt with its key") from None


@dataclass(frozen=True)
class UsagePolicy:
    """A data owner's rules for releasing one data key (signed by the owner).

    ``measurements``/``signers``/``min_tcb_status``/``allow_debug``/``allow_simulated``
    become an :class:`~privfin.tee.policy.AttestationPolicy`; ``job`` limits the release to
    one job; ``expires_at`` ends the policy.
    """

    owner: str
    dataset: str
    key_id: str
    job: str
    measurements: tuple[str, ...]
    expires_at: datetime
    signers: tuple[str, ...] | None = None
    platforms: tuple[str, ...] = ("sgx", "tdx", "snp", "nitro")
    min_tcb_status: str = TcbStatus.up_to_date.value
    require_tcb_status: bool = True
    allow_debug: bool = False
    allow_simulated: bool = False

    def canonical(self) -> bytes:
        doc = {
            "v": 1,
            "owner": self.owner,
            "dataset": self.dataset,
            "key_id": self.key_id,
            "job": self.job,
            "measurements": sorted(m.lower() for m in self.measurements),
            "signers": sorted(s.lower() for s in self.signers) if self.signers else None,
            "platforms": sorted(self.platforms),
            "min_tcb_status": self.min_tcb_status,
            "require_tcb_status": self.require_tcb_status,
            "allow_debug": self.allow_debug,
            "allow_simulated": self.allow_simulated,
            "expires_at": utc(self.expires_at).isoformat(),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def attestation_policy(self) -> AttestationPolicy:
        platforms = {Platform(p) for p in self.platforms}
        if self.allow_simulated:
            platforms.add(Platform.simulated)
        return AttestationPolicy(
            measurements=frozenset(self.measurements),
            signers=frozenset(self.signers) if self.signers else None,
            platforms=frozenset(platforms),
            min_tcb_status=TcbStatus(self.min_tcb_status),
            require_tcb_status=self.require_tcb_status,
            allow_debug=self.allow_debug,
            allow_simulated=self.allow_simulated,
        )


@dataclass(frozen=True)
class SignedUsagePolicy:
    policy: UsagePolicy
    signature: bytes


def sign_policy(policy: UsagePolicy, owner_key: Ed25519PrivateKey) -> SignedUsagePolicy:
    return SignedUsagePolicy(policy, owner_key.sign(policy.canonical()))


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry for the node's log: ``AuditLog.append(r.action, **r.fields())``.

    ``evidence`` holds digests and facts only (measurement, platform, TCB status, the
    enclave key's SHA-256, the outcome and the reason of a refusal), never key material."""

    action: str
    actor: str
    job: str
    dataset: str | None
    party: str | None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "job": self.job,
            "dataset": self.dataset,
            "party": self.party,
            "evidence": dict(self.evidence),
        }


@dataclass
class _Deposit:
    wrapped: WrappedDataKey
    policy: SignedUsagePolicy


class KeyBroker:
    """Holds wrapped data keys and owners' signed policies; releases keys to attested enclaves.

    Parameters
    ----------
    keys:
        The broker's X25519 key pair (owners wrap data keys to ``keys.public``).
    owners:
        Each data owner's Ed25519 public key (policies are checked against it).
    settings:
        Process settings: a policy that allows the simulated enclave is honoured only if these
        allow insecure modes.
    audit:
        Called with an :class:`AuditRecord` for every release and refusal.
    clock:
        Verification time (injectable; default now).
    simulation_root:
        The simulation root certificate, to verify (then refuse or admit, per policy)
        simulated evidence; ``None`` treats simulated evidence as unverifiable.
    verifier:
        Replaces :func:`verify_evidence` (tests).
    """

    def __init__(
        self,
        keys: SealKeyPair,
        owners: Mapping[str, Ed25519PublicKey],
        *,
        settings: Settings,
        audit: Callable[[AuditRecord], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        random: RandomSource | None = None,
        nonce_ttl: timedelta = timedelta(minutes=5),
        simulation_root: Certificate | None = None,
        verifier: Callable[[Evidence, datetime], AttestationResult] | None = None,
    ) -> None:
        self._keys = keys
        self._owners = dict(owners)
        self._settings = settings
        self._audit = audit
        self._clock = clock or (lambda: utc(None))
        self._random = random or SystemRandom()
        self._ttl = nonce_ttl
        self._sim_root = simulation_root
        self._verifier = verifier
        self._deposits: dict[str, _Deposit] = {}
        self._nonces: dict[bytes, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    @property
    def public(self) -> bytes:
        return self._keys.public

    def deposit(self, wrapped: WrappedDataKey, policy: SignedUsagePolicy) -> None:
        """Accept a wrapped key with its owner's signed policy (checked now)."""
        owner_key = self._owners.get(wrapped.owner)
        if owner_key is None:
            raise KeyReleaseRefused(f"unknown data owner {wrapped.owner!r}")
        p = policy.policy
        if (p.owner, p.dataset, p.key_id) != (wrapped.owner, wrapped.dataset, wrapped.key_id):
            raise KeyReleaseRefused("the usage policy is for another owner, dataset or key")
        try:
            owner_key.verify(policy.signature, p.canonical())
        except InvalidSignature:
            raise KeyReleaseRefused(
                f"the usage policy of {wrapped.dataset!r} is not signed by {wrapped.owner!r}"
            ) from None
        p.attestation_policy()  # validates the allowlist now, not at release time
        with self._lock:
            self._deposits[wrapped.key_id] = _Deposit(wrapped, policy)

    def challenge(self, job: str) -> bytes:
        """A fresh single-use nonce for ``job``; the enclave binds it into its evidence."""
        nonce = self._random.bytes(NONCE_BYTES)
        now = self._clock()
        with self._lock:
            self._nonces = {n: v for n, v in self._nonces.items() if now - v[1] <= self._ttl}
            self._nonces[nonce] = (job, now)
        return nonce

    def _record(
        self, job: str, deposit: _Deposit | None, outcome: str, facts: Mapping[str, Any]
    ) -> None:
        if self._audit is None:
            return
        self._audit(
            AuditRecord(
                action="key_release",
                actor="key-broker",
                job=job,
                dataset=deposit.wrapped.dataset if deposit else None,
                party=deposit.wrapped.owner if deposit else None,
                evidence={"outcome": outcome, **facts},
            )
        )

    def release(
        self,
        job: str,
        evidence: Evidence,
        enclave_public: bytes,
        nonce: bytes,
        key_ids: Sequence[str],
    ) -> list[ReleasedKey]:
        """Release the data keys ``key_ids`` for ``job`` to the enclave holding
        ``enclave_public``, or refuse them all with :class:`KeyReleaseRefused` (its ``cause``
        is the failed check). Audited either way."""
        now = self._clock()
        facts: dict[str, Any] = {
            "platform": Platform(evidence.platform).value,
            "enclave_key_sha256": hashlib.sha256(enclave_public).hexdigest(),
            "keys": list(key_ids),
        }
        with self._lock:
            deposits = [self._deposits.get(k) for k in key_ids]
            issued = self._nonces.pop(nonce, None)
        try:
            if not key_ids or any(d is None for d in deposits):
                raise KeyReleaseRefused("unknown data key requested")
            if issued is None or issued[0] != job or now - issued[1] > self._ttl:
                raise FreshnessError(
                    "the nonce is unknown, was used already, is for another job or expired"
                )
            result = self._verify(evidence, now)
            facts.update(
                measurement=result.measurement,
                simulated=result.simulated,
                debug=result.debug,
                tcb_status=result.tcb_status.value if result.tcb_status else None,
            )
            expected = bind_report_data(enclave_public, nonce)
            for d in deposits:
                assert d is not None
                p = d.policy.policy
                if p.job != job:
                    raise PolicyViolation(f"the policy of {p.dataset!r} is for another job")
                if now > utc(p.expires_at):
                    raise PolicyViolation(f"the policy of {p.dataset!r} has expired")
                p.attestation_policy().check(
                    result, settings=self._settings, report_data=expected, now=now
                )
        except (AttestationError, KeyReleaseRefused, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            cause: PrivfinError | None = exc if isinstance(exc, PrivfinError) else None
            for d in deposits or [None]:
                self._record(job, d, "refused", {**facts, "reason": reason[:500]})
            if isinstance(exc, KeyReleaseRefused):
                raise
            raise KeyReleaseRefused(f"key release refused: {reason}", cause=cause) from None
        released: list[ReleasedKey] = []
        for d in deposits:
            assert d is not None
            w = d.wrapped
            key = open_sealed(w.blob, self._keys, _wrap_context(w.owner, w.dataset, w.key_id))
            ctx = release_context(job, w.owner, w.dataset, w.key_id, result.measurement)
            released.append(
                ReleasedKey(w.owner, w.dataset, w.key_id, seal(key, enclave_public, ctx))
            )
            self._record(job, d, "released", facts)
        return released

    def _verify(self, evidence: Evidence, now: datetime) -> AttestationResult:
        if self._verifier is not None:
            return self._verifier(evidence, now)
        return verify_evidence(evidence, at=now, simulation_root=self._sim_root)
