"""MPC benchmark: Beaver multiplications, matmul, an LR gradient step and SS-LR, against
SecretFlow's SPU 0.9.5 simulator (SEMI2K, FM64) when it can be installed.

Usage: ``python benchmarks/mpc.py [--quick] [--no-peer]``. Every figure is one run on this
machine (2 cores shared with other work: timings are noisy). Our figures run 2 computing
parties in threads over the in-memory transport with a dealer inside the computing parties
(SEMI2K's trusted-first-party model); "online" excludes generating the correlated randomness,
"total" includes it. Bytes are what one computing party sent. The 1e6 products are the best of
3 (by compute) of one process. "compute" is online time minus
the time spent in openings' send + receive ("comm": encoding, in-memory transport, waiting for
the peer thread). SS-LR also runs between two local node processes over HTTPS with mutual TLS
(``cluster_up``), timed from submit to both parties' results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, machine, peer_python, print_table, run_peer
from privfin.config import Settings
from privfin.mpc.lr import ss_lr
from privfin.mpc.ring import ring_matmul
from privfin.mpc.session import Session
from privfin.runtime import simulate

DEV = Settings(mode="development")
ROLES = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
PEER_NAME = "spu 0.9.5 SEMI2K FM64 (simulator)"


class _Prefetched:
    """Wraps a provider: hands out triples generated before the timed region."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.queue: list[Any] = []
        for attr in (
            "name",
            "trusted",
            "supports_trunc_pair",
            "supports_random_bits",
            "supports_packed_bits",
        ):
            setattr(self, attr, getattr(inner, attr))

    def setup(self) -> None:
        self.inner.setup()

    def prefetch(self, kind: str, *args: Any) -> None:
        self.queue.append(getattr(self.inner, kind)(*args))

    def _next(self, *_: Any) -> Any:
        return self.queue.pop(0)

    mul_triple = matmul_triple = trunc_pair = random_bits = _next
    bool_triple = edabits = dabits = dabit_triple = _next


def _online(kind: str, shape: Any, make: Any) -> dict[str, float]:
    """Time one secure op at party a: offline (prefetch) and online separately."""

    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session(ctx, triples="dealer")
        pre = _Prefetched(s.provider)
        s.provider = pre  # type: ignore[assignment]
        s.engine.provider = pre  # type: ignore[assignment]
        x = s.share("a", inputs.get("x"), fixed=kind != "mul")
        y = s.share("a", inputs.get("y"), fixed=kind != "mul")
        reps = 3 if kind == "mul" else 1  # best of 3 for the 1e6 products (noisy machine)
        t0 = time.perf_counter()
        for _ in range(reps):
            if kind == "mul":
                pre.prefetch("mul_triple", shape)
            else:
                m, k = x.shape
                pre.prefetch("matmul_triple", m, k, y.shape[1])
                pre.prefetch("trunc_pair", (m, y.shape[1]), 16)
        t1 = time.perf_counter()
        best: dict[str, Any] = {}
        for _ in range(reps):
            sent0 = ctx.channel.stats.bytes_sent
            comm0 = s.engine.comm_seconds
            t2 = time.perf_counter()
            z = x * y if kind == "mul" else x @ y
            t3 = time.perf_counter()
            comm = s.engine.comm_seconds - comm0
            if not best or t3 - t2 - comm < best["compute"]:
                best = {
                    "online": t3 - t2,
                    "comm": comm,
                    "compute": t3 - t2 - comm,
                    "bytes": ctx.channel.stats.bytes_sent - sent0,
                }
        return {"offline": (t1 - t0) / reps, **best, "z": z.share}

    x, y = make()
    out = simulate(program, ROLES, inputs={"a": {"x": x, "y": y}}, settings=DEV, timeout=600)
    za, zb = out["a"].pop("z"), out["b"].pop("z")
    if kind == "mul":
        assert np.array_equal(
            za + zb, x.astype(np.int64).view(np.uint64) * y.astype(np.int64).view(np.uint64)
        )
    return out["a"]


