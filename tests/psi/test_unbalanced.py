"""Unbalanced OPRF-PSI: offline phase, cached filter, refresh, rate limit and audit."""

from __future__ import annotations

import pytest

from privfin.compute import ThreadBackend
from privfin.crypto.random import SeededRandom
from privfin.errors import ProtocolAbort
from privfin.federation.memory import MemoryHub
from privfin.psi import psi_component
from privfin.psi.unbalanced import FilterCache, OprfServer, QueryPolicy
from privfin.runtime import simulate

ROLES = {"client": ("client",), "server": ("server",)}
PARAMS = {"protocol": "unbalanced", "normalize": "exact"}


def query(server: OprfServer, ids: list[str], cache: FilterCache, hub: MemoryHub | None = None):  # type: ignore[no-untyped-def]
    out = simulate(
        psi_component,
        ROLES,
        params=PARAMS,
        inputs={"client": {"ids": ids, "filter_cache": cache}, "server": {"server": server}},
        hub=hub,
    )
    return out["client"]["ids"], out["server"]


def test_offline_filter_cached_and_refreshed() -> None:
    items = [f"blacklisted-{i}" for i in range(500)]
    with ThreadBackend(2) as compute:
        server = OprfServer.setup(items, random=SeededRandom(1), normalize="exact", compute=compute)
    assert server.filter.values.size == 500
    cache = FilterCache()
    hub = MemoryHub()
    got, srv = query(server, ["blacklisted-3", "clean", "blacklisted-499"], cache, hub)
    assert got == ["blacklisted-3", "blacklisted-499"]
    assert srv["ids"] is None  # the server learns nothing
    first_bytes = sum(len(p) for _, p in hub.wire)
    hub2 = MemoryHub()
    assert query(server, ["blacklisted-7", "x"], cache, hub2)[0] == ["blacklisted-7"]
    assert sum(len(p) for _, p in hub2.wire) < first_bytes - 8 * 500  # filter not re-sent
    server.add(["new-entry"])
    server.remove(["blacklisted-7"])
    assert query(server, ["blacklisted-7", "new-entry"], cache)[0] == ["new-entry"]
    assert cache.filter is not None and cache.filter.version == 3


def test_rate_limit_and_audit() -> None:
    now = [1000.0]
    records = []
    server = OprfServer.setup(
        ["a", "b", "c"],
        random=SeededRandom(2),
        normalize="exact",
        policy=QueryPolicy(max_items_per_query=3, max_items_per_window=4, window_seconds=60),
        clock=lambda: now[0],
        audit=records.append,
    )
    cache = FilterCache()
    assert query(server, ["a", "z"], cache)[0] == ["a"]
    with pytest.raises(ProtocolAbort, match="rate limit"):
        query(server, ["a", "b", "c", "d"], cache)  # too large a query
    with pytest.raises(ProtocolAbort, match="rate limit"):
        query(server, ["b", "c", "q"], cache)  # window exhausted (2 + 3 > 4)
    now[0] += 61
    assert query(server, ["b", "c", "q"], cache)[0] == ["b", "c"]
    assert [r.allowed for r in records] == [True, False, False, True]
    assert all(r.client == "client" and r.items in (2, 3, 4) for r in records)
    assert server.audit_log == records


def test_client_points_invalid_rejected() -> None:
    server = OprfServer.setup(["a"], random=SeededRandom(3), normalize="exact")
    import numpy as np

    from privfin.crypto.ristretto import InvalidPointError

    with pytest.raises(InvalidPointError):
        server.evaluate(np.full((1, 32), 0xFF, dtype=np.uint8))
