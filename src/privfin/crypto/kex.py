"""X25519 key agreement and HKDF seed derivation (via ``cryptography``).

A party's ephemeral private key stays in a :class:`KeyPair` handle; only the 32-byte public
key is sent. :func:`derive_seed` binds the shared secret to a context (job, component, the
two parties in sorted order) so a seed is never reused across purposes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from privfin.crypto.random import RandomSource

__all__ = ["PUBLIC_KEY_BYTES", "KeyPair", "derive_seed"]

PUBLIC_KEY_BYTES = 32


@dataclass(frozen=True, repr=False)
class KeyPair:
    """An X25519 key pair. ``repr`` never shows the private key."""

    _private: X25519PrivateKey

    @classmethod
    def generate(cls, random: RandomSource) -> KeyPair:
        return cls(X25519PrivateKey.from_private_bytes(random.bytes(32)))

    @classmethod
    def from_private_bytes(cls, data: bytes) -> KeyPair:
        """Load a key pair saved with :meth:`private_bytes_for_checkpoint`."""
        return cls(X25519PrivateKey.from_private_bytes(data))

    def private_bytes_for_checkpoint(self) -> bytes:
        """The raw private key, for the party's own checkpoint store. Never send it."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def exchange(self, peer_public: bytes) -> bytes:
        """X25519 shared secret with ``peer_public`` (raises ValueError on a bad key)."""
        if len(peer_public) != PUBLIC_KEY_BYTES:
            raise ValueError("an X25519 public key is 32 bytes")
        shared = self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        if shared == bytes(32):
            raise ValueError("peer public key is a low-order point")
        return shared

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()[:16]}…)"


def derive_seed(shared_secret: bytes, context: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``shared_secret`` bound to ``context``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=context).derive(
        shared_secret
    )
