"""Joint credit scoring: a bank (labels), a telecom operator and an e-commerce platform.

The demo holds every party's synthetic data (it generated them), so it can also compute what
no party could alone: the pooled-plaintext model, trained on the joined tables in one place.
That model and the bank-only model are trained here, locally, by the demo runner; the joint
models are trained by the three nodes over mutual TLS, from the scenario's job template.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from privfin.cli.scenarios._runner import Demo, load_template, record_legal_bases
from privfin.errors import ConfigError

__all__ = ["CreditData", "load_default_credit", "run_credit", "synthetic_credit"]

PARTIES = ("bank", "telecom", "ecommerce")
PDO, BASE_SCORE, BASE_ODDS = 20.0, 600.0, 50.0  # scorecard scaling: 600 points at 50:1 odds
IV_MIN = 0.02  # the agreed IV threshold of the feature selection


@dataclass
class CreditData:
    """Each party's tables (features standardised by each party on its own rows) and where
    they came from."""

    label: str
    bank_train: pd.DataFrame
    bank_test: pd.DataFrame
    bank_new: pd.DataFrame
    telecom: pd.DataFrame
    ecommerce: pd.DataFrame
    source: str

    def features(self, party: str) -> list[str]:
        frame = {"bank": self.bank_train, "telecom": self.telecom, "ecommerce": self.ecommerce}
        return [c for c in frame[party].columns if c not in ("id", self.label)]


def _standardise(fit: pd.DataFrame, *frames: pd.DataFrame, skip: tuple[str, ...]) -> list[Any]:
    """Each party's own local preprocessing: z-scores from its own (training) rows."""
    cols = [c for c in fit.columns if c not in skip]
    mean = fit[cols].astype(float).mean()
    std = fit[cols].astype(float).std().replace(0.0, 1.0)
    out = []
    for f in frames:
        g = f.copy()
        g[cols] = ((f[cols].astype(float) - mean) / std).round(6)
        out.append(g)
    return out


def _split_bank(
    bank: pd.DataFrame, label: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    u = rng.random(len(bank))
    train, test, new = bank[u < 0.6], bank[(u >= 0.6) & (u < 0.85)], bank[u >= 0.85]
    skip = ("id", label)
    train, test, new = _standardise(train, train, test, new, skip=skip)
    return (
        train.reset_index(drop=True),
        test.reset_index(drop=True),
        new.drop(columns=[label]).reset_index(drop=True),
    )


def synthetic_credit(rows: int, seed: int) -> CreditData:
    """``privfin data synth credit``'s tables, split and standardised for the job."""
    from privfin.data.synthetic import generate

    ds = generate("credit", rows=rows, seed=seed)
    label = ds.labels["bank"]
    train, test, new = _split_bank(ds.parties["bank"], label, seed)
    (tel,) = _standardise(ds.parties["telecom"], ds.parties["telecom"], skip=("id",))
    (eco,) = _standardise(ds.parties["ecommerce"], ds.parties["ecommerce"], skip=("id",))
    return CreditData(
        label, train, test, new, tel, eco, f"synthetic (privfin data synth credit, seed {seed})"
    )


def load_default_credit(directory: Path, rows: int, seed: int) -> CreditData:
    """The public default_credit hetero split (FATE's examples: UCI "default of credit card
    clients", CC BY 4.0): the guest's table (id, y, x0..x12) is the bank's; the host's ten
    columns are split in two to keep the three-party layout (x0..x4: telecom, x5..x9:
    e-commerce). ``rows`` rows are sampled (seeded)."""
    guest_path = Path(directory) / "default_credit_hetero_guest.csv"
    host_path = Path(directory) / "default_credit_hetero_host.csv"
    try:
        guest = pd.read_csv(guest_path)
        host = pd.read_csv(host_path)
    except OSError as exc:
        raise ConfigError(f"--data: {exc}") from None
    guest["id"] = "D" + guest["id"].astype(str)
    host["id"] = "D" + host["id"].astype(str)
    guest = guest.sample(n=min(rows, len(guest)), random_state=seed)
    host_cols = [c for c in host.columns if c != "id"]
    half = len(host_cols) // 2
    tel = host[["id", *host_cols[:half]]].rename(columns={c: f"t_{c}" for c in host_cols})
    eco = host[["id", *host_cols[half:]]].rename(columns={c: f"e_{c}" for c in host_cols})
    guest = guest.rename(columns={c: f"b_{c}" for c in guest.columns if c not in ("id", "y")})
    train, test, new = _split_bank(guest, "y", seed)
    (tel,) = _standardise(tel, tel, skip=("id",))
    (eco,) = _standardise(eco, eco, skip=("id",))
    return CreditData(
        "y", train, test, new, tel, eco, f"default_credit ({directory}), {len(guest)} rows"
    )


def _write(data: CreditData, root: Path) -> dict[str, dict[str, Path]]:
    d = root / "data"
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "bank": {"bank_train": data.bank_train, "bank_test": data.bank_test,
                 "bank_new": data.bank_new},
        "telecom": {"telecom_all": data.telecom},
        "ecommerce": {"ecommerce_all": data.ecommerce},
    }  # fmt: skip
    out: dict[str, dict[str, Path]] = {}
    for party, tables in files.items():
        for name, df in tables.items():
            path = d / f"{name}.csv"
            df.to_csv(path, index=False)
            out.setdefault(party, {})[name] = path
    return out


