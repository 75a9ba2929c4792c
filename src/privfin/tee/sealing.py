"""Sealing a payload to an X25519 public key (ECIES): an ephemeral X25519 key, HKDF-SHA256 over
the shared secret bound to both public keys and a context string, AES-256-GCM with the context
as associated data.

Used three times: a data owner wraps a data key to the key broker; the broker re-wraps it to
an enclave's attested key; the enclave seals its result to the result party. Only the holder of
the recipient's private key opens a blob, and only under the same context (so a blob sealed for
one job, dataset or purpose does not open in another).

Blob layout (bytes): ``b"PFS1" ‖ ephemeral public key (32) ‖ GCM nonce (12) ‖ ciphertext+tag``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privfin.crypto.kex import KeyPair
from privfin.crypto.random import RandomSource, SystemRandom
from privfin.tee.errors import SealError

__all__ = ["MAGIC", "MAX_SEALED_BYTES", "SealKeyPair", "open_sealed", "seal"]

MAGIC = b"PFS1"
MAX_SEALED_BYTES = 1 << 31
_HEAD = len(MAGIC) + 32 + 12


@dataclass(frozen=True, repr=False)
class SealKeyPair:
    """An X25519 key pair that sealed blobs are addressed to. ``repr`` hides the private key."""

    keys: KeyPair

    @classmethod
    def generate(cls, random: RandomSource | None = None) -> SealKeyPair:
        return cls(KeyPair.generate(random or SystemRandom()))

    @property
    def public(self) -> bytes:
        return self.keys.public

    def __repr__(self) -> str:
        return f"SealKeyPair(public={self.public.hex()[:16]}…)"


def _key(shared: bytes, eph: bytes, recipient: bytes, context: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=eph + recipient,
        info=b"privfin-tee-seal-v1|" + context,
    ).derive(shared)


def seal(
    plaintext: bytes,
    recipient_public: bytes,
    context: bytes,
    *,
    random: RandomSource | None = None,
) -> bytes:
    """Seal ``plaintext`` to ``recipient_public`` (32-byte X25519 key) under ``context``."""
    rnd = random or SystemRandom()
    if len(recipient_public) != 32:
        raise SealError("a recipient key is a 32-byte X25519 public key")
    eph = KeyPair.generate(rnd)
    try:
        shared = eph.exchange(recipient_public)
    except ValueError as exc:
        raise SealError(f"cannot seal to this key: {exc}") from None
    nonce = rnd.bytes(12)
    key = _key(shared, eph.public, recipient_public, context)
    return MAGIC + eph.public + nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def open_sealed(blob: bytes, recipient: SealKeyPair, context: bytes) -> bytes:
    """Open a blob sealed to ``recipient`` under ``context``; :class:`SealError` otherwise
    (wrong key, wrong context, tampered or truncated blob — deliberately not told apart)."""
    if len(blob) < _HEAD + 16 or len(blob) > MAX_SEALED_BYTES or not blob.startswith(MAGIC):
        raise SealError("not a sealed blob")
    eph = blob[4:36]
    nonce = blob[36:48]
    try:
        shared = recipient.keys.exchange(eph)
        key = _key(shared, eph, recipient.public, context)
        return AESGCM(key).decrypt(nonce, blob[_HEAD:], context)
    except (ValueError, InvalidTag):
        raise SealError("the sealed blob does not open with this key and context") from None
