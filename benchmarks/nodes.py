"""Vertical FL between node processes against the same run in memory (issue [11]).

Hetero SecureBoost (guest + host) and hetero LR (guest + host + arbiter) on the public
``default_credit`` split (``../shared/data/fate``; ``--rows``, default 3,000 aligned rows), each
run three ways with the same parameters: the parties as threads over the in-memory transport
(``privfin.runtime.simulate``), and as separate node processes (``cluster_up``, development
mode, mutual TLS on loopback) whose peers use the HTTP transport or the streaming transport.
Time = wall time of the job (node: from submission until every party reports it done, so it
includes the nodes' job start-up). The result of the node runs must equal the in-memory run
(the arithmetic is exact): the script checks it.

Target of the issue: the node runs within 10% of the in-memory time.

    .venv/bin/python benchmarks/nodes.py [--rows 3000] [--only secureboost,hetero_lr]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import emit, installed_bytecode, machine, print_table

ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    env = os.environ.get("PRIVFIN_SHARED_DATA")
    return Path(env) / "fate" if env else ROOT / ".." / "shared" / "data" / "fate"


def tables(rows: int) -> dict[str, Any]:
    import pandas as pd

    g = pd.read_csv(data_dir() / "default_credit_hetero_guest.csv")
    h = pd.read_csv(data_dir() / "default_credit_hetero_host.csv")
    ids = g[["id"]].merge(h[["id"]], on="id").iloc[:rows]  # stands for PSI's aligned output
    guest = ids.merge(g, on="id").rename(columns={"y": "label"})
    host = ids.merge(h, on="id")
    return {"bank": guest, "telco": host}


def jobs(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    n_g = len([c for c in t["bank"].columns if c not in ("id", "label")])
    n_h = len([c for c in t["telco"].columns if c != "id"])
    return {
        "secureboost": {
            "roles": {"bank": ["guest"], "telco": ["host"]},
            "params": {
                "n_trees": 3,
                "max_depth": 3,
                "n_bins": 32,
                "learning_rate": 0.3,
                "key_bits": 2048,
                "label": "label",
            },
        },
        "hetero_lr": {
            "roles": {"bank": ["guest"], "telco": ["host"], "arb": ["arbiter"]},
            "params": {
                "key_bits": 2048,
                "max_iter": 3,
                "batch_size": 1024,
                "label": "label",
                "feature_counts": {"bank": n_g, "telco": n_h},
            },
        },
    }


def component(name: str) -> Any:
    if name == "secureboost":
        from privfin.fl.vertical.secureboost.component import secureboost_component

        return secureboost_component
    from privfin.fl.vertical.hetero_lr import hetero_lr_component

    return hetero_lr_component


def result_of(name: str, out: dict[str, Any]) -> np.ndarray:
    if name == "secureboost":
        return np.asarray(out["bank"]["scores"], dtype=float)
    return np.asarray(out["bank"]["coef"], dtype=float)


def run_memory(name: str, job: dict[str, Any], t: dict[str, Any]) -> tuple[float, np.ndarray]:
    from privfin.config import Settings
    from privfin.runtime import simulate

    start = time.perf_counter()
    out = simulate(
        component(name),
        job["roles"],
        params=job["params"],
        settings=Settings(mode="development"),
        inputs={p: {"table": t[p]} for p in t},
        timeout=3600,
        component_name=name,
    )
    return time.perf_counter() - start, result_of(name, out)


def run_nodes(
    name: str, job: dict[str, Any], t: dict[str, Any], transport: str, root: Path
) -> tuple[float, np.ndarray]:
    from privfin.node.cluster import cluster_up

    paths = {}
    for party, df in t.items():
        paths[party] = root / f"{party}.csv"
        df.to_csv(paths[party], index=False)
    cluster = cluster_up(
        list(job["roles"]),
        root / f"c-{name}-{transport}",
        mode="development",
        datasets={p: {"table": paths[p]} for p in t},
        transport=transport,
    )
    try:
        spec = {
            "job": f"{name}-{transport}",
            "component": name,
            "roles": job["roles"],
            "params": job["params"],
            "inputs": {p: {"table": "table"} for p in t},
        }
        start = time.perf_counter()
        out = cluster.run_job(spec, timeout=3600)
        return time.perf_counter() - start, result_of(name, out)
    finally:
        cluster.down()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--only", default="secureboost,hetero_lr")
    args = ap.parse_args()
    installed_bytecode()
    t = tables(args.rows)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, job in jobs(t).items():
            if name not in args.only.split(","):
                continue
            mem, ref = run_memory(name, job, t)
            row: dict[str, Any] = {"job": name, "memory_s": mem}
            for transport in ("http", "stream"):
                secs, got = run_nodes(name, job, t, transport, Path(tmp))
                if not np.allclose(got, ref, atol=1e-6):
                    raise SystemExit(f"{name} over {transport} differs from the memory run")
                row[f"{transport}_s"] = secs
                row[f"{transport}_x"] = secs / mem
            rows.append(row)
            size = f"default_credit {args.rows} rows, 2048-bit keys, development mode"
            emit(
                f"nodes.{name}.stream_vs_memory",
                "s",
                row["stream_s"],
                mem,
                "privfin in memory (same run)",
                False,
                size,
            )
            emit(
                f"nodes.{name}.http_vs_memory",
                "s",
                row["http_s"],
                mem,
                "privfin in memory (same run)",
                False,
                size,
            )
    load = os.getloadavg()
    print_table(
        f"Vertical FL between node processes vs in memory ({machine()}, load "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}); target: nodes within 1.10x",
        rows,
    )


if __name__ == "__main__":
    main()