def _local_models(
    data: CreditData, selected: dict[str, list[str]], n_trees: int, max_depth: int
) -> dict[str, Any]:
    """Bank-only and pooled-plaintext models, trained by the demo runner (not by a party)."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from privfin.ml.metrics import binary_report

    lab = data.label
    pooled_train = data.bank_train.merge(data.telecom, on="id").merge(data.ecommerce, on="id")
    pooled_test = data.bank_test.merge(data.telecom, on="id").merge(data.ecommerce, on="id")
    bank_f = selected["bank"]  # the same IV-selected features as the joint models
    all_f = bank_f + selected["telecom"] + selected["ecommerce"]
    y_test = pooled_test[lab].to_numpy()
    out: dict[str, Any] = {"test_ids": set(pooled_test["id"])}
    cases = {
        "bank only": (data.bank_train, bank_f),
        "pooled plaintext": (pooled_train, all_f),
    }
    for name, (train, cols) in cases.items():
        gb = GradientBoostingClassifier(
            n_estimators=n_trees, max_depth=max_depth, learning_rate=0.3, random_state=0
        ).fit(train[cols], train[lab])
        lr = LogisticRegression(max_iter=500).fit(train[cols], train[lab])
        out[name] = {
            "trees": binary_report(y_test, gb.predict_proba(pooled_test[cols])[:, 1]),
            "lr": binary_report(y_test, lr.predict_proba(pooled_test[cols])[:, 1]),
        }
    return out


def _points(demo: Demo, job: str, data: CreditData, applicant: str) -> tuple[float, Table]:
    """Scorecard points of one applicant from the hetero LR model. Each party computes the
    points of its own features from its own slice of the model; the bank sees only the
    other parties' total (lr_score). The demo, operator of every node, shows all three."""
    factor = PDO / math.log(2.0)
    offset = BASE_SCORE - factor * math.log(BASE_ODDS)
    tables = {"bank": data.bank_new, "telecom": data.telecom, "ecommerce": data.ecommerce}
    rows: list[tuple[str, str, float]] = []
    base = 0.0
    for party in PARTIES:
        model = demo.json(party, job, "lr", "model")["model"]
        x = tables[party].set_index("id").loc[applicant]
        if party == "bank":
            base = offset - factor * float(model.get("intercept", 0.0))
        for feat, w in zip(model["features"], model["coef"], strict=True):
            rows.append((party, str(feat), -factor * float(w) * float(x[feat])))
    table = Table("party", "top features", "points", title=f"scorecard: applicant {applicant}")
    table.add_row("(base)", f"{BASE_SCORE:.0f} at {BASE_ODDS:.0f}:1 odds, PDO {PDO:.0f}",
                  f"{base:+.0f}")  # fmt: skip
    total = base
    for party in PARTIES:
        mine = sorted((r for r in rows if r[0] == party), key=lambda r: -abs(r[2]))
        subtotal = sum(r[2] for r in mine)
        total += subtotal
        top = ", ".join(f"{f} {round(p):+d}" for _, f, p in mine[:3])
        table.add_row(party, top + (" …" if len(mine) > 3 else ""), f"{subtotal:+.0f}")
    table.add_row("[bold]total[/]", "", f"[bold]{total:.0f}[/]")
    return total, table


