"""PSI benchmark: privfin ECDH-PSI (ristretto255) vs SecretFlow SPU and OpenMined PSI.

Sizes (full run): 100k x 100k and 1M x 1M, 50% overlap; ``--quick``: 20k x 20k (under a
minute). For each run: wall time, bytes sent, peak RSS (each implementation runs in its own
processes so RSS is not shared). Unbalanced: server offline phase, then one 1k-item query.

Peers (installed into benchmarks/.venvs/ on first use):
* ``spu==0.9.5``: ``spu.psi.psi_execute`` with ECDH (FourQ), KKRT and RR22, two processes on
  127.0.0.1 (brpc link).
* ``openmined-psi==2.0.6``: client and server in one process (ECDH over P-256, raw set).

privfin runs both parties in one process (threads over the memory transport; libsodium
releases the GIL so the two parties use both cores). The machine is shared: timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import emit, machine, peer_python, print_table, run_peer

ROOT = Path(__file__).resolve().parent.parent

OURS = r"""
import json, resource, sys, time
from privfin.federation.memory import MemoryHub
import privfin.psi as psi
n = int(sys.argv[1]); overlap = n // 2
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
a = [f"user-{i:09d}" for i in range(n)]
b = [f"user-{i:09d}" for i in range(n - overlap, 2 * n - overlap)]
hub = MemoryHub()
t = time.perf_counter()
out = psi.simulate({"alice": a, "bob": b}, reveal_to="receiver", hub=hub)
wall = time.perf_counter() - t
assert len(out["alice"]) == overlap, len(out["alice"])
sent = sum(len(p) for _, p in hub.wire)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"wall": wall, "bytes": sent, "rss": rss, "base": base}))
"""

OURS_UNBALANCED = r"""
import json, resource, sys, time
from privfin.compute import ThreadBackend
from privfin.crypto.random import SystemRandom
from privfin.psi import psi_component
from privfin.psi.unbalanced import FilterCache, OprfServer, QueryPolicy
from privfin.runtime import simulate
n = int(sys.argv[1]); q = int(sys.argv[2])
items = [f"user-{i:09d}" for i in range(n)]
t = time.perf_counter()
with ThreadBackend(2) as compute:
    server = OprfServer.setup(items, random=SystemRandom(), normalize="exact", compute=compute)
offline = time.perf_counter() - t
del items
rss_offline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
query = [f"user-{i:09d}" for i in range(0, q, 2)] + [f"other-{i}" for i in range(q // 2)]
cache = FilterCache()
roles = {"client": ("client",), "server": ("server",)}
params = {"protocol": "unbalanced", "normalize": "exact"}
def run():
    return simulate(psi_component, roles, params=params,
        inputs={"client": {"ids": query, "filter_cache": cache}, "server": {"server": server}})
t = time.perf_counter(); run(); first = time.perf_counter() - t
t = time.perf_counter(); out = run(); online = time.perf_counter() - t
print(json.dumps({"offline": offline, "first": first, "online": online,
                  "found": out["client"]["size"], "rss": rss_offline,
                  "filter_bytes": int(server.filter.values.nbytes)}))
"""

OPENMINED = r"""
import json, resource, sys, time
import private_set_intersection.python as psi
n = int(sys.argv[1]); overlap = n // 2
a = [f"user-{i:09d}" for i in range(n)]
b = [f"user-{i:09d}" for i in range(n - overlap, 2 * n - overlap)]
t = time.perf_counter()
c = psi.client.CreateWithNewKey(True)
s = psi.server.CreateWithNewKey(True)
setup = s.CreateSetupMessage(1e-9, len(a), b, psi.DataStructure.RAW)
req = c.CreateRequest(a)
resp = s.ProcessRequest(req)
inter = c.GetIntersection(setup, resp)
wall = time.perf_counter() - t
sent = setup.ByteSize() + req.ByteSize() + resp.ByteSize()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"wall": wall, "bytes": sent, "rss": rss, "found": len(inter)}))
"""

SPU_PARTY = r"""
import json, resource, sys, time
from spu import psi
from spu import libspu
rank, proto, inp, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
port = int(sys.argv[5])
link = libspu.link
desc = link.Desc()
desc.id = "bench"
desc.recv_timeout_ms = 3600 * 1000
desc.add_party("alice", f"127.0.0.1:{port}")
desc.add_party("bob", f"127.0.0.1:{port + 1}")
lctx = link.create_brpc(desc, rank)
protocol = {"ECDH": psi.PsiProtocol.PROTOCOL_ECDH, "KKRT": psi.PsiProtocol.PROTOCOL_KKRT,
            "RR22": psi.PsiProtocol.PROTOCOL_RR22}[proto]
conf = psi.PsiExecuteConfig(
    protocol_conf=psi.PsiProtocolConfig(
        protocol=protocol, receiver_rank=0, broadcast_result=False,
        ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_FOURQ)),
    input_params=psi.InputParams(type=psi.SourceType.SOURCE_TYPE_FILE_CSV, path=inp,
                                 selected_keys=["id"], keys_unique=True),
    output_params=psi.OutputParams(type=psi.SourceType.SOURCE_TYPE_FILE_CSV, path=out,
                                   disable_alignment=True),
)
t = time.perf_counter()
report = psi.psi_execute(conf, lctx)
wall = time.perf_counter() - t
sent = None
for name in ("GetStats", "get_stats"):
    fn = getattr(lctx, name, None)
    if fn is not None:
        try:
            st = fn(); sent = int(getattr(st, "sent_bytes", 0))
        except Exception:
            pass
