"""Channel semantics over the memory transport: ordering, typing, timeouts, aborts, idempotence."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from privfin.compute import LocalBackend, SerialBackend, ThreadBackend
from privfin.compute.backend import chunked
from privfin.config import Settings, require_insecure_allowed
from privfin.crypto.prg import expand_uint64
from privfin.crypto.random import SeededRandom, SystemRandom
from privfin.errors import DecodeError, InsecureModeError, PeerTimeout, ProtocolAbort
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import CancelToken, Channel, MessageKey
from privfin.runtime import Context, simulate


def _channel(hub: MemoryHub, party: str, peers: list[str], timeout: float = 2.0) -> Channel:
    return Channel(
        hub.transport(party),
        job="j",
        component="c",
        party=party,
        peers=peers,
        default_timeout=timeout,
    )


def test_messages_arrive_in_order_with_types() -> None:
    hub = MemoryHub()
    a, b = _channel(hub, "a", ["a", "b"]), _channel(hub, "b", ["a", "b"])
    for i in range(5):
        a.send("b", "t", {"i": i, "v": np.arange(i)})
    got = [b.recv("a", "t") for _ in range(5)]
    assert [g["i"] for g in got] == list(range(5))
    assert a.stats.messages_sent == 5 and b.stats.messages_received == 5
    assert a.stats.bytes_sent == b.stats.bytes_received > 0
    a.send("b", "t", [1])
    with pytest.raises(DecodeError, match="expected a dict"):
        b.recv("a", "t", expect=dict)


def test_timeout_names_peer_and_tag() -> None:
    hub = MemoryHub()
    b = _channel(hub, "b", ["a", "b"], timeout=0.2)
    with pytest.raises(PeerTimeout) as info:
        b.recv("a", "weights")
    assert info.value.peer == "a" and info.value.tag == "weights"
    assert "'a'" in str(info.value) and "'weights'" in str(info.value)


def test_unknown_peer_and_bad_names() -> None:
    hub = MemoryHub()
    a = _channel(hub, "a", ["a", "b"])
    with pytest.raises(ValueError, match="not a peer"):
        a.send("z", "t", 1)
    with pytest.raises(ValueError):
        MessageKey("j", "c", "bad tag!", "a", "b", 0)
    with pytest.raises(ValueError):
        MessageKey("j", "c", "t", "a", "b", -1)


def test_duplicate_is_dropped_and_conflict_refused() -> None:
    hub = MemoryHub()
    t = hub.transport("a")
    key = MessageKey("j", "c", "t", "a", "b", 0)
    t.send(key, b"x")
    t.send(key, b"x")  # a retry: dropped
    assert hub.duplicates_dropped == 1
    with pytest.raises(ProtocolAbort, match="conflicting"):
        t.send(key, b"y")


def test_cancel_and_abort_stop_waiting() -> None:
    hub = MemoryHub()
    token = CancelToken()
    b = Channel(
        hub.transport("b"),
        job="j",
        component="c",
        party="b",
        peers=["a", "b"],
        default_timeout=30,
        cancel=token,
    )
    threading.Timer(0.1, token.cancel, args=("test",)).start()
    with pytest.raises(ProtocolAbort, match="cancelled"):
        b.recv("a", "t")
    c = _channel(hub, "c", ["a", "c"], timeout=30)
    threading.Timer(0.1, hub.transport("a").abort, args=("j", "a", ["c"], "boom")).start()
    with pytest.raises(ProtocolAbort, match="boom"):
        c.recv("a", "t")


def test_simulate_propagates_the_root_failure_fast() -> None:
    def component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> int:
        if ctx.party == "b":
            raise ValueError("bad input at b")
        return int(ctx.channel.recv("b", "never", timeout=30))

    with pytest.raises(ProtocolAbort, match="bad input at b"):
        simulate(component, {"a": ["x"], "b": ["x"]}, timeout=30)


def test_seeded_randomness_is_deterministic() -> None:
    assert SeededRandom(1).bytes(32) == SeededRandom(1).bytes(32)
    assert SeededRandom(1).bytes(32) != SeededRandom(2).bytes(32)
    r = SeededRandom("x")
    assert all(0 <= r.below(10) < 10 for _ in range(100))
    assert len(SystemRandom().bytes(16)) == 16
    seed = bytes(range(32))
    assert np.array_equal(expand_uint64(seed, 10), expand_uint64(seed, 10))
    assert not np.array_equal(expand_uint64(seed, 10), expand_uint64(seed, 10, stream=1))


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("backend", [SerialBackend(), ThreadBackend(2), LocalBackend(2)])
def test_compute_backends_map_in_order(backend: Any) -> None:
    with backend:
        assert backend.map(_square, range(20)) == [x * x for x in range(20)]
    assert [list(c) for c in chunked([1, 2, 3, 4, 5], 2)] == [[1, 2, 3], [4, 5]]


def test_insecure_modes_refused_in_production() -> None:
    with pytest.raises(InsecureModeError, match="trusted dealer"):
        require_insecure_allowed(Settings(), "trusted dealer")
    require_insecure_allowed(Settings(mode="development"), "trusted dealer")
    require_insecure_allowed(Settings(allow_insecure=True), "trusted dealer")
    assert Settings.from_env({"PRIVFIN_MODE": "development"}).mode == "development"