def run_credit(
    console: Console,
    root: Path,
    *,
    rows: int = 3000,
    seed: int = 7,
    data_dir: Path | None = None,
    key_bits: int = 1024,
    n_trees: int = 8,
    max_depth: int = 3,
    lr_iter: int = 12,
    roc_out: Path = Path("credit_roc.svg"),
    keep_up: bool = False,
) -> dict[str, Any]:
    """Run the scenario; returns the figures of the summary (for tests)."""
    from privfin.node.cluster import cluster_up

    start = time.monotonic()
    data = load_default_credit(data_dir, rows, seed) if data_dir else synthetic_credit(rows, seed)
    production = key_bits >= 2048
    console.print(
        f"[bold]joint credit scoring[/]: bank (labels) + telecom + e-commerce — data: "
        f"{data.source}; bank {len(data.bank_train)} training / {len(data.bank_test)} test / "
        f"{len(data.bank_new)} new applicants, telecom {len(data.telecom)}, e-commerce "
        f"{len(data.ecommerce)} customers"
    )
    if not production:
        console.print(
            f"[yellow]demo keys: Paillier {key_bits} bits in development mode (fast); "
            "--key-bits 2048 runs in production mode[/]"
        )
    datasets = _write(data, root)
    job = f"credit-{seed}"
    keys = {"label": data.label, "key_bits": key_bits, "small_keys": not production}
    select = load_template("credit_select", {"job": f"{job}-iv", "iv_threshold": IV_MIN, **keys})
    cluster = cluster_up(
        list(PARTIES),
        root / "cluster",
        datasets=datasets,
        mode="production" if production else "development",
        transport="stream",
    )
    demo = Demo(console, cluster)
    try:
        record_legal_bases(cluster, {p: dict.fromkeys(datasets[p], "contract") for p in PARTIES})
        console.print(f"3 nodes up (mutual TLS); job {select['job']}: PSI, WOE/IV binning")
        demo.run(select, timeout=600)
        selected = _selection(console, demo, str(select["job"]), data)
        spec = load_template(
            "credit",
            {
                "job": job,
                **keys,
                "n_trees": n_trees,
                "max_depth": max_depth,
                "lr_iter": lr_iter,
                "feature_counts": {p: len(selected[p]) for p in PARTIES},
                "bank_fields": ["id", data.label, *selected["bank"]],
                "bank_new_fields": ["id", *selected["bank"]],
                "telecom_fields": ["id", *selected["telecom"]],
                "ecommerce_fields": ["id", *selected["ecommerce"]],
            },
        )
        console.print(f"job {job} on the selected fields: {len(spec['steps'])} steps")
        demo.run(spec, timeout=900)
        result = _summary(console, demo, job, data, selected, n_trees, max_depth, roc_out)
        result["seconds"] = time.monotonic() - start
        console.print(f"finished in {result['seconds']:.0f} s")
        result["dashboard"] = demo.dashboard("bank")
        result["initiator"] = "bank"
        if keep_up:
            demo.wait_for_ctrl_c("bank")
    finally:
        demo.close()
        cluster.down()
    return result


def _summary(
    console: Console,
    demo: Demo,
    job: str,
    data: CreditData,
    selected: dict[str, list[str]],
    n_trees: int,
    max_depth: int,
    roc_out: Path,
) -> dict[str, Any]:
    from privfin.node.dashboard.plots import Series, line_plot

    demo.show_approvals(job, "bank")
    n_aligned = len(demo.frame("bank", job, "psi", "aligned"))
    local = _local_models(data, selected, n_trees, max_depth)
    joint = {
        "trees": demo.json("bank", job, "evaluate_sb", "metrics"),
        "lr": demo.json("bank", job, "evaluate_lr", "metrics"),
    }
    table = Table(
        "model", "AUC trees", "KS trees", "lift@10% trees", "AUC LR", "KS LR",
        title=f"held-out applicants in the overlap ({len(local['test_ids'])} rows)",
    )  # fmt: skip
    bank = local["bank only"]
    table.add_row(
        "bank only (local)",
        f"{bank['trees'].auc:.3f}", f"{bank['trees'].ks.ks:.3f}",
        f"{bank['trees'].gain.lift[0]:.2f}", f"{bank['lr'].auc:.3f}", f"{bank['lr'].ks.ks:.3f}",
    )  # fmt: skip
    table.add_row(
        "[bold]joint (3 nodes)[/]",
        f"[bold]{joint['trees']['auc']:.3f}[/]", f"{joint['trees']['ks']:.3f}",
        f"{joint['trees']['lift_top_bucket']:.2f}",
        f"[bold]{joint['lr']['auc']:.3f}[/]", f"{joint['lr']['ks']:.3f}",
    )  # fmt: skip
    pooled = local["pooled plaintext"]
    table.add_row(
        "pooled plaintext*",
        f"{pooled['trees'].auc:.3f}", f"{pooled['trees'].ks.ks:.3f}",
        f"{pooled['trees'].gain.lift[0]:.2f}", f"{pooled['lr'].auc:.3f}",
        f"{pooled['lr'].ks.ks:.3f}",
    )  # fmt: skip
    console.print(table)
    console.print(
        "[dim]* bank-only and pooled models: scikit-learn, trained by this demo, which holds "
        "all the synthetic data; no party could train the pooled one[/]"
    )
    roc = joint["trees"]["curves"]["roc"]
    series = [
        Series("joint SecureBoost", roc["fpr"], roc["tpr"]),
        Series("bank only", *_roc(bank["trees"]), dashed=True),
        Series("pooled plaintext", *_roc(pooled["trees"]), dashed=True),
    ]
    svg = line_plot(
        "ROC: joint vs bank-only vs pooled", series,
        xlabel="false positive rate", ylabel="true positive rate",
        xlim=(0.0, 1.0), ylim=(0.0, 1.0), diagonal=True,
        notes=[f"joint AUC {joint['trees']['auc']:.3f}", f"bank only {bank['trees'].auc:.3f}"],
    )  # fmt: skip
    roc_out.parent.mkdir(parents=True, exist_ok=True)
    roc_out.write_text(str(svg))

    scores = demo.frame("bank", job, "score_new", "scores")
    applicant = str(scores["id"].iloc[0])
    total, points = _points(demo, job, data, applicant)
    console.print(points)
    p = float(scores["score"].iloc[0])
    console.print(
        f"new applicants scored jointly: {len(scores)} (of {len(data.bank_new)}; the others are "
        f"not customers of both partners); applicant {applicant}: default probability "
        f"{p:.3f} (trees), {total:.0f} points (LR scorecard) — ROC plot: {roc_out}"
    )
    _learned(console, demo, job)
    return {
        "overlap": n_aligned,
        "selected": selected,
        "joint": {k: {"auc": v["auc"], "ks": v["ks"]} for k, v in joint.items()},
        "bank_only": {k: {"auc": v.auc, "ks": v.ks.ks} for k, v in bank.items()},
        "pooled": {k: {"auc": v.auc, "ks": v.ks.ks} for k, v in pooled.items()},
        "scored": len(scores),
        "points": total,
        "roc": str(roc_out),
        "outputs": {p: demo.outputs(p, job) for p in PARTIES},
    }


