"""Each party's role in a PSI run, from the order of the parties (no protocol imports: the
``privfin psi`` command needs it before it starts the nodes)."""

from __future__ import annotations

from collections.abc import Sequence

from privfin.errors import ConfigError

__all__ = ["psi_roles"]


def psi_roles(parties: Sequence[str], protocol: str) -> dict[str, tuple[str, ...]]:
    """Two parties: the first is the receiver (unbalanced: the client), the second the
    sender (the server); three or more: the first leads n-party PSI, the others are members."""
    if protocol == "unbalanced":
        if len(parties) != 2:
            raise ConfigError("unbalanced psi runs between exactly two parties (client, server)")
        return {parties[0]: ("client",), parties[1]: ("server",)}
    if len(parties) == 2:
        return {parties[0]: ("receiver",), parties[1]: ("sender",)}
    return {p: ("leader",) if i == 0 else ("member",) for i, p in enumerate(parties)}
