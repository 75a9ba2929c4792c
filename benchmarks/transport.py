"""HTTP transport throughput between two local nodes over mutual TLS.

Measures, from party ``bank_a``'s transport to ``bank_b``'s node, the time until a payload is
durably stored in ``bank_b``'s mailbox: MB/s for 1 MiB and 64 MiB payloads (64 MiB travels in
4 MiB chunks), and messages/s for small (100-byte) messages sent one after the other; then the
round-trip time of the ``ping`` diagnostic component between the two node processes (what one
protocol round costs).
No peer is installed for this figure: the issue names none (FATE's and SecretFlow's transports
need their whole platforms); the JSON lines carry ``peer: null``.

Usage: ``python benchmarks/transport.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml

from _harness import emit, machine, print_table
from privfin.federation.http import HttpTransport
from privfin.federation.mailbox import Mailbox
from privfin.federation.transport import CancelToken, MessageKey
from privfin.node.cluster import cluster_up
from privfin.node.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [
        ("1 MiB", 1 << 20, 20 if not args.quick else 5),
        ("64 MiB", 64 << 20, 3 if not args.quick else 1),
    ]
    n_small = 200 if args.quick else 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cluster = cluster_up(["bank_a", "bank_b"], Path(tmp) / "c")
        try:
            # The raw transport sends for a job bank_b never runs: its pre-job buffer (64
            # messages / 16 MiB by default, [08]) would refuse the bulk payloads with 429.
            # Measure the transport, not the quota: restart bank_b with a larger buffer.
            cluster.down()
            path = cluster.config_path("bank_b")
            cfg = yaml.safe_load(path.read_text())
            cfg["quotas"] = {"prejob_messages": 100_000, "prejob_bytes": 1 << 30}
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            for party in ("bank_a", "bank_b"):
                cluster.start(party)
            cluster.wait_healthy()
            cfg = load_config(cluster.config_path("bank_a"))
            transport = HttpTransport(
                cfg.identity, cfg.transport_peers(), Mailbox(Path(tmp) / "a.db")
            )
            inbox = Mailbox(cluster.root / "bank_b" / "state" / "node.sqlite")
            cancel = CancelToken()
            seq = 0

            def one(payload: bytes, tag: str) -> None:
                nonlocal seq
                key = MessageKey("bench", "transport", tag, "bank_a", "bank_b", seq)
                seq += 1
                transport.send(key, payload)
                inbox.wait(key, 300, cancel)

            one(b"warm-up", "warm")
            for label, size, reps in sizes:
                payload = os.urandom(size)
                start = time.perf_counter()
                for _ in range(reps):
                    one(payload, "bulk")
                secs = (time.perf_counter() - start) / reps
                mbps = size / secs / 1e6
                rows.append({"what": f"payload {label}", "value": mbps, "unit": "MB/s"})
                emit(
                    f"transport.http.throughput_{label.replace(' ', '').lower()}",
                    "MB/s",
                    mbps,
                    None,
                    "none named",
                    True,
                    f"{label}, mTLS loopback, 2 nodes",
                )
            small = os.urandom(100)
            start = time.perf_counter()
            for _ in range(n_small):
                one(small, "small")
            rate = n_small / (time.perf_counter() - start)
            rows.append({"what": "small messages (100 B)", "value": rate, "unit": "msg/s"})
            emit(
                "transport.http.small_messages",
                "msg/s",
                rate,
                None,
                "none named",
                True,
                "100 B, sequential, mTLS loopback",
            )
            transport.close()
            rounds = 100 if args.quick else 500
            spec = {
                "job": "ping",
                "component": "ping",
                "roles": {"bank_a": ["x"], "bank_b": ["x"]},
                "params": {"rounds": rounds, "size": 64},
            }
            for party in ("bank_a", "bank_b"):
                with cluster.client(party) as client:
                    client.submit(spec)
            with cluster.client("bank_a") as client:
                ping = client.wait("ping", timeout=600)["result"]["output"]
            rows.append(
                {
                    "what": "round trip (64 B each way), median",
                    "value": ping["rtt_ms_median"],
                    "unit": "ms",
                }
            )
            rows.append(
                {"what": "round trip, 90th percentile", "value": ping["rtt_ms_p90"], "unit": "ms"}
            )
            emit(
                "transport.http.rtt_median",
                "ms",
                ping["rtt_ms_median"],
                None,
                "none named",
                False,
                f"{rounds} ping-pongs between two node processes, mTLS loopback",
            )
        finally:
            cluster.down()
    print_table(f"HTTP transport over mutual TLS ({machine()})", rows)


if __name__ == "__main__":
    main()