def _selection(console: Console, demo: Demo, job: str, data: CreditData) -> dict[str, list[str]]:
    """Job 1's approvals, overlap and IV selection (each party keeps at least its best
    feature)."""
    demo.show_approvals(job, "bank")
    n_aligned = len(demo.frame("bank", job, "psi", "aligned"))
    console.print(
        f"PSI overlap: [bold]{n_aligned}[/] of the bank's {len(data.bank_train)} training "
        "customers are customers of both other parties"
    )
    report = demo.json("bank", job, "binning", "report")
    ivs = _ivs(report)
    selected: dict[str, list[str]] = {}
    for party in PARTIES:
        chosen = [str(f) for f in report.get("selected", {}).get(party, [])]
        if not chosen:
            mine = [k for k in ivs if k.startswith(f"{party}.")]
            chosen = [mine[0].split(".", 1)[1]] if mine else data.features(party)[:1]
        selected[party] = [f for f in data.features(party) if f in chosen]
    best = ", ".join(f"{f} {v:.2f}" for f, v in list(ivs.items())[:3])
    dropped = sorted(set(ivs) - {f"{p}.{f}" for p, fs in selected.items() for f in fs})
    console.print(
        f"WOE/IV selection (IV ≥ {IV_MIN}): {sum(map(len, selected.values()))} of {len(ivs)} "
        f"features kept; best {best}; dropped: {', '.join(dropped) or 'none'}"
    )
    return selected


def _roc(report: Any) -> tuple[list[float], list[float]]:
    fpr, tpr, _ = report.roc
    return [float(v) for v in fpr], [float(v) for v in tpr]


def _brief(summary: Any) -> str:
    body = summary.get("metrics", summary) if isinstance(summary, dict) else summary
    if isinstance(body, dict):
        sizes = {k: v for k, v in body.items() if isinstance(v, int | float)}
        return ", ".join(f"{k} {v}" for k, v in list(sizes.items())[:4]) or "summary"
    return "summary"


def _ivs(report: dict[str, Any]) -> dict[str, float]:
    """``{party.feature: IV}`` of the bank's binning report, best first."""
    found = {
        f"{party}.{name}": float(iv)
        for party, feats in report.get("iv", {}).items()
        for name, iv in feats.items()
    }
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


_LEARNED = {
    "bank": "overlap ids; every party's IVs; joint scores, metrics",
    "telecom": "overlap ids; own bin edges and model slices; rows per own split",
    "ecommerce": "overlap ids; own bin edges and model slices; rows per own split",
}


def _learned(console: Console, demo: Demo, job: str) -> None:
    for party in PARTIES:
        files = len({f"{s}.{n}" for s, n in demo.outputs(party, job)})
        console.print(f"{party} learned: {_LEARNED[party]} ({files} files)")
    console.print(
        "[dim]no party saw another's features or labels; telecom and e-commerce got no score[/]"
    )
