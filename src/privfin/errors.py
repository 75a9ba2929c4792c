"""The exceptions of privfin.

One root, :class:`PrivfinError`, and one subclass per failure class, so callers can catch
exactly what they can handle. Messages say what was wrong and, where it helps, what to do.
Cryptographic failures are deliberately opaque: they never echo secret material.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigError",
    "DecodeError",
    "InsecureModeError",
    "PeerTimeout",
    "PrivfinError",
    "ProtocolAbort",
]


class PrivfinError(Exception):
    """Root of every error privfin raises on purpose."""


class ConfigError(PrivfinError):
    """A configuration, parameter or input file is invalid; the message says which and why."""


class InsecureModeError(ConfigError):
    """An insecure mode (trusted dealer, simulated enclave, short key) was requested without
    being enabled explicitly."""


class DecodeError(PrivfinError):
    """Bytes received from another party (or read from disk) are malformed, too large, of an
    unknown version, or decode to values outside their allowed range."""


class AuthenticationError(PrivfinError):
    """A peer could not be authenticated, or claimed an identity its credentials do not prove."""


class ProtocolAbort(PrivfinError):
    """A protocol stopped because a party deviated from it, sent inconsistent data, or asked to
    abort. ``party`` names the party at fault where it is known."""

    def __init__(self, message: str, *, party: str | None = None) -> None:
        super().__init__(message)
        self.party = party


class PeerTimeout(PrivfinError):
    """A message from a peer did not arrive in time."""

    def __init__(self, peer: str, tag: str, timeout: float) -> None:
        super().__init__(
            f"no message from party {peer!r} for tag {tag!r} within {timeout:g} s; "
            "check that its node is running and reachable"
        )
        self.peer = peer
        self.tag = tag
        self.timeout = timeout


class BudgetExceededError(PrivfinError):
    """A differential-privacy release would exceed the privacy budget it was charged to."""
