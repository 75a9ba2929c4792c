"""PSI benchmark: privfin ECDH-PSI (X25519 by default; ``ecdh-ristretto255`` for the original
suite), KKRT-PSI (OT extension) and RR22-PSI (silent VOLE + OKVS; ``--protocols ...,rr22``) vs
SecretFlow SPU and OpenMined PSI.

Sizes (full run): 100k x 100k and 1M x 1M, 50% overlap; ``--quick``: 20k x 20k (under a
minute). For each run: wall time, bytes sent, peak RSS (each implementation runs in its own
processes so RSS is not shared). Unbalanced: server offline phase, then one 1k-item query.

Peers (installed into benchmarks/.venvs/ on first use):
* ``spu==0.9.5``: ``spu.psi.psi_execute`` with ECDH (FourQ), KKRT and RR22, two processes on
  127.0.0.1 (brpc link).
* ``openmined-psi==2.0.6``: client and server in one process (ECDH over P-256, raw set).

``cpu_s`` is user+system CPU of all processes of a run (core-seconds): less sensitive to the
load of a shared machine than wall time.

privfin runs as ``privfin psi`` (the CLI): one node process per party over mutual TLS on
127.0.0.1, each with its default process-pool compute backend; the wall time is the whole CLI
run (node start, CSV load, protocol, aligned output written), bytes are the parties' channel
payloads, peak RSS is the largest single process (a party's node). The machine is shared:
timings are noisy; the load average is printed with every figure.
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
from _harness import (
    conditions,
    emit,
    installed_bytecode,
    machine,
    peer_python,
    print_table,
    run_peer,
)

ROOT = Path(__file__).resolve().parent.parent

OURS_NODES = r"""
import json, os, resource, subprocess, sys, time
cli, a, b, out, protocol, curve = sys.argv[1:7]
t = time.perf_counter()
proc = subprocess.run([cli, "psi", "--party", f"alice={a}", "--party", f"bob={b}", "--out", out,
                       "--reveal-to", "receiver", "--timeout", "7200", "--protocol", protocol,
                       "--curve", curve],
                      capture_output=True, text=True)
wall = time.perf_counter() - t
if proc.returncode:
    raise SystemExit(proc.stderr[-2000:])
summary = json.loads(proc.stdout.strip().splitlines()[-1])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rss = ru.ru_maxrss * 1024
cpu = ru.ru_utime + ru.ru_stime
by_party = {p: int(v.get("traffic", {}).get("bytes_sent", 0)) for p, v in summary.items()}
sent = sum(by_party.values())
stats = {p: v.get("stats", {}) for p, v in summary.items()}
print(json.dumps({"wall": wall, "bytes": sent, "rss": rss, "found": summary["alice"]["size"],
                  "stats": stats, "cpu": cpu, "bytes_by_party": by_party}))
"""

OURS_UNBALANCED = r"""
import json, resource, sys, time
from privfin.compute import ThreadBackend
from privfin.crypto.random import SystemRandom
from privfin.psi import psi_component
from privfin.psi.unbalanced import FilterCache, OprfServer, QueryPolicy
from privfin.runtime import simulate
n = int(sys.argv[1]); q = int(sys.argv[2])
def chunks():  # the server's ids streamed in chunks, as from a file
    for a in range(0, n, 250_000):
        yield [f"user-{i:09d}" for i in range(a, min(a + 250_000, n))]
t = time.perf_counter(); c = time.process_time()
with ThreadBackend(2) as compute:
    server = OprfServer.setup(chunks(), random=SystemRandom(), normalize="exact",
                              compute=compute, chunked=True)
offline = time.perf_counter() - t; cpu = time.process_time() - c
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
print(json.dumps({"offline": offline, "offline_cpu": cpu, "first": first, "online": online,
                  "found": out["client"]["size"], "rss": rss_offline,
                  "filter_bytes": int(server.filter.values.nbytes)}))
"""

BREAKDOWN = r"""
import json, sys, time
import numpy as np
from privfin.crypto import ristretto as r
from privfin.crypto.random import SystemRandom
from privfin.federation import codec
from privfin.psi.common import rows_in
from privfin.psi.ids import prepare_ids
from privfin.psi.messages import Chunk
m = int(sys.argv[1])
ids = [f"user-{i:09d}" for i in range(m)]
dst = b"privfin/psi/v1/ecdh/bench/psi"
key = r.BlindingKey.generate(SystemRandom()).secret_bytes_for_checkpoint()
out = {}
def timed(name, fn, per):
    c = time.process_time(); t = time.perf_counter(); res = fn(); w = time.perf_counter() - t
    out[name] = {"us_per_item": 1e6 * w / per,
                 "cpu_us_per_item": 1e6 * (time.process_time() - c) / per}
    return res
