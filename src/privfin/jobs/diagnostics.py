"""Diagnostic components: measure what the federation itself costs between parties.

``ping``: the first party (by name) sends ``rounds`` messages of ``size`` bytes to every other
party, each of which answers at once; the first party reports round-trip times. With
``oneway`` > 0 it then sends that many messages one after the other (each ``send`` returning
as the transport's does) and reports how many per second reached every peer (a peer answers
once it has received them all). Nothing but random padding crosses the boundary.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.errors import ConfigError
from privfin.runtime import Context

__all__ = ["ping_component"]


def ping_component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """Ping-pong ``rounds`` (default 50) messages of ``size`` bytes (default 64)."""
    rounds = int(params.get("rounds", 50))
    size = int(params.get("size", 64))
    oneway = int(params.get("oneway", 0))
    if not (1 <= rounds <= 100_000 and 0 <= size <= 64 * 1024 * 1024):
        raise ConfigError("ping needs 1 <= rounds <= 100000 and 0 <= size <= 64 MiB")
    if not 0 <= oneway <= 1_000_000:
        raise ConfigError("ping needs 0 <= oneway <= 1000000")
    parties = sorted(ctx.roles)
    leader = parties[0]
    payload = np.frombuffer(ctx.random.bytes(size), dtype=np.uint8)
    if ctx.party != leader:
        for _ in range(rounds):
            ctx.channel.send(leader, "pong", ctx.channel.recv(leader, "ping"))
        if oneway:
            for _ in range(oneway):
                ctx.channel.recv(leader, "flood")
            ctx.channel.send(leader, "flooded", True)
        return None
    rtts = []
    for _ in range(rounds):
        start = time.perf_counter()
        ctx.channel.broadcast("ping", payload)
        ctx.channel.gather("pong")
        rtts.append(time.perf_counter() - start)
    ms = np.array(rtts) * 1000
    out: dict[str, Any] = {
        "rounds": rounds,
        "size": size,
        "rtt_ms_median": float(np.median(ms)),
        "rtt_ms_p90": float(np.percentile(ms, 90)),
        "rtt_ms_min": float(ms.min()),
    }
    if oneway:
        start = time.perf_counter()
        for _ in range(oneway):
            ctx.channel.broadcast("flood", payload)
        ctx.channel.gather("flooded")
        out["oneway"] = oneway
        out["oneway_per_s"] = oneway / (time.perf_counter() - start)
    return out
