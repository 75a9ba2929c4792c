"""Sealing a payload to an X25519 public key (ECIES): an ephemeral X25519 key, HKDF-SHA256 over
the shared secret bound to both public keys and a context string, AES-256-GCM with the context
as associated data.

Used three times: a data owner wraps a data key to the key broker; the broker re-wraps it to
an enclave's attested key; the enclave seals its result to the result party. Only the holder of
the recipient's private key opens a blob, and only under the same context (so a blob sealed for
one job, dataset or purpose does not open in another).

:func:`seal_authenticated` also proves *who* sealed: the plaintext carries an HMAC-SHA256 tag
under a key derived from the static X25519 exchange of the sender's and the recipient's keys,
which only those two can compute. The enclave seals its result this way, so a result party
that has verified the enclave's attested key knows the result comes from that enclave and not
from the host (who could seal anything to the result party's public key).

Blob layout (bytes): ``b"PFS1" ‖ ephemeral public key (32) ‖ GCM nonce (12) ‖ ciphertext+tag``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privfin.crypto.kex import KeyPair
from privfin.crypto.random import RandomSource, SystemRandom
from privfin.tee.errors import SealError

__all__ = [
    "MAGIC",
    "MAX_SEALED_BYTES",
    "SealKeyPair",
    "open_authenticated",
    "open_sealed",
    "seal",
    "seal_authenticated",
]

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


def _auth_key(shared: bytes, sender: bytes, recipient: bytes, context: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=sender + recipient,
        info=b"privfin-tee-auth-v1|" + context,
    ).derive(shared)


def seal_authenticated(
    plaintext: bytes,
    recipient_public: bytes,
    sender: SealKeyPair,
    context: bytes,
    *,
    random: RandomSource | None = None,
) -> bytes:
    """Seal ``plaintext`` to ``recipient_public`` with a tag that proves ``sender`` sealed it."""
    try:
        shared = sender.keys.exchange(recipient_public)
    except ValueError as exc:
        raise SealError(f"cannot seal to this key: {exc}") from None
    key = _auth_key(shared, sender.public, recipient_public, context)
    tag = hmac.new(key, plaintext, hashlib.sha256).digest()
    return seal(tag + plaintext, recipient_public, context, random=random)


def open_authenticated(
    blob: bytes, recipient: SealKeyPair, sender_public: bytes, context: bytes
) -> bytes:
    """Open a blob from :func:`seal_authenticated`; :class:`SealError` unless it opens *and*
    was sealed by the holder of ``sender_public``."""
    inner = open_sealed(blob, recipient, context)
    if len(inner) < 32:
        raise SealError("the sealed blob carries no sender tag")
    tag, plaintext = inner[:32], inner[32:]
    try:
        shared = recipient.keys.exchange(sender_public)
    except ValueError:
        raise SealError("the sender key is not a valid X25519 key") from None
    key = _auth_key(shared, sender_public, recipient.public, context)
    if not hmac.compare_digest(tag, hmac.new(key, plaintext, hashlib.sha256).digest()):
        raise SealError("the sealed blob was not sealed by the expected sender")
    return plaintext