def _lr_step(n: int, d: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    y = (rng.random(n) < 0.5).astype(float)

    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        from privfin.mpc import functions as F

        s = Session(ctx, triples="dealer")
        xs = s.share("a", inputs.get("x"))
        ys = s.share("a", inputs.get("y"))
        w = s.public(np.zeros(d))
        sent0 = ctx.channel.stats.bytes_sent
        t0 = time.perf_counter()
        g = xs.T @ (F.sigmoid(xs @ w) - ys)
        w = w - g * (0.1 / n)
        return {"total": time.perf_counter() - t0, "bytes": ctx.channel.stats.bytes_sent - sent0}

    return simulate(program, ROLES, inputs={"a": {"x": x, "y": y}}, settings=DEV)["a"]


def _ss_lr_data(n: int, d: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d))
    true_w = rng.normal(size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ true_w)))).astype(float)
    half = d // 2
    guest = {**{f"g{j}": x[:, j] for j in range(half)}, "y": y}
    host = {f"h{j}": x[:, half + j] for j in range(d - half)}
    return x, y, guest, host


def _ss_lr_params(d: int, epochs: int, sigmoid: str) -> dict[str, Any]:
    half = d // 2
    return {
        "features": {"a": [f"g{j}" for j in range(half)], "b": [f"h{j}" for j in range(d - half)]},
        "label": {"party": "a", "column": "y"},
        "epochs": epochs,
        "batch_size": 1024,
        "learning_rate": 0.5,
        "sigmoid": sigmoid,
        "triples": "dealer",
        "dealer": "a",
    }


def _aucs(x: np.ndarray, y: np.ndarray, out: dict[str, Any]) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(y, x @ np.array(out["coef"]) + out["intercept"])
    plain = roc_auc_score(y, LogisticRegression().fit(x, y).decision_function(x))
    return float(auc), float(plain)


def _ss_lr(n: int, d: int, epochs: int, sigmoid: str = "auto") -> dict[str, Any]:
    x, y, guest, host = _ss_lr_data(n, d)
    t0 = time.perf_counter()
    out = simulate(
        ss_lr,
        ROLES,
        params=_ss_lr_params(d, epochs, sigmoid),
        inputs={"a": {"table": guest}, "b": {"table": host}},
        settings=DEV,
        timeout=600,
    )["a"]
    elapsed = time.perf_counter() - t0
    auc, plain = _aucs(x, y, out)
    return {"total": elapsed, "auc": auc, "auc_plain": plain}


def _cluster(root: Path, guest: Any, host: Any, transport: str) -> Any:
    """Two development-mode node processes holding the guest's and the host's tables."""
    import pandas as pd

    from privfin.node.cluster import cluster_up

    pd.DataFrame(guest).to_csv(root / "a.csv", index=False)
    pd.DataFrame(host).to_csv(root / "b.csv", index=False)
    return cluster_up(
        list(ROLES),
        root / "cluster",
        datasets={"a": {"table": root / "a.csv"}, "b": {"table": root / "b.csv"}},
        mode="development",
        message_timeout=120,
        transport=transport,
    )


