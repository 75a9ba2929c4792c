"""ID verification, blacklist sharing and anti-fraud: the scenarios that need no vertical
model. Each prepares its parties' synthetic tables (``privfin data synth``), runs its
template of ``scenarios/`` on a local cluster and checks what the result party learned
against the generator's ground truth (the demo holds every party's data)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from privfin.cli.scenarios._runner import Demo, load_template, record_legal_bases
from privfin.errors import ConfigError

__all__ = ["fraud_features", "id_keys", "run"]


def run(
    scenario: str,
    console: Console,
    root: Path,
    *,
    rows: int | None = None,
    seed: int = 7,
    keep_up: bool = False,
    per_profile: int = 4,
) -> dict[str, Any]:
    """Run ``scenario``; ``per_profile``: fraud only, banks per synthetic profile."""
    if scenario == "idverify":
        return _idverify(console, root, rows or 2000, seed, keep_up)
    if scenario == "blacklist":
        return _blacklist(console, root, rows or 2000, seed, keep_up)
    if scenario == "fraud":
        return _fraud(console, root, rows or 8000, seed, keep_up, per_profile)
    raise ConfigError(f"unknown scenario {scenario!r}")


def _write(root: Path, tables: dict[str, dict[str, pd.DataFrame]]) -> dict[str, dict[str, Path]]:
    out: dict[str, dict[str, Path]] = {}
    for party, named in tables.items():
        for name, df in named.items():
            path = root / "data" / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, index=False)
            out.setdefault(party, {})[name] = path
    return out


def _execute(
    console: Console,
    root: Path,
    spec: dict[str, Any],
    datasets: dict[str, dict[str, Path]],
    keep_up: bool,
    summarise: Any,
    legal_basis: Mapping[str, str],
) -> dict[str, Any]:
    """Start the cluster, have each party's operator record the legal basis of its datasets
    (``legal_basis``: party -> basis of all its datasets), negotiate and run ``spec``."""
    from privfin.node.cluster import cluster_up

    parties = list(spec["parties"])
    cluster = cluster_up(parties, root / "cluster", datasets=datasets, transport="stream")
    demo = Demo(console, cluster)
    try:
        record_legal_bases(
            cluster, {p: {d: legal_basis[p] for d in datasets.get(p, {})} for p in parties}
        )
        console.print(
            f"{len(parties)} nodes up (mutual TLS); job {spec['job']}: {len(spec['steps'])} steps"
        )
        demo.run(spec, timeout=600)
        demo.show_approvals(str(spec["job"]), parties[0])
        out: dict[str, Any] = summarise(demo)
        out["dashboard"], out["initiator"] = demo.dashboard(parties[0]), parties[0]
        if keep_up:
            demo.wait_for_ctrl_c(parties[0])
    finally:
        demo.close()
        cluster.down()
    return out


# ---------------------------------------------------------------------------------------------
# ID verification


def id_keys(df: pd.DataFrame) -> pd.DataFrame:
    """The three match keys a party derives locally from (name, national id, phone)."""
    name = df["name"].astype(str).str.strip().str.casefold()
    nid = df["national_id"].astype(str).str.strip().str.upper()
    phone = df["phone"].astype(str).str.replace(r"\D", "", regex=True)
    return pd.DataFrame(
        {
            "key_full": nid + "|" + name + "|" + phone,
            "key_name_id": nid + "|" + name,
            "key_id_phone": nid + "|" + phone,
        }
    )


def _idverify(console: Console, root: Path, rows: int, seed: int, keep_up: bool) -> dict[str, Any]:
    from privfin.data.synthetic import generate

    start = time.monotonic()
    ds = generate("idverify", rows=rows, seed=seed)
    queries = ds.parties["bank"]
    registry = ds.parties["telecom"]
    truth = ds.extras["truth"].set_index("query_id")
    bank = pd.concat([queries[["query_id"]], id_keys(queries)], axis=1)
    tel = id_keys(registry)
    console.print(
        f"[bold]ID verification[/]: the bank checks {len(bank)} applicants against the "
        f"telecom's registry of {len(tel)} subscribers (synthetic)"
    )
    datasets = _write(root, {"bank": {"bank_queries": bank}, "telecom": {"telecom_registry": tel}})
    spec = load_template("idverify", {"job": f"idverify-{seed}", "max_query": max(rows, 1000)})

    def summarise(demo: Demo) -> dict[str, Any]:
        job = str(spec["job"])
        hit = {
            step: set(demo.frame("bank", job, step, "aligned")["query_id"])
            for step in ("full", "name_id", "id_phone")
        }
        tel_files = demo.outputs("telecom", job)
        verdict = []
        for q in bank["query_id"]:
            if q in hit["full"]:
                verdict.append("match")
            elif q in hit["name_id"]:
                verdict.append("partial: phone differs")
            elif q in hit["id_phone"]:
                verdict.append("partial: name differs")
            else:
                verdict.append("no match")
        result = pd.Series(verdict, index=bank["query_id"])
        t = truth.loc[result.index]
        expected = np.where(
            t["verified"] == 1,
            "match",
            np.where(
                (t["registered"] == 1) & (t["name_match"] == 1),
                "partial: phone differs",
                np.where(
                    (t["registered"] == 1) & (t["phone_match"] == 1),
                    "partial: name differs",
                    "no match",
                ),
            ),
        )
        agree = int((result.to_numpy() == expected).sum())
        table = Table("verdict", "queries", "generator's kinds", title="what the bank learns")
        for v, n in result.value_counts().items():
            kinds = t[result == v]["kind"].value_counts()
            table.add_row(str(v), str(n), ", ".join(f"{k} {c}" for k, c in kinds.items()))
        console.print(table)
        console.print(
            f"agrees with the ground truth on {agree}/{len(result)} queries; the telecom "
            f"learned: the number of items queried (its files: "
            f"{', '.join(sorted({f'{s}.{n}' for s, n in tel_files})) or 'none'})"
        )
        console.print(f"finished in {time.monotonic() - start:.0f} s")
        return {"verdicts": result.to_dict(), "agree": agree, "total": len(result),
                "telecom_outputs": tel_files}  # fmt: skip

    bases = {"bank": "consent", "telecom": "contract"}
    return _execute(console, root, spec, datasets, keep_up, summarise, bases)


# ---------------------------------------------------------------------------------------------
# blacklist sharing


def _blacklist(console: Console, root: Path, rows: int, seed: int, keep_up: bool) -> dict[str, Any]:
    from privfin.data.synthetic import generate

    start = time.monotonic()
    ds = generate("blacklist", rows=rows, seed=seed)
    apps = ds.extras["applicants"]
    truth = ds.extras["applicants_truth"].set_index("application_id")
    own = set(ds.parties["bank_a"]["id"])
    console.print(
        f"[bold]blacklist sharing[/]: bank_a screens {len(apps)} applicants against the lists "
        f"of bank_b and bank_c ({rows} ids each; synthetic, licensed-source in the scenario)"
    )
    tables = {
        "bank_a": {"bank_a_applicants": apps[["id", "application_id"]]},
        "bank_b": {"bank_b_blacklist": ds.parties["bank_b"][["id"]]},
        "bank_c": {"bank_c_blacklist": ds.parties["bank_c"][["id"]]},
    }
    datasets = _write(root, tables)
    spec = load_template("blacklist", {"job": f"blacklist-{seed}"})

    def summarise(demo: Demo) -> dict[str, Any]:
        job = str(spec["job"])
        hits = {
            holder: set(demo.frame("bank_a", job, f"hits_{holder}", "aligned")["application_id"])
            for holder in ("bank_b", "bank_c")
        }
        own_hits = set(apps.loc[apps["id"].isin(own), "application_id"])
        union = hits["bank_b"] | hits["bank_c"] | own_hits
        exact = all(
            hits[h] == set(truth.index[truth["blacklisted_by"].str.contains(h)]) for h in hits
        ) and union == set(truth.index[truth["on_blacklist"] == 1])
        overlap = demo.json("bank_b", job, "alliance_overlap", "summary")
        table = Table("list", "hits in the batch", title="what bank_a learns")
        table.add_row("bank_a (own list, locally)", str(len(own_hits)))
        for h, found in hits.items():
            table.add_row(f"{h} (unbalanced PSI)", str(len(found)))
        table.add_row("[bold]union[/]", f"[bold]{len(union)}[/] of {len(apps)}")
        console.print(table)
        console.print(
            f"check against the generator's truth: [bold]{'exact' if exact else 'MISMATCH'}[/]; "
            f"alliance statistic (PSI-cardinality, bank_b × bank_c lists): "
            f"{overlap.get('intersection_size')} ids on both lists; bank_b and bank_c learned "
            "the batch size only"
        )
        console.print(f"finished in {time.monotonic() - start:.0f} s")
        if not exact:
            raise SystemExit(1)
        return {"hits": {h: sorted(v) for h, v in hits.items()}, "union": len(union),
                "exact": exact, "overlap": overlap}  # fmt: skip

    # the template demands a licensed source for the lists: without it bank_b's and bank_c's
    # nodes would refuse the job
    bases = {"bank_a": "contract", "bank_b": "licensed_source", "bank_c": "licensed_source"}
    return _execute(console, root, spec, datasets, keep_up, summarise, bases)


# ---------------------------------------------------------------------------------------------
# anti-fraud


def fraud_features(df: pd.DataFrame, *, merchants: bool = True) -> pd.DataFrame:
    """The alliance's agreed feature schema, computed by each bank locally: fixed transforms
    (no statistic of another bank is needed) and one-hot codes over the agreed categories
    (``merchants``: also the nine merchant categories; the DP scenario leaves them out, as
    fewer dimensions take less noise)."""
    from privfin.data.synthetic import MERCHANTS

    out = pd.DataFrame(
        {
            "id": df["txn_id"],
            "log_amount": np.round(np.log1p(df["amount"].astype(float)) / 10.0, 6),
            "night": ((df["hour"] < 6) | (df["hour"] >= 23)).astype(int),
            "is_foreign": df["is_foreign"].astype(int),
            "log_distance": np.round(np.log1p(df["distance_km"].astype(float)) / 8.0, 6),
            "txn_count_24h": df["txn_count_24h"].astype(float) / 5.0,
            "new_device": df["new_device"].astype(int),
        }
    )
    for ch in ("atm", "online", "pos"):
        out[f"channel_{ch}"] = (df["channel"] == ch).astype(int)
    for m in MERCHANTS if merchants else ():
        out[f"m_{m}"] = (df["merchant_category"] == m).astype(int)
    out["is_fraud"] = df["is_fraud"].astype(int)
    return out


FRAUD_ROUNDS, FRAUD_NOISE, FRAUD_CLIP, FRAUD_LR = 8, 1.5, 3.0, 0.3
"""Client-level DP of the fraud scenario: ε ≈ 10 at δ = 1e-5 (RDP, no amplification)."""


def _fraud(
    console: Console, root: Path, rows: int, seed: int, keep_up: bool, per_profile: int = 4
) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from privfin.data.synthetic import generate
    from privfin.ml.metrics import binary_report

    start = time.monotonic()
    ds = generate("fraud", rows=rows, seed=seed)
    rng = np.random.default_rng(seed)
    split: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for profile, txns in ds.parties.items():  # each synthetic profile: per_profile banks
        f = fraud_features(txns, merchants=False)
        part = rng.integers(0, per_profile, len(f))
        test = rng.random(len(f)) < 0.3
        for i in range(per_profile):
            mine = part == i
            split[f"{profile}{i + 1}"] = (
                f[mine & ~test].reset_index(drop=True),
                f[mine & test].reset_index(drop=True),
            )
    banks = sorted(split)
    console.print(
        f"[bold]anti-fraud[/]: {len(banks)} banks ({per_profile} of each of 3 profiles, "
        f"~{rows // per_profile} transactions each, fraud rates "
        + ", ".join(f"{ds.parties[b]['is_fraud'].mean():.1%}" for b in ds.parties)
        + "; synthetic) train one model; the alliance node aggregates"
    )
    tables: dict[str, dict[str, pd.DataFrame]] = {"alliance": {}} | {
        b: {f"{b}_train": split[b][0], f"{b}_test": split[b][1]} for b in banks
    }
    datasets = _write(root, tables)
    noise = float(os.environ.get("PRIVFIN_DEMO_NOISE", str(FRAUD_NOISE))) or None
    parties: dict[str, Any] = {"alliance": {"datasets": {}}} | {
        b: {"datasets": {"train": f"{b}_train", "test": f"{b}_test"}} for b in banks
    }
    spec = load_template(
        "fraud",
        {
            "job": f"fraud-{seed}", "parties": parties, "results": ["alliance", *banks],
            "server_and_clients": {"alliance": "server"} | dict.fromkeys(banks, "client"),
            "clients": dict.fromkeys(banks, "client"), "rounds": FRAUD_ROUNDS,
            "noise": noise, "clip": FRAUD_CLIP, "lr": FRAUD_LR,
        },
    )  # fmt: skip
    each = spec.pop("evaluate_each_bank")
    for b in banks:
        spec["steps"][f"evaluate_{b}"] = {**each, "roles": {b: "guest"}}
    cols = [c for c in split[banks[0]][0].columns if c not in ("id", "is_fraud")]
    pooled = pd.concat([split[b][0] for b in banks])
    pooled_lr = LogisticRegression(max_iter=1000).fit(pooled[cols], pooled["is_fraud"])
    all_test = pd.concat([split[b][1] for b in banks])

    def summarise(demo: Demo) -> dict[str, Any]:
        job = str(spec["job"])
        history = demo.json("alliance", job, "train", "history")
        eps = _last(history, "epsilon")
        table = Table(
            "bank", "train (fraud)", "test (fraud)", "alone", "federated (DP)",
            "pooled plaintext*", title="AUC on each bank's held-out transactions",
        )  # fmt: skip
        out: dict[str, Any] = {"alone": {}, "federated": {}, "pooled": {}, "alone_all": {}}
        for b in banks:
            train, test = split[b]
            alone = LogisticRegression(max_iter=1000).fit(train[cols], train["is_fraud"])
            a = binary_report(test["is_fraud"], alone.predict_proba(test[cols])[:, 1]).auc
            out["alone_all"][b] = binary_report(
                all_test["is_fraud"], alone.predict_proba(all_test[cols])[:, 1]
            ).auc
            p = binary_report(test["is_fraud"], pooled_lr.predict_proba(test[cols])[:, 1]).auc
            f = float(demo.json(b, job, f"evaluate_{b}", "metrics")["auc"])
            out["alone"][b], out["federated"][b], out["pooled"][b] = a, f, p
            table.add_row(
                b, f"{len(train)} ({int(train['is_fraud'].sum())})",
                f"{len(test)} ({int(test['is_fraud'].sum())})", f"{a:.3f}",
                f"[bold]{f:.3f}[/]", f"{p:.3f}",
            )  # fmt: skip
        console.print(table)
        scored = pd.concat(
            [
                demo.frame(b, job, "score", "scores").merge(split[b][1][["id", "is_fraud"]])
                for b in banks
            ]
        )
        out["federated_all"] = binary_report(scored["is_fraud"], scored["score"]).auc
        out["pooled_all"] = binary_report(
            all_test["is_fraud"], pooled_lr.predict_proba(all_test[cols])[:, 1]
        ).auc
        alone_all = sorted(out["alone_all"].values())
        console.print(
            f"on all banks' test transactions together ({int(scored['is_fraud'].sum())} "
            f"frauds): federated (DP) AUC [bold]{out['federated_all']:.3f}[/]; each bank's own "
            f"model {alone_all[0]:.3f}–{alone_all[-1]:.3f} (median "
            f"{float(np.median(alone_all)):.3f}); pooled plaintext {out['pooled_all']:.3f}"
        )
        console.print(
            f"[dim]* 'alone' and pooled: scikit-learn LR trained by this demo (it holds all the "
            f"synthetic data). Federated: {FRAUD_ROUNDS} rounds, secure aggregation, "
            f"client-level DP (noise multiplier {noise}, clip {FRAUD_CLIP}"
            f"{f', ε = {eps:.1f} at δ = 1e-5' if eps is not None else ''}). The alliance saw "
            "only each round's sum of updates; no bank saw another's transactions[/]"
        )
        console.print(f"finished in {time.monotonic() - start:.0f} s")
        out["epsilon"] = eps
        out["banks"] = banks
        return out

    bases = dict.fromkeys(banks, "contract") | {"alliance": "contract"}
    return _execute(console, root, spec, datasets, keep_up, summarise, bases)


def _last(history: Any, key: str) -> float | None:
    if isinstance(history, dict) and isinstance(history.get("dp"), dict):
        value = history["dp"].get(key)
        if isinstance(value, int | float):
            return float(value)
    rounds = history.get("history", history) if isinstance(history, dict) else history
    if isinstance(rounds, list):
        for r in reversed(rounds):
            if isinstance(r, dict) and r.get(key) is not None:
                return float(r[key])
    return None
