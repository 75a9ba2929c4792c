"""The streaming transport through ``Channel`` between two processes (issue [11]).

Each process is one party: a :class:`~privfin.federation.stream.StreamServer` storing into its own
SQLite :class:`~privfin.federation.mailbox.Mailbox` (group commit through ``admit_many``; an ACK
is sent once the message is committed) and a
:class:`~privfin.federation.stream.StreamTransport` to the other, with privfin identities (mutual
TLS, each side pinning the other). Figures, from this process (``bank_a``):

- round trip of a 64-byte array: ``Channel.send`` + ``Channel.recv`` of the echo (median, p90);
- one way, sequential: ``Channel.send`` of 64-byte arrays one after the other (each returns
  once the peer has stored it);
- one way, pipelined: ``StreamTransport.send_many`` of 100 messages at a time;
- bulk: ``Channel.send`` of 4 MiB arrays one after the other (chunked, stored in the peer's
  mailbox);
- the same three one-way figures with the peer's server storing nothing (``--no-store``: the
  transport alone, what durability costs).

Not the node path (no node processes, no job checks); the lead wires the transport into the
node and into ``benchmarks/transport.py``. Usage: ``python benchmarks/stream_channel.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, machine, print_table
from privfin.federation.frames import Code
from privfin.federation.mailbox import Mailbox
from privfin.federation.stream import (
    Outcome,
    StreamPeer,
    StreamServer,
    StreamTransport,
    mailbox_abort,
    mailbox_admit,
    mailbox_admit_many,
)
from privfin.federation.tls import Identity, create_identity
from privfin.federation.transport import Channel, MessageKey

A, B = "bank_a", "bank_b"
ROUNDS, SMALL, MANY, BULK = 2000, 5000, 100, 32


def _identity(root: Path, party: str) -> Identity:
    return Identity(party, root / party / f"{party}.crt", root / party / f"{party}.key")


def _server(root: Path, me: str, other: str, store: bool) -> tuple[Mailbox, StreamServer]:
    box = Mailbox(root / f"{me}-{int(store)}.sqlite")
    trusted = {other: _identity(root, other).cert.read_bytes()}
    if store:
        server = StreamServer(
            _identity(root, me),
            trusted,
            mailbox_admit(box),
            admit_many=mailbox_admit_many(box),
            on_abort=mailbox_abort(box),
        )
    else:

        def admit(sender: str, key: MessageKey, payload: bytes) -> Outcome:
            return Outcome(Code.STORED)

        server = StreamServer(_identity(root, me), trusted, admit)
    return box, server.start()


def _transport(root: Path, me: str, other: str, port: int, box: Mailbox) -> StreamTransport:
    peer = StreamPeer("127.0.0.1", port, _identity(root, other).cert.read_bytes())
    return StreamTransport(_identity(root, me), {other: peer}, box, send_timeout=120)


def peer(root: Path, store: bool) -> None:
    """bank_b: echo the pings, take the rest (when storing), until told to stop."""
    box, server = _server(root, B, A, store)
    print(server.port, flush=True)
    port = int(sys.stdin.readline())
    transport = _transport(root, B, A, port, box)
    if store:
        ch = Channel(transport, job="bench", component="c", party=B, peers=[A], default_timeout=120)
        for _ in range(ROUNDS + 100):
            ch.send(A, "pong", ch.recv(A, "ping"))
    sys.stdin.readline()  # done
    transport.close()
    server.close()


def run(root: Path, store: bool) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--peer", str(root), str(int(store))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    port = int(proc.stdout.readline())
    box, server = _server(root, A, B, store)
    proc.stdin.write(f"{server.port}\n")
    proc.stdin.flush()
    transport = _transport(root, A, B, port, box)
    ch = Channel(transport, job="bench", component="c", party=A, peers=[B], default_timeout=120)
    out: dict[str, float] = {}
    try:
        x = np.zeros(8)
        if store:
            for _ in range(100):
                ch.send(B, "ping", x)
                ch.recv(B, "pong")
            rtts = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                ch.send(B, "ping", x)
                ch.recv(B, "pong")
                rtts.append((time.perf_counter() - start) * 1000)
            out["rtt_ms_median"] = statistics.median(rtts)
            out["rtt_ms_p90"] = statistics.quantiles(rtts, n=10)[-1]
        start = time.perf_counter()
        for _ in range(SMALL):
            ch.send(B, "small", x)
        out["sequential_per_s"] = SMALL / (time.perf_counter() - start)
        seqs = iter(range(10**9))
        start = time.perf_counter()
        for _ in range(SMALL // MANY):
            transport.send_many(
                [
                    (MessageKey("bench", "c", "many", A, B, next(seqs)), bytes(64))
                    for _ in range(MANY)
                ]
            )
        out["send_many_per_s"] = SMALL / (time.perf_counter() - start)
        block = np.frombuffer(os.urandom(4 << 20), dtype=np.uint8)
        ch.send(B, "bulk", block)
        start = time.perf_counter()
        for _ in range(BULK):
            ch.send(B, "bulk", block)
        out["bulk_mb_s"] = BULK * block.nbytes / (time.perf_counter() - start) / 1e6
    finally:
        proc.stdin.write("done\n")
        proc.stdin.flush()
        proc.wait(60)
        transport.close()
        server.close()
        box.close()
    return out


FIGURES = [
    ("rtt_ms_median", "round trip 64 B through Channel, median", "ms"),
    ("rtt_ms_p90", "round trip 64 B through Channel, p90", "ms"),
    ("sequential_per_s", "64 B one way, one send after the other", "msg/s"),
    ("send_many_per_s", f"64 B one way, send_many of {MANY}", "msg/s"),
    ("bulk_mb_s", "4 MiB messages one way", "MB/s"),
]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        peer(Path(sys.argv[2]), sys.argv[3] == "1")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for party in (A, B):
            create_identity(party, root / party)
        stored = run(root, True)
        bare = run(root, False)
    load = os.getloadavg()
    rows = [
        {
            "figure": label,
            "unit": unit,
            "stored (ACK after commit)": stored.get(key),
            "not stored": bare.get(key),
        }
        for key, label, unit in FIGURES
    ]
    print_table(
        f"Stream transport through Channel, 2 processes, mTLS loopback ({machine()}, "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})",
        rows,
    )
    for key, _, unit in FIGURES:
        if key in stored:
            emit(
                f"stream.{key}",
                unit,
                stored[key],
                None,
                "none named",
                unit != "ms",
                "2 processes, mTLS loopback, SQLite mailbox",
            )
    print(json.dumps({"stored": stored, "not_stored": bare}))


if __name__ == "__main__":
    main()
