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
    "DataPolicyError",
    "DecodeError",
    "DiskFullError",
    "InputError",
    "InsecureModeError",
    "PeerTimeout",
    "PrivfinError",
    "ProtocolAbort",
    "StoreError",
    "disk_full",
]


class PrivfinError(Exception):
    """Root of every error privfin raises on purpose."""


class ConfigError(PrivfinError):
    """A configuration, parameter or input file is invalid; the message says which and why."""


class DataPolicyError(ConfigError):
    """A use of a registered dataset that its fields' sensitivity levels (JR/T 0171) or its
    usage policy forbid: a C3 field, a C2 field for a component that does not keep it
    private, an unknown field, a partner or a purpose the policy does not allow."""


class InputError(ConfigError):
    """A party's own input data is unfit for a component (not a number, NaN, infinite, a
    fraction where whole minor units are required, out of the declared range, a missing id).

    The message names the input, the column and how many rows are at fault, never a value; it
    is for the local operator only. Peers are told no more than that this party's input was
    rejected."""

    def __init__(self, message: str, *, column: str | None = None, rows: int = 0) -> None:
        super().__init__(message)
        self.column = column
        self.rows = rows


class DiskFullError(PrivfinError):
    """The node could not write its state because the disk (or the user's quota) is full.

    ``where`` is the local directory that could not be written; it stays in the local log.
    Peers are told only that this party failed with an internal error."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"disk full at {where}: the node cannot write its state; free space there "
            "(or raise the quota) and restart the job"
        )
        self.where = where


def disk_full(exc: BaseException, where: str) -> DiskFullError | None:
    """A :class:`DiskFullError` for ``where`` if ``exc`` (or an exception it was raised from)
    is an ``OSError`` with ``errno`` ENOSPC or EDQUOT; ``None`` otherwise."""
    import errno

    codes = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    seen: BaseException | None = exc
    for _ in range(16):
        if seen is None:
            break
        if isinstance(seen, DiskFullError):
            return seen
        if isinstance(seen, OSError) and seen.errno in codes:
            return DiskFullError(where)
        if "database or disk is full" in str(seen):  # SQLite's SQLITE_FULL
            return DiskFullError(where)
        seen = seen.__cause__ or seen.__context__
    return None


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


class StoreError(PrivfinError):
    """The node's database cannot be opened or migrated: unreachable, written by a newer
    privfin, or holding tables that do not match what privfin expects. The message names the
    database (password hidden) and what to do."""
