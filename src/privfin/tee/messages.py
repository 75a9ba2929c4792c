"""Typed messages of the ``tee`` job component (wire names ``tee.*``). See SPEC.md.

Each message checks its sizes in ``__post_init__`` (a violation decodes to
:class:`~privfin.errors.DecodeError`)."""

from __future__ import annotations

from privfin.federation.codec import Message, wire_message

__all__ = ["Challenge", "EnclaveInfo", "EvidenceMsg", "KeyRelease", "ResultKey", "SealedResult"]

MAX_EVIDENCE = 64 * 1024
MAX_DATA = 1 << 30


@wire_message("tee.EnclaveInfo")
class EnclaveInfo(Message, frozen=True, kw_only=True):
    """Host -> data and result parties: the enclave's platform, measurement and public key;
    for the simulated backend also the simulation root (PEM), which proves nothing."""

    platform: str
    measurement: str
    public_key: bytes
    simulated: bool
    simulation_root: str

    def __post_init__(self) -> None:
        if len(self.platform) > 16 or len(self.measurement) > 256 or len(self.public_key) != 32:
            raise ValueError("enclave info: field sizes out of range")
        if len(self.simulation_root) > 8192:
            raise ValueError("enclave info: simulation root too large")


@wire_message("tee.Challenge")
class Challenge(Message, frozen=True, kw_only=True):
    """Data party -> host: a fresh nonce the evidence must bind."""

    nonce: bytes

    def __post_init__(self) -> None:
        if len(self.nonce) != 32:
            raise ValueError("challenge: a nonce is 32 bytes")


@wire_message("tee.Evidence")
class EvidenceMsg(Message, frozen=True, kw_only=True):
    """Host -> data party: evidence binding the enclave key and that party's nonce."""

    platform: str
    evidence: bytes

    def __post_init__(self) -> None:
        if len(self.platform) > 16 or not 0 < len(self.evidence) <= MAX_EVIDENCE:
            raise ValueError("evidence: size out of range")


@wire_message("tee.KeyRelease")
class KeyRelease(Message, frozen=True, kw_only=True):
    """Data party -> host: its dataset encrypted under a data key, and that key sealed to the
    enclave (opens only inside the attested enclave)."""

    owner: str
    dataset: str
    key_id: str
    key_blob: bytes
    nonce: bytes
    ciphertext: bytes

    def __post_init__(self) -> None:
        if max(len(self.owner), len(self.dataset), len(self.key_id)) > 128:
            raise ValueError("key release: names too long")
        if len(self.key_blob) > 1024 or len(self.nonce) != 12:
            raise ValueError("key release: key blob or nonce size out of range")
        if not 16 <= len(self.ciphertext) <= MAX_DATA:
            raise ValueError("key release: ciphertext size out of range")


@wire_message("tee.ResultKey")
class ResultKey(Message, frozen=True, kw_only=True):
    """Result party -> host: the X25519 key the result is sealed to."""

    public_key: bytes

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise ValueError("result key: 32 bytes")


@wire_message("tee.SealedResult")
class SealedResult(Message, frozen=True, kw_only=True):
    """Host -> result party: the enclave's output sealed to the result key."""

    sealed: bytes

    def __post_init__(self) -> None:
        if not 0 < len(self.sealed) <= MAX_DATA:
            raise ValueError("sealed result: size out of range")