p = timed("prepare_ids", lambda: prepare_ids(ids, "trim"), m)
data, ends = p.packed()
items = [ids[i].encode() for i in range(m)]
timed("xmd_sha512", lambda: r._uniform_many(items, dst), m)
pts = timed("hash_to_group", lambda: r.hash_blind_packed(None, data, ends, dst), m)
timed("hash_and_blind", lambda: r.hash_blind_packed(key, data, ends, dst), m)
timed("scalarmult", lambda: r.scalarmult_batch(key, pts), m)
from privfin.crypto import x25519 as xc
xkey = SystemRandom().bytes(32)
xu = timed("x25519_hash_to_u", lambda: xc.hash_to_u_packed(data, ends, dst), m)
timed("x25519_hash_and_blind", lambda: xc.hash_blind_packed(xkey, data, ends, dst), m)
timed("x25519_scalarmult", lambda: xc.scalarmult_batch(xkey, xu), m)
timed("x25519_hash_to_u_pure", lambda: xc.hash_to_u_packed(data, ends, dst, kernel=False), m)
timed("x25519_scalarmult_pure", lambda: xc.scalarmult_batch(xkey, xu, kernel=False), m)
out["x25519_kernel"] = {"us_per_item": float(xc.KERNEL), "cpu_us_per_item": float(xc.KERNEL)}
chunk = Chunk(offset=0, rows=np.ascontiguousarray(pts[:32768]))
reps = 20
enc = timed("codec_encode", lambda: [codec.encode(chunk) for _ in range(reps)][0], reps * 32768)
timed("codec_decode", lambda: [codec.decode(enc) for _ in range(reps)], reps * 32768)
rng = np.random.default_rng(0)
fb = rng.integers(0, 256, (1_000_000, 16), dtype=np.uint8)
fab = np.concatenate([fb[:500_000], rng.integers(0, 256, (500_000, 16), dtype=np.uint8)])
timed("match_1M_x_1M", lambda: rows_in(fab, fb), 1_000_000)
print(json.dumps(out))
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
ru = resource.getrusage(resource.RUSAGE_SELF)
rss = ru.ru_maxrss * 1024
print(json.dumps({"wall": wall, "bytes": sent, "rss": rss, "found": len(inter),
                  "cpu": ru.ru_utime + ru.ru_stime}))
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
ru = resource.getrusage(resource.RUSAGE_SELF)
rss = ru.ru_maxrss * 1024
print(json.dumps({"wall": wall, "bytes": sent, "rss": rss, "cpu": ru.ru_utime + ru.ru_stime,
                  "found": int(getattr(report, "intersection_count", -1))}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data(n: int, tmp: Path) -> list[Path]:
    overlap = n // 2
    files = []
    for party, start in (("alice", 0), ("bob", n - overlap)):
        path = tmp / f"{party}-{n}.csv"
        if not path.exists():
            with path.open("w") as fh:
                fh.write("id\n")
                fh.writelines(f"user-{i:09d}\n" for i in range(start, start + n))
        files.append(path)
    return files


def _load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def _ours(n: int, tmp: Path, protocol: str = "ecdh") -> dict[str, Any]:
    """One ``privfin psi`` run; ``protocol`` is ``ecdh`` (X25519), ``ecdh-ristretto255``,
    ``kkrt`` or ``rr22``."""
    a, b = _data(n, tmp)
    proto, _, curve = protocol.partition("-")
    cli = Path(sys.executable).parent / "privfin"
    before = _load()
    res = dict(
        run_peer(
            Path(sys.executable),
            OURS_NODES,
            str(cli),
            str(a),
            str(b),
            str(tmp / f"ours-{protocol}-{n}"),
            proto,
            curve or "x25519",
            timeout=7200,
        )
    )
    assert res["found"] == n // 2, res
    res["load"] = f"{before} -> {_load()}"
    phases = [
        {"party": party, "phase": k.removeprefix("psi.seconds."), "seconds": v}
        for party, st in res.get("stats", {}).items()
        for k, v in st.items()
        if k.startswith("psi.seconds.")
    ]
    if phases:
        print_table(f"privfin {protocol} phases at {n:,} x {n:,} ({res['load']})", phases)
    return res


def _spu(python: Path, n: int, proto: str, tmp: Path) -> dict[str, Any]:
    files = _data(n, tmp)
    before = _load()
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
        "rss": max(o["rss"] for o in outs),
        "cpu": sum(o["cpu"] for o in outs),
        "load": f"{before} -> {_load()}",
    }


def _breakdown(m: int) -> None:
    """Per-item cost of each stage on one core, and what 1M x 1M needs of each (core-s)."""
    before = _load()
    res = dict(run_peer(Path(sys.executable), BREAKDOWN, str(m)))
    # per 1M x 1M run (both parties): prepare 2M ids, hash+blind 2M own items, 2M re-blinds,
    # 4M points + 2M fingerprints through the codec, one 1M x 1M match
    counts = {
        "prepare_ids": 2e6,
        "xmd_sha512": 2e6,
        "hash_to_group": 2e6,
        "hash_and_blind": 2e6,
        "scalarmult": 2e6,
        "x25519_hash_to_u": 2e6,
        "x25519_hash_and_blind": 2e6,
        "x25519_scalarmult": 2e6,
        "x25519_hash_to_u_pure": 2e6,
        "x25519_scalarmult_pure": 2e6,
        "x25519_kernel": 0.0,
        "codec_encode": 3e6,
        "codec_decode": 3e6,
        "match_1M_x_1M": 1e6,
    }
    rows = [
        {
            "stage": k,
            "us_per_item": v["us_per_item"],
            "cpu_us_per_item": v["cpu_us_per_item"],
            "core_s_1Mx1M": v["cpu_us_per_item"] * counts[k] / 1e6,
            "load": f"{before} -> {_load()}",
        }
        for k, v in res.items()
    ]
    print_table(
        f"per-item costs, one core, {m:,} items (hash_and_blind includes hash_to_group)", rows
    )
    for row in rows:
        emit(f"psi.cost.{row['stage']}", "us", row["cpu_us_per_item"], None, "", False, "1 core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20k x 20k only, under a minute")
    ap.add_argument("--no-peers", action="store_true", help="skip the peers")
    ap.add_argument("--sizes", default="", help="comma-separated set sizes (default 100k,1M)")
    ap.add_argument(
        "--spu-protocols", default="ECDH,KKRT,RR22", help="spu protocols to run (comma list)"
    )
    ap.add_argument(
        "--spu-max-n", type=int, default=10**9, help="run only spu ECDH above this size"
    )
    ap.add_argument(
        "--protocols",
        default="ecdh,kkrt",
        help="privfin protocols to run (comma list): ecdh (X25519), ecdh-ristretto255, kkrt, rr22",
    )
    ap.add_argument("--server-items", type=int, default=0, help="unbalanced server set size")
    ap.add_argument("--no-unbalanced", action="store_true", help="skip the unbalanced run")
    ap.add_argument("--no-openmined", action="store_true", help="skip openmined-psi")
    ap.add_argument(
        "--breakdown", type=int, default=0, help="per-operation costs on N items, one core"
    )
    args = ap.parse_args()
    installed_bytecode()
    sizes = [20_000] if args.quick else [100_000, 1_000_000]
    if args.sizes:
        sizes = [] if args.sizes == "none" else [int(float(x)) for x in args.sizes.split(",")]
    print(f"# psi benchmark on {machine()}; shared machine, timings are noisy", file=sys.stderr)
    if args.breakdown:
        _breakdown(args.breakdown)
    rows: list[dict[str, Any]] = []
    spu_py = om_py = None
    if not args.no_peers:
        try:
            spu_py = peer_python("spu", ["spu==0.9.5"])
        except Exception as exc:  # a peer that cannot be installed is reported, not fatal
            print(f"# spu unavailable: {exc}", file=sys.stderr)
        try:
            if not args.no_openmined:
                om_py = peer_python("openmined-psi", ["openmined-psi==2.0.6"])
        except Exception as exc:
            print(f"# openmined-psi unavailable: {exc}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        rss_by_n: dict[int, int] = {}
        for n in sizes:
            size = f"{n:,} x {n:,}, 50% overlap, 2 cores"
            runs = {p: _ours(n, tmp, p) for p in args.protocols.split(",") if p}
            labels = {
                "ecdh": "privfin ECDH (X25519)",
                "ecdh-ristretto255": "privfin ECDH (ristretto255)",
                "kkrt": "privfin KKRT (OT extension)",
                "rr22": "privfin RR22 (silent VOLE + OKVS)",
            }
            for proto, res in runs.items():
                rows.append(
                    {
                        "impl": labels.get(proto, f"privfin {proto}"),
                        "n": n,
                        "wall_s": res["wall"],
                        "MB_sent": res["bytes"] / 1e6,
                        "MB_sent_by_party": " / ".join(
                            f"{p} {b / 1e6:.1f}" for p, b in res.get("bytes_by_party", {}).items()
                        ),
                        "cpu_s": res["cpu"],
                        "peak_RSS_MB": res["rss"] / 1e6,
                        "load": res["load"],
                    }
                )
            peers: dict[str, dict[str, Any]] = {}
            if spu_py is not None:
                for proto in args.spu_protocols.split(","):
                    if n > args.spu_max_n and proto != "ECDH":
                        continue
                    try:
                        peers[f"spu 0.9.5 {proto}" + (" (FourQ)" if proto == "ECDH" else "")] = (
                            _spu(spu_py, n, proto, tmp)
                        )
                    except Exception as exc:
                        print(f"# spu {proto} failed: {exc}", file=sys.stderr)
            if om_py is not None and n <= 100_000:  # ~210 s at 1M: skipped in the full run
                before = _load()
                peers["openmined-psi 2.0.6"] = dict(run_peer(om_py, OPENMINED, str(n)))
                peers["openmined-psi 2.0.6"]["load"] = f"{before} -> {_load()}"
            for name, res in peers.items():
                mb = None if res.get("bytes") is None else res["bytes"] / 1e6
                rows.append(
                    {
                        "impl": name,
                        "n": n,
                        "wall_s": res["wall"],
                        "MB_sent": mb,
                        "cpu_s": res.get("cpu"),
                        "peak_RSS_MB": res["rss"] / 1e6,
                        "load": res.get("load", ""),
                    }
                )
                for proto, ours in runs.items():
                    if proto in ("kkrt", "rr22") and "KKRT" not in name and "RR22" not in name:
                        continue  # OT/VOLE-based against the OT-based peers; ECDH against all
                    emit(f"psi.{proto}.wall", "s", ours["wall"], res["wall"], name, False, size)
                    if res.get("cpu"):
                        emit(
                            f"psi.{proto}.cpu", "core-s", ours["cpu"], res["cpu"], name, False, size
                        )
            for proto, ours in runs.items():
                if not peers:
                    emit(f"psi.{proto}.wall", "s", ours["wall"], None, "", False, size)
                emit(f"psi.{proto}.bytes", "MB", ours["bytes"] / 1e6, None, "", False, size)
                emit(
                    f"psi.{proto}.peak_rss",
                    "MB",
                    ours["rss"] / 1e6,
                    None,
                    "",
                    False,
                    size + " (party)",
                )
            if "ecdh" in runs:
                rss_by_n[n] = runs["ecdh"]["rss"]
        if len(rss_by_n) >= 2:  # measured slope between the smallest and the largest run
            lo, hi = min(rss_by_n), max(rss_by_n)
            per_m = (rss_by_n[hi] - rss_by_n[lo]) / ((hi - lo) / 1e6) / 1e6
            emit("psi.ecdh.rss_per_million", "MB", per_m, None, "", False, f"{lo:,} -> {hi:,}")
        if rows:
            print_table("Two-party PSI", rows)
            print(f"conditions at the end: {conditions()}")
        if args.no_unbalanced:
            return
        n_server = args.server_items or (20_000 if args.quick else 10_000_000)
        before = _load()
        ub = dict(
            run_peer(Path(sys.executable), OURS_UNBALANCED, str(n_server), "1000", timeout=7200)
        )
        ub["load"] = f"{before} -> {_load()}"
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
                    "offline_cpu_s": ub["offline_cpu"],
                    "filter_MB": ub["filter_bytes"] / 1e6,
                    "first_query_s": ub["first"],
                    "query_s": ub["online"],
                    "found": ub["found"],
                    "peak_RSS_MB": ub["rss"] / 1e6,
                    "load": ub["load"],
                }
            ],
        )
    os.environ.pop("_", None)


if __name__ == "__main__":
    main()
