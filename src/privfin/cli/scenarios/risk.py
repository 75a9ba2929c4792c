"""Risk grading / multi-lending: each applicant's total exposure, overdue balance and number
of lenders across several lenders, by one negotiated ``mpc_stats`` step (``row_sums`` on
secret shares, production mode, dealer-free triples); a grade from the agreed rule at the
result party. No lender sees another's book; the result party sees three totals per
applicant."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from privfin.cli.scenarios._runner import Demo, load_template, record_legal_bases

__all__ = ["applicant_table", "grade", "run_risk"]


def applicant_table(book: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """What a lender derives locally from its book for the agreed applicant list: one row per
    applicant, in the list's order (0 where it does not lend to them)."""
    cents = book["outstanding_cents"].astype("int64")
    late = book["days_past_due"].astype("int64") > 0
    rows = pd.DataFrame(
        {"id": book["id"], "outstanding_cents": cents, "overdue_cents": cents.where(late, 0),
         "lends": 1}
    )  # fmt: skip
    per = rows.groupby("id").agg(
        {"outstanding_cents": "sum", "overdue_cents": "sum", "lends": "max"}
    )
    out = per.reindex(list(ids), fill_value=0).astype("int64")
    return out.rename_axis("id").reset_index()


def grade(
    rules: Sequence[Mapping[str, Any]], outstanding: float, overdue: float, lenders: int
) -> str:
    """The first grade of ``rules`` whose bounds all hold (a rule without bounds matches)."""
    share = overdue / outstanding if outstanding > 0 else 0.0
    for rule in rules:
        if (
            lenders <= rule.get("max_lenders", lenders)
            and share <= rule.get("max_overdue_share", share)
            and outstanding <= rule.get("max_outstanding", outstanding)
        ):
            return str(rule["grade"])
    raise ValueError("the grading rule has no catch-all grade")


def run_risk(
    console: Console,
    root: Path,
    *,
    rows: int = 2000,
    seed: int = 7,
    n_ids: int = 300,
    keep_up: bool = False,
) -> dict[str, Any]:
    from privfin.data.synthetic import generate
    from privfin.node.cluster import cluster_up

    start = time.monotonic()
    ds = generate("risk", rows=rows, seed=seed)
    lenders = list(ds.parties)
    result = lenders[0]
    rng = np.random.default_rng(seed)
    everyone = sorted(set().union(*(set(df["id"]) for df in ds.parties.values())))
    ids = sorted(rng.choice(everyone, size=min(n_ids, len(everyone)), replace=False).tolist())
    console.print(
        f"[bold]risk grading[/]: {', '.join(lenders)} ({rows} borrowers each, synthetic); "
        f"{result} checks {len(ids)} applicants across all lenders"
    )
    datasets: dict[str, dict[str, Path]] = {}
    for party, book in ds.parties.items():
        path = root / "data" / f"{party}_applicants.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        applicant_table(book, ids).to_csv(path, index=False)
        datasets[party] = {f"{party}_applicants": path}
    tpl = load_template("risk", {"job": f"risk-{seed}", "triples": "rss3"})
    spec = tpl["pipeline"]
    job = str(spec["job"])
    cluster = cluster_up(
        lenders, root / "cluster", datasets=datasets, mode="production", transport="stream"
    )
    demo = Demo(console, cluster)
    try:
        record_legal_bases(cluster, {p: dict.fromkeys(datasets[p], "contract") for p in lenders})
        console.print(
            f"{len(lenders)} nodes up (mutual TLS, production mode); job {job}: mpc_stats "
            "row sums on replicated secret shares (rss3: no dealer)"
        )
        demo.run(spec, timeout=300)
        demo.show_approvals(job, result)
        stats = demo.json(result, job, "totals", "stats")
        totals = {k: [round(v) for v in stats["row_sums"][k]]
                  for k in ("outstanding", "overdue", "lenders")}  # fmt: skip
        leaked = [p for p in lenders if p != result and any(
            n == "stats" for _, n in demo.outputs(p, job))]  # fmt: skip
        if leaked:
            raise SystemExit(f"lenders other than the result party got totals: {leaked}")
        out = _summary(console, ds, ids, totals, tpl["grades"], result, start)
        out["outputs"] = {p: demo.outputs(p, job) for p in lenders}
        out["dashboard"], out["initiator"] = demo.dashboard(result), result
        if keep_up:
            demo.wait_for_ctrl_c(result)
    finally:
        demo.close()
        cluster.down()
    return out


def _summary(
    console: Console,
    ds: Any,
    ids: list[str],
    totals: dict[str, list[int]],
    rules: Sequence[Mapping[str, Any]],
    result: str,
    start: float,
) -> dict[str, Any]:
    plain: pd.DataFrame = (
        pd.concat([applicant_table(df, ids).set_index("id") for df in ds.parties.values()])
        .groupby(level=0, sort=False)
        .sum()
    )
    exact = all(
        totals[what] == plain[col].astype(int).tolist()
        for what, col in (("outstanding", "outstanding_cents"), ("overdue", "overdue_cents"),
                          ("lenders", "lends"))
    )  # fmt: skip
    grades = [
        grade(rules, o / 100, d / 100, n)
        for o, d, n in zip(totals["outstanding"], totals["overdue"], totals["lenders"], strict=True)
    ]
    table = Table(
        "applicant", "lenders", "outstanding", "overdue", "grade",
        title=f"what {result} (result party) learns — first 6 of {len(ids)}",
    )  # fmt: skip
    for i in range(min(6, len(ids))):
        table.add_row(
            ids[i], str(totals["lenders"][i]), f"{totals['outstanding'][i] / 100:,.2f}",
            f"{totals['overdue'][i] / 100:,.2f}", grades[i],
        )  # fmt: skip
    console.print(table)
    counts = pd.Series(grades).value_counts().sort_index()
    console.print("grades: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    console.print(
        f"check against the plaintext sums (the demo holds every book): "
        f"[bold]{'exact match' if exact else 'MISMATCH'}[/]; other lenders learned: nothing "
        "but the agreed applicant ids"
    )
    console.print(f"finished in {time.monotonic() - start:.0f} s")
    if not exact:
        raise SystemExit(1)
    return {"ids": ids, "totals": totals, "grades": grades, "exact": exact}
