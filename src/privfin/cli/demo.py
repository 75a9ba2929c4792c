"""``make demo``: a 3-lender cross-exposure job over mutual TLS between local node processes.

The demo's keys, certificates, data and node state live in a private temporary directory
(mode 0700) that is removed when the demo ends, however it ends; pass ``keep`` to keep them in
a directory of your choice instead.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()


def run_demo(rows: int = 2000, seed: int = 7, keep: Path | None = None) -> None:
    """Generate synthetic lender data, start a local cluster, run the exposure job, check it."""
    from privfin.data.synthetic import generate

    start = time.monotonic()
    dataset = generate("risk", rows=rows, seed=seed)
    lenders = list(dataset.parties)
    console.print(f"[bold]privfin demo[/]: cross-lender exposure between {', '.join(lenders)}")
    table = Table("party", "rows", "borrowers", "outstanding (sum)", title="what each party holds")
    for name, df in dataset.parties.items():
        table.add_row(
            name,
            str(len(df)),
            str(df["id"].nunique()),
            f"{df['outstanding_cents'].sum() / 100:,.2f}",
        )
    console.print(table)

    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="privfin-demo-"))
    try:
        _run(dataset, lenders, root, seed=seed, start=start)
    finally:
        if keep is None:  # private keys, data and node state of the demo: never left behind
            shutil.rmtree(root, ignore_errors=True)


def _run(dataset: Any, lenders: list[str], root: Path, *, seed: int, start: float) -> None:
    from privfin.data.synthetic import write
    from privfin.mpc.exposure import plaintext_exposure
    from privfin.node.cluster import cluster_up

    data_dir = root / "data"
    write(dataset, data_dir, formats=("csv",))
    rng = np.random.default_rng(seed)
    all_ids = sorted(set().union(*(set(df["id"]) for df in dataset.parties.values())))
    ids = sorted(rng.choice(all_ids, size=min(500, len(all_ids)), replace=False).tolist())
    result_party = lenders[0]
    spec = {
        "job": f"exposure-{seed}",
        "component": "exposure",
        "roles": {p: ["lender", "result"] if p == result_party else ["lender"] for p in lenders},
        "params": {"ids": ids},
        "inputs": {p: {"loans": "loans"} for p in lenders},
    }
    datasets = {p: {"loans": str(_party_file(data_dir, p))} for p in lenders}
    console.print(
        f"starting {len(lenders)} nodes (one mutual-TLS stream per peer pair) in "
        f"{root / 'cluster'} …"
    )
    cluster = cluster_up(lenders, root / "cluster", datasets=datasets, transport="stream")
    try:
        console.print(
            f"job {spec['job']} submitted to every lender; {len(ids)} agreed borrower ids"
        )
        outputs = cluster.run_job(spec, timeout=120)
        for p in lenders:
            with cluster.client(p) as client:
                traffic = client.status(str(spec["job"]))["result"]["traffic"]
            console.print(f"  {p}: done ({traffic['bytes_sent']} bytes sent)")
    finally:
        cluster.down()
    totals = outputs[result_party]["totals"]
    expected = plaintext_exposure(ids, {p: dataset.parties[p] for p in lenders})
    shown = Table("borrower", "total exposure", title=f"what {result_party} (result party) learns")
    for i in range(min(8, len(ids))):
        shown.add_row(ids[i], f"{totals[i] / 100:,.2f}")
    console.print(shown)
    others = [p for p in lenders if p != result_party]
    leaked = [p for p in others if outputs[p]["totals"] is not None]
    ok = totals == expected and not leaked
    verdict = "exact match" if totals == expected else "MISMATCH"
    console.print(
        f"check against the plaintext sum: [bold]{verdict}[/] on {len(ids)} borrowers; "
        f"lenders other than the result party learned: {leaked or 'nothing'}"
    )
    console.print(f"demo finished in {time.monotonic() - start:.1f} s")
    if not ok:
        raise SystemExit(1)


def _party_file(directory: Path, party: str) -> Path:
    for candidate in sorted(directory.rglob(f"{party}*.csv")):
        return candidate
    raise FileNotFoundError(f"no CSV for {party} in {directory}")
