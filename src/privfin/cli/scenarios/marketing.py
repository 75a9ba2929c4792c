"""Precise marketing: a bank (customers, uptake of a past campaign) and a merchant.

First the bank learns, per audience segment of the merchant, a differentially private count of
the customers both hold (DP PSI-cardinality, charged to the merchant's privacy budget). Then a
vertical propensity model (hetero SecureBoost, the bank the guest) is trained on the
PSI-aligned rows of the past campaign; the campaign's candidates are scored for the bank
only, which picks its top k. The merchant never receives the bank's customer list: it learns
which of its own customers are also the bank's in the rows the model uses (the PSI
intersection), nothing about the bank's other customers, and no score.

The demo holds every party's synthetic data, so it also computes what no party could: the
true overlap per segment, the pooled-plaintext model and the uptake of the chosen customers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from privfin.cli.scenarios._runner import Demo, load_template, record_legal_bases

__all__ = ["SEGMENTS", "audience", "run_marketing", "top_k_uptake"]

SEGMENTS = ("premium", "frequent", "occasional")
LABEL = "subscribed"
BANK_FEATURES = (
    "age", "balance", "n_products", "tenure_years", "has_mortgage", "salary_account",
    "campaign_contacts",
)  # fmt: skip
MERCHANT_FEATURES = (
    "visits_90d", "spend_90d", "distinct_categories", "online_share", "days_since_last_visit",
    "coupon_redemptions_90d", "premium_member",
)  # fmt: skip


def audience(merchant: pd.DataFrame) -> pd.Series:
    """The merchant's own audience segment of each of its customers (local): loyalty-programme
    members, frequent shoppers (6+ visits in 90 days), occasional ones."""
    seg = np.where(
        merchant["premium_member"].astype(int) == 1,
        "premium",
        np.where(merchant["visits_90d"].astype(int) >= 6, "frequent", "occasional"),
    )
    return pd.Series(seg, index=merchant.index, name="audience")


def top_k_uptake(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The uptake rate among the ``k`` highest scores (ties broken by position)."""
    order = np.argsort(-np.asarray(scores, float), kind="stable")[:k]
    return float(np.asarray(labels, float)[order].mean()) if k > 0 else float("nan")