def _ss_lr_http(
    n: int, d: int, epochs: int, sigmoids: list[str], transport: str = "http"
) -> list[dict[str, Any]]:
    """SS-LR between two node processes over HTTPS + mutual TLS, or over the streaming
    transport (``transport="stream"``; one cluster, one job per sigmoid), timed from the first
    submit until both parties report the job done."""
    import tempfile

    x, y, guest, host = _ss_lr_data(n, d)
    results = []
    roles = {p: list(r) for p, r in ROLES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        cluster = _cluster(Path(tmp), guest, host, transport)
        try:
            for sig in sigmoids:
                job = f"sslr-{sig}"
                spec = {
                    "job": job,
                    "component": "ss_lr",
                    "roles": roles,
                    "params": _ss_lr_params(d, epochs, sig),
                    "inputs": {p: {"table": "table"} for p in roles},
                }
                t0 = time.perf_counter()
                for p in roles:
                    with cluster.client(p) as c:
                        c.submit(spec)
                done: dict[str, Any] = {}
                for p in roles:
                    with cluster.client(p) as c:
                        done[p] = c.wait(job, timeout=900)
                elapsed = time.perf_counter() - t0
                result = done["a"]["result"]
                auc, plain = _aucs(x, y, result["output"])
                results.append(
                    {
                        "sigmoid": sig,
                        "total": elapsed,
                        "auc": auc,
                        "auc_plain": plain,
                        "bytes": result.get("traffic", {}).get("bytes_sent", 0),
                        "messages": result.get("traffic", {}).get("messages_sent", 0),
                    }
                )
        finally:
            cluster.down()
    return results


def _ss_lr_pipeline(n: int, d: int, epochs: int, sigmoids: list[str]) -> list[dict[str, Any]]:
    """SS-LR as a pipeline step between two node processes over the streaming transport (the
    platform's job model: proposed, approved, run; its messages held in the receiver's memory
    only, as a step that restarts under a new attempt after a crash), timed from the proposal
    until both parties report the job done."""
    import tempfile

    x, y, guest, host = _ss_lr_data(n, d)
    results = []
    roles = {p: list(r) for p, r in ROLES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        cluster = _cluster(Path(tmp), guest, host, "stream")
        try:
            for sig in sigmoids:
                job = f"sslr-pipe-{sig}"
                spec = {
                    "job": job,
                    "purpose": "benchmark: SS-LR as a pipeline step",
                    "retention_days": 1,
                    "parties": {p: {"datasets": {"t": "table"}} for p in roles},
                    "results": ["a"],
                    "steps": {
                        "train": {
                            "component": "ss_lr",
                            "roles": roles,
                            "params": _ss_lr_params(d, epochs, sig),
                            "inputs": {"table": "datasets.t"},
                        }
                    },
                }
                t0 = time.perf_counter()
                with cluster.client("a") as c:
                    c.propose(spec)
                with cluster.client("b") as c:
                    c.wait_proposal(job)
                    c.decide(job, "approve")
                for p in roles:
                    with cluster.client(p) as c:
                        c.wait(job, timeout=900)
                elapsed = time.perf_counter() - t0
                with cluster.client("a") as c:
                    model = json.loads(c.download(job, "train", "model"))["model"]
                auc, plain = _aucs(x, y, model)
                results.append({"sigmoid": sig, "total": elapsed, "auc": auc, "auc_plain": plain})
        finally:
            cluster.down()
    return results


_PEER = r"""
import json, sys, time
import numpy as np
import spu.utils.simulation as spsim
import spu.libspu as libspu
quick = sys.argv[1] == "1"
def run(protocol):
    cfg = libspu.RuntimeConfig(protocol=protocol, field=libspu.FieldType.FM64)
    sim = spsim.Simulator(2 if protocol == libspu.ProtocolKind.SEMI2K else 3, cfg)
    out = {}
    rng = np.random.default_rng(0)
    for n in ([256] if quick else [256, 1000]):
        a = rng.normal(size=(n, n)); b = rng.normal(size=(n, n))
        f = spsim.sim_jax(sim, lambda x, y: x @ y)
        f(a, b)
        t = time.perf_counter(); f(a, b); out[f"matmul{n}"] = time.perf_counter() - t
    m = 10**5 if quick else 10**6
    x = rng.integers(0, 1000, m); y = rng.integers(0, 1000, m)
    f = spsim.sim_jax(sim, lambda x, y: x * y)
    f(x, y)
    t = time.perf_counter(); f(x, y); out["mul"] = time.perf_counter() - t
    return out
print(json.dumps({"semi2k": run(libspu.ProtocolKind.SEMI2K)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-http", action="store_true", help="skip SS-LR between node processes")
    args = ap.parse_args()
    quick = args.quick
    rng = np.random.default_rng(0)
    peer: dict[str, float] = {}
    if not args.no_peer:
        try:
            py = peer_python("spu", ["spu==0.9.5"])
            peer = run_peer(py, _PEER, "1" if quick else "0", timeout=1200)["semi2k"]
        except Exception as exc:  # the peer is optional: report and go on with peer=None
            print(f"[bench] peer spu unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
    rows = []
    n_mul = 10**5 if quick else 10**6
    r = _online(
        "mul",
        (n_mul,),
        lambda: (rng.integers(-(2**20), 2**20, n_mul), rng.integers(-(2**20), 2**20, n_mul)),
    )
    rows.append(
        {
            "op": f"{n_mul:.0e} Beaver mul (compute {r['compute']:.3f} s + comm {r['comm']:.3f} s)",
            "offline_s": r["offline"],
            "online_s": r["online"],
            "MB_sent": r["bytes"] / 1e6,
        }
    )
    emit(
        f"mpc.mul.{n_mul}.compute",
        "s",
        r["compute"],
        None,
        PEER_NAME,
        False,
        f"{n_mul} int64 muls, 2PC dealer, online compute (target <= 0.05 s)",
    )
    emit(
        f"mpc.mul.{n_mul}",
        "s",
        r["online"],
        peer.get("mul"),
        PEER_NAME,
        False,
        f"{n_mul} int64 muls, 2PC dealer, online incl. in-memory transport",
    )
    for n in [256] if quick else [256, 1000]:
        r = _online("matmul", None, lambda n=n: (rng.normal(size=(n, n)), rng.normal(size=(n, n))))
        rows.append(
            {
                "op": f"{n}x{n} matmul (fixed)",
                "offline_s": r["offline"],
                "online_s": r["online"],
                "MB_sent": r["bytes"] / 1e6,
            }
        )
        emit(
            f"mpc.matmul.{n}",
            "s",
            r["online"],
            peer.get(f"matmul{n}"),
            PEER_NAME,
            False,
            f"{n}x{n} fixed-point incl. truncation, 2PC dealer, online",
        )
    a = np.ones((1000, 1000), np.uint64)
    t0 = time.perf_counter()
    ring_matmul(a, a, method="numpy")
    t_np = time.perf_counter() - t0
    t0 = time.perf_counter()
    ring_matmul(a, a, method="limbs")
    t_limb = time.perf_counter() - t0
    rows.append(
        {
            "op": "1000^2 uint64 matmul: numpy @ vs limbs",
            "offline_s": t_np,
            "online_s": t_limb,
            "MB_sent": 0.0,
        }
    )
    n_lr = 2000 if quick else 10_000
    r = _lr_step(n_lr, 20)
    rows.append(
        {
            "op": f"LR gradient step {n_lr}x20",
            "offline_s": None,
            "online_s": r["total"],
            "MB_sent": r["bytes"] / 1e6,
        }
    )
    emit(
        f"mpc.lr_step.{n_lr}x20",
        "s",
        r["total"],
        None,
        PEER_NAME,
        False,
        f"{n_lr}x20 sigmoid gradient step, 2PC dealer, total",
    )
    n_ss, ep = (5000, 1) if quick else (20_000, 3)
    sigmoids = ["auto", "t1"]
    runs = [("memory", sig, _ss_lr(n_ss, 20, ep, sig)) for sig in sigmoids]
    if not args.no_http:
        runs += [("https+mTLS", r["sigmoid"], r) for r in _ss_lr_http(n_ss, 20, ep, sigmoids)]
        runs += [
            ("stream+mTLS", r["sigmoid"], r)
            for r in _ss_lr_http(n_ss, 20, ep, sigmoids, transport="stream")
        ]
        runs += [
            ("stream+mTLS pipeline step", r["sigmoid"], r)
            for r in _ss_lr_pipeline(n_ss, 20, ep, sigmoids)
        ]
    for where, sig, r in runs:
        name = "piecewise" if sig == "auto" else sig
        rows.append(
            {
                "op": (
                    f"SS-LR {n_ss}x20 {ep} ep, {name} sigmoid, {where} "
                    f"(AUC {r['auc']:.4f} vs {r['auc_plain']:.4f})"
                    + (
                        f", {r['messages']} msgs, {1000 * r['total'] / r['messages']:.0f} ms/msg"
                        if r.get("messages")
                        else ""
                    )
                ),
                "offline_s": None,
                "online_s": r["total"],
                "MB_sent": r["bytes"] / 1e6 if "bytes" in r else None,
            }
        )
        emit(
            f"mpc.ss_lr.{n_ss}x20.{ep}ep.{name}."
            + {"memory": "memory", "https+mTLS": "http", "stream+mTLS": "stream"}.get(
                where, "stream_pipeline"
            ),
            "s",
            r["total"],
            None if quick else 17.7,
            "SecretFlow SS-LR production mode (issue figure)",
            False,
            f"{n_ss}x20, {ep} epochs, batch 1024, {name} sigmoid, {where}, AUC {r['auc']:.4f} "
            f"(plaintext {r['auc_plain']:.4f})",
        )
    print_table(f"privfin.mpc on {machine()} (one run each; noisy shared machine)", rows)


if __name__ == "__main__":
    main()
