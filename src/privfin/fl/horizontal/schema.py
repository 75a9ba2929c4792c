"""Before a pipeline's horizontal step: the clients tell the server their feature columns and
the server checks that every client has the same ones in the same order (horizontal FL needs
one schema). Only column names leave a client (metadata, no values)."""

from __future__ import annotations

from collections.abc import Sequence

from privfin.errors import ConfigError
from privfin.federation.codec import Message, wire_message
from privfin.runtime import Context

__all__ = ["Schema", "agree_columns"]

TAG = "hfl.schema"


@wire_message("hfl.Schema")
class Schema(Message, frozen=True, kw_only=True):
    """Client -> server: the client's feature column names, in order."""

    columns: list[str]

    def __post_init__(self) -> None:
        if not 0 < len(self.columns) <= 1 << 16:
            raise ValueError("between 1 and 65536 columns")
        if any(not isinstance(c, str) or not 0 < len(c) <= 256 for c in self.columns):
            raise ValueError("column names are 1..256 characters")


def agree_columns(
    ctx: Context,
    server: str,
    clients: Sequence[str],
    columns: Sequence[str] | None,
    timeout: float = 600.0,
) -> list[str]:
    """Clients (``columns`` given) send their columns; the server (``columns`` None) receives
    every client's and returns them if they all agree.

    Raises
    ------
    ConfigError
        At the server: two clients' columns differ (named, with the first difference).
    """
    if columns is not None:
        ctx.channel.send(server, TAG, Schema(columns=[str(c) for c in columns]))
        return list(columns)
    got = ctx.channel.gather(TAG, peers=list(clients), expect=Schema, timeout=timeout)
    first = sorted(got)[0]
    ref = got[first].columns
    for c, msg in sorted(got.items()):
        if msg.columns != ref:
            diff = next(
                (i for i, (a, b) in enumerate(zip(ref, msg.columns, strict=False)) if a != b),
                min(len(ref), len(msg.columns)),
            )
            raise ConfigError(
                f"clients {first!r} and {c!r} have different feature columns "
                f"({len(ref)} and {len(msg.columns)} columns, first difference at position "
                f"{diff}): horizontal FL needs the same columns in the same order"
            )
    return list(ref)