lctx.stop_link()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"wall": wall, "bytes": sent, "rss": rss,
                  "found": int(getattr(report, "intersection_count", -1))}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ours(n: int) -> dict[str, Any]:
    return dict(run_peer(Path(sys.executable), OURS, str(n)))


def _spu(python: Path, n: int, proto: str, tmp: Path) -> dict[str, Any]:
    overlap = n // 2
    files = []
    for party, start in (("alice", 0), ("bob", n - overlap)):
        path = tmp / f"{party}-{n}.csv"
        if not path.exists():
            with path.open("w") as fh:
                fh.write("id\n")
                fh.writelines(f"user-{i:09d}\n" for i in range(start, start + n))
        files.append(path)
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                str(python),
                "-c",
                SPU_PARTY,
                str(rank),
                proto,
                str(files[rank]),
                str(tmp / f"out-{rank}.csv"),
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"spu party failed: {stderr[-800:]}")
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]  # spu logs to stdout
        outs.append(json.loads(lines[-1]))
    sent = [o["bytes"] for o in outs]
    return {
        "wall": max(o["wall"] for o in outs),
        "bytes": None if None in sent else sum(sent),
        "rss": sum(o["rss"] for o in outs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20k x 20k only, under a minute")
    ap.add_argument("--no-peers", action="store_true", help="skip the peers")
    args = ap.parse_args()
    sizes = [20_000] if args.quick else [100_000, 1_000_000]
    print(f"# psi benchmark on {machine()}; shared machine, timings are noisy", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    spu_py = om_py = None
    if not args.no_peers:
        try:
            spu_py = peer_python("spu", ["spu==0.9.5"])
        except Exception as exc:  # a peer that cannot be installed is reported, not fatal
            print(f"# spu unavailable: {exc}", file=sys.stderr)
        try:
            om_py = peer_python("openmined-psi", ["openmined-psi==2.0.6"])
        except Exception as exc:
            print(f"# openmined-psi unavailable: {exc}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for n in sizes:
            size = f"{n:,} x {n:,}, 50% overlap, 2 cores"
            ours = _ours(n)
            rows.append(
                {
                    "impl": "privfin ECDH (ristretto255)",
                    "n": n,
                    "wall_s": ours["wall"],
                    "MB_sent": ours["bytes"] / 1e6,
                    "peak_RSS_MB": ours["rss"] / 1e6,
                }
            )
            peers: dict[str, dict[str, Any]] = {}
            if spu_py is not None:
                for proto in ("ECDH", "KKRT", "RR22"):
                    try:
                        peers[f"spu 0.9.5 {proto}" + (" (FourQ)" if proto == "ECDH" else "")] = (
                            _spu(spu_py, n, proto, tmp)
                        )
                    except Exception as exc:
                        print(f"# spu {proto} failed: {exc}", file=sys.stderr)
            if om_py is not None and n <= 100_000:  # ~210 s at 1M: skipped in the full run
                peers["openmined-psi 2.0.6"] = dict(run_peer(om_py, OPENMINED, str(n)))
            for name, res in peers.items():
                mb = None if res.get("bytes") is None else res["bytes"] / 1e6
                rows.append(
                    {
                        "impl": name,
                        "n": n,
                        "wall_s": res["wall"],
                        "MB_sent": mb,
                        "peak_RSS_MB": res["rss"] / 1e6,
                    }
                )
                emit("psi.ecdh.wall", "s", ours["wall"], res["wall"], name, False, size)
            if not peers:
                emit("psi.ecdh.wall", "s", ours["wall"], None, "", False, size)
            emit(
                "psi.ecdh.peak_rss_per_million",
                "MB",
                (ours["rss"] - ours["base"]) / n,
                None,
                "",
                False,
                size + " (both parties, above the interpreter's baseline)",
            )
        print_table("ECDH-PSI (2 parties)", rows)
        n_server = 20_000 if args.quick else 10_000_000
        ub = dict(
            run_peer(Path(sys.executable), OURS_UNBALANCED, str(n_server), "1000", timeout=7200)
        )
        usize = f"server {n_server:,}, query 1,000"
        emit("psi.unbalanced.offline", "s", ub["offline"], None, "", False, usize)
        emit(
            "psi.unbalanced.query_online",
            "s",
            ub["online"],
            None,
            "",
            False,
            usize + " (filter cached)",
        )
        emit(
            "psi.unbalanced.query_first",
            "s",
            ub["first"],
            None,
            "",
            False,
            usize + " (incl. filter download)",
        )
        print_table(
            "Unbalanced OPRF-PSI",
            [
                {
                    "server_items": n_server,
                    "offline_s": ub["offline"],
                    "filter_MB": ub["filter_bytes"] / 1e6,
                    "first_query_s": ub["first"],
                    "query_s": ub["online"],
                    "found": ub["found"],
                    "peak_RSS_MB": ub["rss"] / 1e6,
                }
            ],
        )
    os.environ.pop("_", None)


if __name__ == "__main__":
    main()
