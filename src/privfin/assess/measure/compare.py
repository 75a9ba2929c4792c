"""One scenario under several technologies: the same data, the same split, the same metric.

``credit``: the synthetic credit scenario (``privfin data synth credit``: a bank with the label
``default``, a telecom operator and an e-commerce platform; ``scenarios/credit.yaml``). The
parties' tables are joined on ``id`` (what the scenario's PSI step does), features
standardised, and the rows split 70/30 with :func:`~privfin.assess.measure.workloads.split`
(stratified, seeded, in id order: the simulated enclave's own split). Every technology trains
a logistic regression on the training rows; the metric is the AUC on the held-out rows:

- ``pooled-plaintext``: scikit-learn LR on the pooled rows (the baseline; gap 0 by definition);
- ``vfl-he``: hetero LR (Paillier; guest = bank, hosts = telecom and e-commerce; no arbiter);
- ``mpc``: SS-LR (2PC between the bank and the telecom operator, the e-commerce platform a
  data party; multiplication triples from a trusted dealer);
- ``tee``: scikit-learn LR inside the **simulated** enclave (no hardware protection), the
  parties' tables sent encrypted to it;
- ``dp-central``: DP-SGD logistic regression on the pooled rows at the stated ε (a curator
  holding all the data: central DP).

Quick mode: 1,000 generated customers per party (about 430 in all three tables), 768-bit
Paillier keys (insecure size, development mode), few epochs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from privfin.assess.measure import (
    accuracy_evidence,
    communication_evidence,
    performance_evidence,
)
from privfin.assess.measure._run import RunStats, run_instrumented
from privfin.assess.measure.workloads import DEV, Accuracy, Job, split
from privfin.assess.model import Evidence, Perspective
from privfin.runtime import Context

__all__ = ["COMPARABLE", "CreditSplit", "compare", "credit_split"]

COMPARABLE = ("vfl-he", "mpc", "tee", "dp-central", "pooled-plaintext")
PARTIES = ("bank", "telecom", "ecommerce")
DP_NOISE = 1.1
DP_DELTA = 1e-5


class CreditSplit:
    """The joined, standardised credit rows, their columns per party and the split."""

    def __init__(self, rows: int, seed: int) -> None:
        from privfin.data.synthetic import generate

        ds = generate("credit", rows=rows, seed=seed)
        self.label = ds.labels["bank"]
        tables = [ds.parties[p] for p in PARTIES]
        joined = tables[0]
        for t in tables[1:]:
            joined = joined.merge(t, on="id", how="inner")
        joined = joined.sort_values("id").reset_index(drop=True)
        self.columns = {
            p: [c for c in ds.parties[p].columns if c not in ("id", self.label)] for p in PARTIES
        }
        self.features = [c for p in PARTIES for c in self.columns[p]]
        x = joined[self.features].to_numpy(dtype=np.float64)
        x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self.ids = joined["id"].astype(str).tolist()
        self.x = np.round(x, 6)
        self.y = joined[self.label].to_numpy().astype(np.float64)
        idx = np.arange(len(self.y)).astype(np.float64)
        tr, te, self.ytr, self.yte = split(idx[:, None], self.y, seed)
        self.train = tr[:, 0].astype(int)
        self.test = te[:, 0].astype(int)
        self.seed = seed

    def cols(self, party: str) -> list[int]:
        return [self.features.index(c) for c in self.columns[party]]

    def frame(self, party: str, rows: np.ndarray, *, ids: bool = False) -> pd.DataFrame:
        out = pd.DataFrame(
            self.x[np.ix_(rows, np.asarray(self.cols(party)))], columns=self.columns[party]
        )
        if party == "bank":
            out[self.label] = self.y[rows].astype(int)
        if ids:
            out.insert(0, "id", [self.ids[i] for i in rows])
        return out


def credit_split(quick: bool, seed: int) -> CreditSplit:
    return CreditSplit(1000 if quick else 20000, seed)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from privfin.ml.metrics import roc_auc

    return float(roc_auc(y, score))


def _pooled_component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(inputs["X"], inputs["y"])
    return {"score": model.decision_function(inputs["X_test"]).tolist()}


def _dp_component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    from privfin.dp.sgd import DPSGDClassifier

    model = DPSGDClassifier(
        "logistic",
        noise_multiplier=float(params["noise_multiplier"]),
        sampling_rate=float(params["sampling_rate"]),
        steps=int(params["steps"]),
        learning_rate=float(params["learning_rate"]),
        delta=float(params["delta"]),
        seed=int(params["seed"]),
    )
    model.fit(inputs["X"], inputs["y"])
    cost = model.privacy_cost(int(np.asarray(inputs["X"]).shape[1]))
    return {
        "score": model.predict_proba(inputs["X_test"])[:, 1].tolist(),
        "epsilon": float(cost.epsilon),
    }


def _jobs(data: CreditSplit, quick: bool) -> dict[str, tuple[Job, str]]:
    """Per technology: the job and its one-line description."""
    from privfin.fl.vertical.hetero_lr import hetero_lr_component
    from privfin.mpc.lr import ss_lr
    from privfin.tee.component import tee_component

    tr, te = data.train, data.test
    xtr, xte = data.x[tr], data.x[te]
    yte = data.yte
    pooled_in = {"X": xtr, "y": data.ytr, "X_test": xte}

    def by_score(party: str, what: str) -> Callable[[Mapping[str, Any]], Accuracy]:
        def score(out: Mapping[str, Any]) -> Accuracy:
            s = np.asarray(out[party]["score"], dtype=np.float64)
            return Accuracy("auc", _auc(yte, s), 0.0, what)

        return score

    jobs: dict[str, tuple[Job, str]] = {}
    jobs["pooled-plaintext"] = (
        Job(
            _pooled_component,
            {"pool": ["data", "result"]},
            {},
            {"pool": pooled_in},
            by_score("pool", "scikit-learn LR on the pooled rows"),
        ),
        "scikit-learn LR on the pooled plaintext",
    )

    # vertical FL: hetero LR
    bits = 768 if quick else 2048
    vparams = {
        "mode": "guest",
        "max_iter": 5 if quick else 20,
        "batch_size": 64,
        "learning_rate": 0.3,
        "feature_counts": {p: len(data.columns[p]) for p in PARTIES},
        "key_bits": bits,
        "insecure_allow_small_keys": bits < 2048,
    }
    vin: dict[str, dict[str, Any]] = {p: {"X": xtr[:, data.cols(p)]} for p in PARTIES}
    vin["bank"]["y"] = data.ytr

    def vscore(out: Mapping[str, Any]) -> Accuracy:
        z = np.full(len(yte), float(out["bank"].get("intercept") or 0.0))
        for p in PARTIES:
            z += xte[:, data.cols(p)] @ np.asarray(out[p]["coef"], dtype=np.float64)
        return Accuracy("auc", _auc(yte, z), 0.0, f"hetero LR, Paillier {bits} bits")

    vroles = {"bank": ["guest"], "telecom": ["host"], "ecommerce": ["host"]}
    jobs["vfl-he"] = (
        Job(hetero_lr_component, vroles, vparams, vin, vscore),
        f"hetero LR (Paillier {bits}-bit keys, {vparams['max_iter']} epochs, guest mode)",
    )

    # MPC: SS-LR, vertical
    mroles = {
        "bank": ["data", "compute", "result"],
        "telecom": ["data", "compute"],
        "ecommerce": ["data"],
    }
    mparams = {
        "features": {p: data.columns[p] for p in PARTIES},
        "label": {"party": "bank", "column": data.label},
        "triples": "dealer",
        "epochs": 5 if quick else 20,
        "batch_size": 64,
        "learning_rate": 0.5,
    }
    min_ = {p: {"table": data.frame(p, tr)} for p in PARTIES}

    def mscore(out: Mapping[str, Any]) -> Accuracy:
        res = out["bank"]
        z = np.full(len(yte), float(res["intercept"]))
        for name, w in zip(res["features"], res["coef"], strict=True):
            z += xte[:, data.features.index(name)] * float(w)
        return Accuracy("auc", _auc(yte, z), 0.0, "SS-LR (2PC, dealer triples)")

    jobs["mpc"] = (
        Job(ss_lr, mroles, mparams, min_, mscore, notes=("trusted-dealer triples",)),
        f"SS-LR (2PC bank + telecom, e-commerce a data party; {mparams['epochs']} epochs)",
    )

    # TEE: the whole joined rows go to the enclave, which makes the same split itself
    everything = np.arange(len(data.y))
    tin = {p: {"table": data.frame(p, everything, ids=True)} for p in PARTIES}
    troles = {"bank": ["data", "result"], "telecom": ["data"], "ecommerce": ["data"]}
    troles["host"] = ["enclave_host"]
    tparams = {"model": "lr", "seed": data.seed, "test_fraction": 0.3, "label": data.label}

    def tscore(out: Mapping[str, Any]) -> Accuracy:
        m = out["bank"]["model"]
        idx = [data.features.index(c) for c in m["features"]]
        z = xte[:, idx] @ np.asarray(m["coef"], dtype=np.float64) + float(m["intercept"])
        return Accuracy("auc", _auc(yte, z), 0.0, "LR inside the SIMULATED enclave")

    jobs["tee"] = (
        Job(tee_component, troles, tparams, tin, tscore, settings=DEV),
        "scikit-learn LR inside a SIMULATED enclave (no hardware protection)",
    )

    # central DP: DP-SGD on the pooled rows
    dparams = {
        "noise_multiplier": DP_NOISE,
        "sampling_rate": 0.1,
        "steps": 100 if quick else 1000,
        "learning_rate": 0.5,
        "delta": DP_DELTA,
        "seed": data.seed,
    }
    jobs["dp-central"] = (
        Job(
            _dp_component,
            {"curator": ["data", "result"]},
            dparams,
            {"curator": pooled_in},
            by_score("curator", "DP-SGD LR on the pooled rows"),
        ),
        f"DP-SGD logistic regression (noise multiplier {DP_NOISE}, sampling 0.1, "
        f"{dparams['steps']} steps, delta {DP_DELTA})",
    )
    return jobs


def compare(
    scenario: str,
    technologies: Sequence[str],
    *,
    quick: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[Perspective, list[Evidence]]]:
    """Run ``scenario`` under each of ``technologies``; per technology the accuracy (AUC on
    the common held-out rows against pooled plaintext), performance and communication
    evidence.

    Raises
    ------
    ValueError
        An unknown scenario, or a technology the scenario cannot run (known: :data:`COMPARABLE`).
    """
    if scenario != "credit":
        raise ValueError(f"unknown comparison scenario {scenario!r}; known: credit")
    unknown = [t for t in technologies if t not in COMPARABLE]
    if unknown:
        raise ValueError(
            f"the credit comparison cannot run {unknown}; it runs {', '.join(COMPARABLE)}"
        )
    if progress is not None:
        progress("credit: generating and splitting the data")
    data = credit_split(quick, seed)
    jobs = _jobs(data, quick)
    pooled_stats, pooled_acc = _one(jobs["pooled-plaintext"][0], seed)
    pooled = pooled_acc.value
    where = (
        f"credit scenario (synthetic, seed {seed}): {len(data.y)} joined customers, "
        f"{len(data.features)} features, {len(data.train)} training / {len(data.test)} "
        f"held-out rows, {'quick' if quick else 'full'} mode, in one process"
    )
    out: dict[str, dict[Perspective, list[Evidence]]] = {}
    for tech in technologies:
        if progress is not None:
            progress(f"credit: {tech}")
        job, desc = jobs[tech]
        stats, acc = (pooled_stats, pooled_acc) if tech == "pooled-plaintext" else _one(job, seed)
        acc = Accuracy(acc.metric, acc.value, pooled, f"{desc}; AUC on the held-out rows")
        evidence = accuracy_evidence(acc, where)
        if tech == "dp-central":
            eps = float(stats.outputs["curator"]["epsilon"])
            evidence.append(Evidence("epsilon", eps, "", f"RDP accountant, delta {DP_DELTA}"))
        src = f"{where}; {desc}"
        out[tech] = {
            Perspective.ACCURACY: evidence,
            Perspective.PERFORMANCE: performance_evidence(stats, src),
            Perspective.COMMUNICATION: communication_evidence(stats, src),
        }
    return out


def _one(job: Job, seed: int) -> tuple[RunStats, Accuracy]:
    stats = run_instrumented(
        job.component,
        job.roles,
        params=job.params,
        inputs=job.inputs,
        seed=seed,
        settings=job.settings,
    )
    return stats, job.score(stats.outputs)
