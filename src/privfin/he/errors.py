"""Exceptions specific to :mod:`privfin.he`.

Both derive from :class:`privfin.errors.PrivfinError` (so callers catching the privfin root see
them) and from the matching builtin (so generic numeric code can catch them too).
"""

from __future__ import annotations

from privfin.errors import PrivfinError

__all__ = ["KeyMismatchError", "OverflowDetected", "PlaintextOutOfRange"]


class OverflowDetected(PrivfinError, OverflowError):
    """A value does not fit, or may no longer fit, in the declared plaintext range.

    Raised when encoding a value that is too large for the key or the packing slot, and when
    decrypting a ciphertext whose tracked bound exceeds the key's capacity (the result may have
    wrapped modulo the plaintext modulus) or whose decrypted value lies outside its tracked bound
    (a wrapped, corrupted or tampered ciphertext). A wrapped value is never returned silently.
    """


class KeyMismatchError(PrivfinError, ValueError):
    """Ciphertexts of different keys were combined, or a ciphertext was decrypted, loaded or
    operated on with a key that is not the one it was encrypted under."""


class PlaintextOutOfRange(OverflowDetected):
    """A ciphertext decrypted to a residue outside the scheme's plaintext bound, which no honest
    computation produces (a ciphertext chosen by a peer, or corrupted). The decryption is not
    returned: for Okamoto–Uchiyama it would reveal the secret prime ``p``."""
