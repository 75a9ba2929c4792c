"""[19] Network tolerance: two node processes over the streaming transport, under the netem WAN
(where this machine permits it) and through the loopback fallback (always), with a cut link."""

from __future__ import annotations

import contextlib
import time

import pytest

from privfin.assess import netem
from privfin.assess.measure import measure_technology
from privfin.assess.model import Perspective

TINY_HE = (4, 2, 2)  # rows, features, parties of the encrypted-scoring workload


def test_delay_proxy_delays_and_cuts() -> None:
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            with conn, contextlib.suppress(OSError):  # the first one is cut
                while data := conn.recv(1024):
                    conn.sendall(data)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    proxy = netem.DelayProxy(port, delay=0.1, rate=1e6)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as c:
            start = time.perf_counter()
            c.sendall(b"ping")
            assert c.recv(16) == b"ping"
            rtt = time.perf_counter() - start
            assert 0.2 <= rtt < 2.0  # 100 ms each way
            proxy.cut(0.8)
            c.settimeout(5)
            assert c.recv(16) == b""  # the proxy dropped the connection
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as c:
            c.sendall(b"held")
            c.settimeout(0.2)
            with pytest.raises(TimeoutError):
                c.recv(16)  # nothing passes while the link is down
            c.settimeout(5)
            assert c.recv(16) == b"held"  # up again: the held connection goes through
    finally:
        proxy.close()
        server.close()


def test_loopback_fallback_runs_two_nodes_and_survives_a_cut() -> None:
    run = netem.run_two_nodes("he", TINY_HE, seed=1, cut_after=0.05, deadline=90)
    assert run.cut.startswith("every connection between the nodes dropped")
    assert run.ok, run.error  # the stream transport reconnects and resends
    assert (run.wall_s is not None and run.wall_s >= netem.CUT_SECONDS * 0.9) or run.cut_after_end


def test_network_evidence_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake(technology: str, size: object, **kw: object) -> netem.NetworkResult:
        seen.update(kw, technology=technology)
        return netem.NetworkResult("loopback-fallback: test", 2.0, "", "recovered", "cut 3 s")

    monkeypatch.setattr(netem, "measure_network", fake)
    out = measure_technology("psi", scaling=False, force_loopback="test")
    comm = {e.name: e.value for e in out[Perspective.COMMUNICATION]}
    assert seen["technology"] == "psi" and seen["force_loopback"] == "test"
    assert comm["wan_mode"] == "loopback-fallback: test"
    assert comm["wan_wall_s"] == 2.0
    wall = next(e.value for e in out[Perspective.PERFORMANCE] if e.name == "wall_s")
    assert comm["wan_slowdown"] == pytest.approx(2.0 / float(wall))
    assert comm["interruption"] == "recovered" and comm["interruption_detail"] == "cut 3 s"
    # single-party technologies have no network to measure
    local = measure_technology("dp-central", scaling=False)
    assert "wan_mode" not in {e.name for e in local[Perspective.COMMUNICATION]}


def test_netem_wan_is_slower_than_its_round_trips() -> None:
    why = netem.wan_unavailable()
    if why is not None:
        pytest.skip(
            f"tc netem not available here ({why}): install iproute2 and run as root on a "
            "kernel with the sch_netem qdisc"
        )
    with netem.veth_pair() as link:
        run = netem.run_two_nodes("he", TINY_HE, seed=1, link=link, deadline=90)
    assert run.ok, run.error
    assert run.wall_s is not None and run.wall_s >= 0.05  # at least one 50 ms round trip
