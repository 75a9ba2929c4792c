"""Risk grading / multi-lending: each applicant's total exposure, overdue balance and number
of lenders across several lenders by secure summation; a grade from the agreed rule at the
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

from privfin.cli.scenarios._runner import Demo, load_template

__all__ = ["grade", "lender_tables", "run_risk"]


def lender_tables(book: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What a lender derives locally from its book for the three sums."""
    cents = book["outstanding_cents"].astype("int64")
    late = book["days_past_due"].astype("int64") > 0
    return {
        "outstanding": pd.DataFrame({"id": book["id"], "outstanding_cents": cents}),
        "overdue": pd.DataFrame({"id": book["id"], "outstanding_cents": cents.where(late, 0)}),
        "lenders": pd.DataFrame({"id": book["id"].drop_duplicates(), "outstanding_cents": 1}),
    }


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
        for name, df in lender_tables(book).items():
            path = root / "data" / f"{party}_{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, index=False)
            datasets.setdefault(party, {})[name] = path
    roles = {p: ["lender", "result"] if p == result else ["lender"] for p in lenders}
    tpl = load_template("risk", {"job": "risk", "result": result, "roles": roles, "ids": ids})
    cluster = cluster_up(lenders, root / "cluster", datasets=datasets, transport="stream")
    try:
        demo = Demo(console, cluster)
        specs = []
        for what, job in tpl["jobs"].items():
            spec = {**tpl["spec"], "job": f"risk-{seed}-{what}"}
            spec["inputs"] = {p: {"loans": job["input"]} for p in lenders}
            specs.append((what, spec))
        for _, spec in specs:  # each lender's operator submits the agreed spec to its node
            for party in lenders:
                with cluster.client(party) as client:
                    client.submit(dict(spec))
        console.print(
            f"each lender's operator submitted the 3 agreed jobs to its own node "
            f"({len(lenders)} × 3 submissions)"
        )
        totals: dict[str, list[int]] = {}
        for what, spec in specs:
            demo.watch(str(spec["job"]), lenders, timeout=300, label=f"{what:>11}: ")
            outs = {}
            for party in lenders:
                with cluster.client(party) as client:
                    outs[party] = client.status(str(spec["job"]))["result"]["output"]
            leaked = [p for p in lenders if p != result and outs[p]["totals"] is not None]
            if leaked:
                raise SystemExit(f"lenders other than the result party got totals: {leaked}")
            totals[what] = [int(v) for v in outs[result]["totals"]]
        out = _summary(console, ds, ids, totals, tpl["grades"], result, start)
        out["dashboard"], out["initiator"] = demo.dashboard(result), result
        if keep_up:
            demo.wait_for_ctrl_c(result)
    finally:
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
    from privfin.mpc.exposure import plaintext_exposure

    books = {p: lender_tables(df) for p, df in ds.parties.items()}
    exact = all(
        totals[what] == plaintext_exposure(ids, {p: t[what] for p, t in books.items()})
        for what in totals
    )
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