def _split(bank: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The bank's past campaign (train / held-out test, labelled) and the new campaign's
    candidates (their uptake is unknown to every party; the demo keeps it to judge the pick)."""
    u = np.random.default_rng(seed + 1).random(len(bank))
    return (
        bank[u < 0.55].reset_index(drop=True),
        bank[(u >= 0.55) & (u < 0.8)].reset_index(drop=True),
        bank[u >= 0.8].reset_index(drop=True),
    )


def run_marketing(
    console: Console,
    root: Path,
    *,
    rows: int = 6000,
    seed: int = 7,
    key_bits: int = 1024,
    n_trees: int = 5,
    max_depth: int = 3,
    dp_epsilon: float = 0.5,
    dp_delta: float = 1e-6,
    top_fraction: float = 0.1,
    keep_up: bool = False,
) -> dict[str, Any]:
    """Run the scenario; returns the figures of the summary (for tests)."""
    from privfin.data.synthetic import generate
    from privfin.node.cluster import cluster_up

    start = time.monotonic()
    ds = generate("marketing", rows=rows, seed=seed)
    bank, merchant = ds.parties["bank"], ds.parties["merchant"].copy()
    merchant["audience"] = audience(merchant)
    train, test, cands = _split(bank, seed)
    production = key_bits >= 2048
    console.print(
        f"[bold]precise marketing[/]: bank ({len(bank)} customers; past campaign "
        f"{len(train)} training / {len(test)} held-out, {len(cands)} candidates for the new "
        f"one) + merchant ({len(merchant)} shoppers); synthetic, seed {seed}"
    )
    d = root / "data"
    d.mkdir(parents=True, exist_ok=True)
    tables = {
        "bank": {
            "bank_customers": bank[["id"]],
            "bank_train": train,
            "bank_test": test,
            "bank_candidates": cands.drop(columns=[LABEL]),
        },
        "merchant": {"merchant_all": merchant},
    }
    datasets: dict[str, dict[str, Path]] = {}
    for party, named in tables.items():
        for name, df in named.items():
            df.to_csv(d / f"{name}.csv", index=False)
            datasets.setdefault(party, {})[name] = d / f"{name}.csv"
    job = f"marketing-{seed}"
    spec = load_template(
        "marketing",
        {
            "job": job, "key_bits": key_bits, "small_keys": not production,
            "n_trees": n_trees, "max_depth": max_depth, "dp_epsilon": dp_epsilon,
            "dp_delta": dp_delta, "segment_values": list(SEGMENTS),
            "merchant_fields": ["id", *MERCHANT_FEATURES],
        },
    )  # fmt: skip
    cluster = cluster_up(
        ["bank", "merchant"],
        root / "cluster",
        datasets=datasets,
        mode="production" if production else "development",
        transport="stream",
    )
    demo = Demo(console, cluster)
    try:
        record_legal_bases(cluster, {p: dict.fromkeys(datasets[p], "consent") for p in datasets})
        budget = _set_budget(cluster, dp_epsilon, dp_delta)
        console.print(
            f"2 nodes up (mutual TLS); the merchant's operator set merchant_all's privacy "
            f"budget: ε {budget[0]:g}, δ {budget[1]:g}; job {job}: {len(spec['steps'])} steps"
        )
        demo.run(spec, timeout=600)
        demo.show_approvals(job, "bank")
        out = _summary(console, demo, job, bank, merchant, train, test, cands, n_trees,
                       max_depth, top_fraction)  # fmt: skip
        out["budget_spent"] = _spent(cluster)
        console.print(
            f"merchant_all's privacy budget: ε {out['budget_spent']:.2g} of {budget[0]:g} spent "
            f"({len(SEGMENTS)} segments × ε {dp_epsilon:g}, audited as dp_spend)"
        )
        out["seconds"] = time.monotonic() - start
        console.print(f"finished in {out['seconds']:.0f} s")
        out["dashboard"], out["initiator"] = demo.dashboard("bank"), "bank"
        if keep_up:
            demo.wait_for_ctrl_c("bank")
    finally:
        demo.close()
        cluster.down()
    return out


def _set_budget(cluster: Any, dp_epsilon: float, dp_delta: float) -> tuple[float, float]:
    """The merchant's operator gives merchant_all a budget for two runs of the audience step
    (what ``privfin data budget merchant_all --epsilon … --delta …`` does)."""
    from privfin.cli.data import _registry
    from privfin.dp.ledger import BudgetLedger

    eps, delta = 2 * len(SEGMENTS) * dp_epsilon, 2 * len(SEGMENTS) * dp_delta
    registry, cfg = _registry(cluster.config_path("merchant"))
    try:
        BudgetLedger(registry.engine, registry).set_budget(
            "merchant_all", eps, delta, party="*", who=f"{cfg.party}:demo"
        )
    finally:
        registry.engine.dispose()
    return eps, delta


def _spent(cluster: Any) -> float:
    from privfin.cli.data import _dp_status, _registry

    registry, _ = _registry(cluster.config_path("merchant"))
    try:
        return float(_dp_status(registry, "merchant_all")["spent_epsilon"])
    finally:
        registry.engine.dispose()


def _local_models(
    train: pd.DataFrame, test: pd.DataFrame, cands: pd.DataFrame, merchant: pd.DataFrame,
    n_trees: int, max_depth: int,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Bank-only and pooled-plaintext models (scikit-learn, trained by the demo runner on the
    same rows as the joint one: the bank's customers who shop at the merchant)."""
    from sklearn.ensemble import GradientBoostingClassifier

    mine = merchant[["id", *MERCHANT_FEATURES]]
    joined = [f.merge(mine, on="id") for f in (train, test, cands)]
    out: dict[str, dict[str, Any]] = {}
    for name, cols in (("bank only", list(BANK_FEATURES)),
                       ("pooled plaintext", [*BANK_FEATURES, *MERCHANT_FEATURES])):  # fmt: skip
        gb = GradientBoostingClassifier(
            n_estimators=n_trees, max_depth=max_depth, learning_rate=0.3, random_state=0
        ).fit(joined[0][cols], joined[0][LABEL])
        out[name] = {
            "test": pd.Series(gb.predict_proba(joined[1][cols])[:, 1], index=joined[1]["id"]),
            "candidates": pd.Series(gb.predict_proba(joined[2][cols])[:, 1], index=joined[2]["id"]),
        }
    return out


def _summary(
    console: Console, demo: Demo, job: str, bank: pd.DataFrame, merchant: pd.DataFrame,
    train: pd.DataFrame, test: pd.DataFrame, cands: pd.DataFrame, n_trees: int,
    max_depth: int, top_fraction: float,
) -> dict[str, Any]:  # fmt: skip
    from privfin.ml.metrics import binary_report

    # 1. the audience counts: the DP release the bank received, and the truth the demo knows
    release = demo.json("bank", job, "audience", "summary")["dp_cardinality"]
    shared = merchant[merchant["id"].isin(set(bank["id"]))]
    truth = shared["audience"].value_counts()
    seg_table = Table(
        "merchant segment",
        "noisy count (bank)",
        "95% interval",
        "true*",
        title=f"shared customers per segment (DP, ε {release['epsilon']:g} and "
        f"δ {release['delta']:g} each)",
    )
    segments: dict[str, dict[str, float]] = {}
    for seg in SEGMENTS:
        r = release["segments"][seg]
        true = int(truth.get(seg, 0))
        segments[seg] = {"noisy": float(r["value"]), "low": float(r["low"]),
                         "high": float(r["high"]), "true": true}  # fmt: skip
        seg_table.add_row(seg, f"{r['value']:.0f}", f"[{r['low']:.0f}, {r['high']:.0f}]", str(true))
    console.print(seg_table)

    # 2. the propensity model: joint (the nodes) vs bank-only vs pooled (this demo)
    local = _local_models(train, test, cands, merchant, n_trees, max_depth)
    joint_test = demo.frame("bank", job, "score_test", "scores").set_index("id")["score"]
    joint_cands = demo.frame("bank", job, "score_candidates", "scores").set_index("id")["score"]
    y_test = test.set_index("id")[LABEL]
    y_cands = cands.set_index("id")[LABEL]  # hidden from every party; the demo judges the pick
    metrics = demo.json("bank", job, "evaluate", "metrics")
    k = max(1, round(top_fraction * len(joint_cands)))
    base = float(y_cands.loc[joint_cands.index].mean())
    models = {"bank only (local)": local["bank only"],
              "[bold]joint (2 nodes)[/]": {"test": joint_test, "candidates": joint_cands},
              "pooled plaintext*": local["pooled plaintext"]}  # fmt: skip
    table = Table(
        "model",
        "AUC",
        "KS",
        f"uptake of top {k}",
        "lift",
        title=f"propensity on held-out customers ({len(joint_test)}) and the new campaign's "
        f"{len(joint_cands)} candidates (base uptake {base:.1%})",
    )
    results: dict[str, dict[str, float]] = {}
    for name, scored in models.items():
        t = scored["test"].loc[joint_test.index]
        rep = binary_report(y_test.loc[t.index].to_numpy(), t.to_numpy())
        c = scored["candidates"].loc[joint_cands.index]
        up = top_k_uptake(c.to_numpy(), y_cands.loc[c.index].to_numpy(), k)
        key = "joint" if "joint" in name else name.split(" (")[0].rstrip("*").replace(" ", "_")
        results[key] = {"auc": rep.auc, "ks": rep.ks.ks, "uptake": up,
                        "lift": up / base if base > 0 else float("nan")}  # fmt: skip
        table.add_row(name, f"{rep.auc:.3f}", f"{rep.ks.ks:.3f}", f"{up:.1%}",
                      f"{results[key]['lift']:.2f}×")  # fmt: skip
    console.print(table)
    chosen = joint_cands.sort_values(ascending=False, kind="stable").index[:k]
    console.print(
        f"the bank's campaign list: the top {k} candidates by joint propensity (e.g. "
        f"{', '.join(map(str, chosen[:3]))}, …), held at the bank only; the joint model's own "
        f"evaluation at the bank: AUC {metrics['auc']:.3f}, KS {metrics['ks']:.3f}"
    )
    console.print(
        "[dim]* the true counts, the pooled model and the candidates' uptake are computed by "
        "this demo, which holds all the synthetic data; no party could[/]"
    )
    merchant_files = demo.outputs("merchant", job)
    files = ", ".join(sorted({f"{s}.{n}" for s, n in merchant_files}))
    console.print(
        "bank learned: noisy counts per segment, the overlap ids of the campaign's rows, "
        "propensity scores. merchant learned: which of its shoppers are bank customers among "
        "the rows aligned for the model (not the bank's other customers), its own tree "
        f"splits; no score (its files: {files})"
    )
    return {
        "segments": segments,
        "release": release,
        "models": results,
        "top_k": [str(i) for i in chosen],
        "k": k,
        "scored_candidates": len(joint_cands),
        "merchant_outputs": merchant_files,
        "bank_outputs": demo.outputs("bank", job),
        "evaluate": {"auc": metrics["auc"], "ks": metrics["ks"]},
    }
