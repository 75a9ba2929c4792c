"""Hetero LR accuracy with default settings against scikit-learn, and what each option costs.

Data sets, each standardised with its training rows' statistics (70/30 stratified split) and
split between a guest (labels) and one host:
- ``breast``: FATE's breast split (569 rows, 10 + 20 features);
- ``default_credit``: FATE's default_credit split (30,000 rows, 13 + 10 features);
- ``heavy``: the synthetic credit scenario (bank = guest, telecom = host, joined on id), with
  outliers added to a third of the columns: 1 % of the rows at 50-100 standard deviations.
``breast`` and ``default_credit`` are read from ``../shared/data/fate`` when present, else from
the repository's test data (scikit-learn's breast copy; the 3,000-row credit subsample).

Peer: scikit-learn ``LogisticRegression(C=1.0, max_iter=1000)`` on the pooled features, same
split, same run. Options, each trained by :func:`plaintext_reference` (the protocol's arithmetic
in floating point: Taylor gradient, quantised matrices, batches, optimiser; the real protocol
equals it within fixed-point rounding, ``tests/fl/vertical/test_hetero_lr*.py``):
- ``old defaults``: FATE's example (Taylor residual, RMSprop at a constant 0.15, L2 0.01),
  the defaults before [10];
- ``defaults``: the current ``LRParams()``: Fourier residual (``sigmoid="auto"`` with one
  host in mode arbiter), Adam at ``0.1 / (1 + 0.5 epoch)``, L2 0.001;
- ``defaults, Taylor``: the same schedule with the Taylor residual (``sigmoid="taylor"``,
  what ``auto`` uses in mode guest or with several hosts);
- ``defaults + early stop``: with ``early_stopping=True`` (fewer epochs, less time);
- ``defaults, 40 epochs``: a longer schedule;
- ``Taylor optimum``: the closed-form minimiser of the Taylor gradient's loss (ridge regression
  on ``4 (y - 0.5)``, L2 0.001): the best ANY schedule of the Taylor residual can reach;
- ``exact sigmoid (plaintext)``: the default schedule with the exact residual ``σ(z) - y``
  (not computable under additive encryption; no protocol time): the Fourier residual's
  reference.

Time: ``sim s`` is the simulator's; ``protocol s`` is the real protocol's (arbiter mode,
1024-bit Paillier, threads of one process) extrapolated from two short runs on 480 rows (1
and 3 epochs: set-up + per row-epoch cost, measured for each residual) to the training rows
and epochs of the option. The schedules cost nothing per epoch; the Fourier residual costs the
host 8 encryptions per row instead of 1 and the guest 8 short exponentiations.

Usage: ``python benchmarks/hetero_lr_accuracy.py [--quick] [--real N]`` (``--quick``: at most
6,000 rows per data set, under a minute; ``--real N``: also train with the real protocol,
old and new defaults, on the data sets of at most N training rows: measured AUC and time).
Prints a table per data set, then one JSON line per figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import emit, machine, print_table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "fate"
TESTS = ROOT / "tests"
PEER_NAME = "scikit-learn LogisticRegression(C=1.0, max_iter=1000)"
OLD = {
    "optimizer": "rmsprop", "learning_rate": 0.15, "lr_schedule": "constant", "lr_decay": 0.0,
    "alpha": 0.01, "sigmoid": "taylor",
}  # fmt: skip
Arr = Any


def fate_split(name: str) -> tuple[Arr, Arr, Arr, str]:
    """Guest features, host features, labels, source (rows aligned by id)."""
    import pandas as pd

    if (DATA / f"{name}_hetero_guest.csv").exists():
        g = pd.read_csv(DATA / f"{name}_hetero_guest.csv")
        h = pd.read_csv(DATA / f"{name}_hetero_host.csv")
        source = "../shared/data/fate"
    else:
        sys.path.insert(0, str(TESTS))
        from _datasets import fate_hetero

        g, h = fate_hetero(name)
        source = "tests/data (subsample)"
    h = h.set_index("id").loc[g["id"]]
    return (
        g.drop(columns=["id", "y"]).to_numpy(float),
        h.to_numpy(float),
        g["y"].to_numpy(float),
        source,
    )


def heavy_tailed(rows: int, seed: int = 0) -> tuple[Arr, Arr, Arr, str]:
    """The synthetic credit scenario's bank and telecom, joined, standardised, with outliers at
    50-100 SD in 1 % of the rows of a third of the columns (as the accuracy test)."""
    from privfin.data.synthetic import generate

    ds = generate("credit", rows, seed)
    bank, tel = ds.parties["bank"], ds.parties["telecom"]
    joined = bank.merge(tel, on="id")
    gcols = [c for c in bank.columns if c not in ("id", "default")]
    hcols = [c for c in tel.columns if c != "id"]
    x = joined[gcols + hcols].to_numpy(float)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    rng = np.random.default_rng(seed + 1)
    for col in rng.choice(x.shape[1], x.shape[1] // 3, replace=False):
        hit = rng.choice(len(x), max(1, len(x) // 100), replace=False)
        x[hit, col] += rng.choice([-1.0, 1.0], hit.size) * rng.uniform(50, 100, hit.size)
    y = joined["default"].to_numpy(float)
    return x[:, : len(gcols)], x[:, len(gcols) :], y, f"synthetic credit, {rows} rows, seed {seed}"


def split(xg: Arr, xh: Arr, y: Arr, limit: int | None) -> tuple[Arr, Arr, Arr, Arr, int]:
    from sklearn.model_selection import train_test_split

    if limit is not None and y.size > limit:
        keep = np.random.default_rng(0).choice(y.size, limit, replace=False)
        xg, xh, y = xg[keep], xh[keep], y[keep]
    x = np.hstack([xg, xh])
    tr, te = train_test_split(np.arange(y.size), test_size=0.3, random_state=0, stratify=y)
    sd = x[tr].std(axis=0)
    x = (x - x[tr].mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return x[tr], y[tr], x[te], y[te], xg.shape[1]


def simulate_exact(xtr: Arr, ytr: Arr, k: int, params: Any) -> Any:
    """The protocol's batches and optimiser with the exact residual ``σ(z) - y`` (plaintext)."""
    from privfin.fl.vertical.hetero_lr.common import PartyModel, batch_plan

    guest = PartyModel(xtr[:, :k], params, intercept=True)
    host = PartyModel(xtr[:, k:], params, intercept=False)
    for epoch in range(params.max_iter):
        for rows in batch_plan(1, ytr.size, params.batch_size, epoch, False, xtr.shape[1] + 2):
            z = guest.forward(rows) + host.forward(rows)
            d = 1.0 / (1.0 + np.exp(-z)) - ytr[rows]
            guest.step(guest.x[rows].T @ d / rows.size, epoch)
            host.step(host.x[rows].T @ d / rows.size, epoch)
    return guest, host


def options(xtr: Arr, ytr: Arr, xte: Arr, yte: Arr, k: int) -> list[dict[str, Any]]:
    """Test AUC, epochs and simulator time of every option."""
    from privfin.fl.vertical.hetero_lr import LRParams, plaintext_reference
    from privfin.ml.metrics import roc_auc

    base = LRParams(sigmoid="fourier")
    out = []

    def score(g: Any, h: Any) -> float:
        return roc_auc(yte, xte[:, :k] @ g.coef + g.bias + xte[:, k:] @ h.coef)

    runs = [
        ("old defaults", LRParams(**OLD)),
        ("defaults", base),
        ("defaults, Taylor", replace(base, sigmoid="taylor")),
        ("defaults + early stop", replace(base, early_stopping=True)),
        ("defaults, 40 epochs", replace(base, max_iter=40)),
    ]
    for name, params in runs:
        start = time.perf_counter()
        g, hs, epochs = plaintext_reference(xtr[:, :k], [xtr[:, k:]], ytr, params, seed=1)
        seconds = time.perf_counter() - start
        out.append({"option": name, "auc": score(g, hs[0]), "epochs": epochs,
                    "sim_s": seconds, "sigmoid": params.residual(1)})  # fmt: skip
    start = time.perf_counter()
    xb = np.hstack([xtr, np.ones((ytr.size, 1))])
    pen = np.eye(xb.shape[1]) * base.alpha
    pen[-1, -1] = 0.0
    w = np.linalg.solve(0.25 * xb.T @ xb / ytr.size + pen, xb.T @ (ytr - 0.5) / ytr.size)
    out.append({"option": "Taylor optimum", "auc": roc_auc(yte, xte @ w[:-1]), "epochs": None,
                "sim_s": time.perf_counter() - start, "sigmoid": "taylor"})  # fmt: skip
    start = time.perf_counter()
    g, h = simulate_exact(xtr, ytr, k, base)
    out.append({"option": "exact sigmoid (plaintext)", "auc": score(g, h), "epochs": None,
                "sim_s": time.perf_counter() - start, "sigmoid": "exact"})  # fmt: skip
    return out


def protocol_cost(xtr: Arr, ytr: Arr, k: int, sigmoid: str) -> tuple[float, float]:
    """(set-up seconds, seconds per row-epoch) of the real protocol at 1024-bit keys."""
    from privfin.config import Settings
    from privfin.fl.vertical.hetero_lr import HeteroLogisticRegression

    rows = min(480, ytr.size)
    times = {}
    for epochs in (1, 3):
        est = HeteroLogisticRegression(
            guest="guest", max_iter=epochs, key_bits=1024, insecure_allow_small_keys=True,
            sigmoid=sigmoid,
            settings=Settings(mode="development"), seed=1,
        )  # fmt: skip
        start = time.perf_counter()
        est.fit({"guest": xtr[:rows, :k], "host": xtr[:rows, k:]}, ytr[:rows])
        times[epochs] = time.perf_counter() - start
    per_epoch = max(0.0, (times[3] - times[1]) / 2)
    return max(0.0, times[1] - per_epoch), per_epoch / rows


def real_runs(xtr: Arr, ytr: Arr, xte: Arr, yte: Arr, k: int) -> list[dict[str, Any]]:
    """The real protocol (arbiter mode, 1024-bit Paillier) with the old and the new defaults
    on all the training rows: measured test AUC and seconds."""
    from privfin.config import Settings
    from privfin.fl.vertical.hetero_lr import HeteroLogisticRegression
    from privfin.ml.metrics import roc_auc

    out = []
    for name, params in (("old defaults", OLD), ("defaults", {})):
        est = HeteroLogisticRegression(
            guest="guest", key_bits=1024, insecure_allow_small_keys=True,
            settings=Settings(mode="development"), seed=1, timeout=3600, **params,
        )  # fmt: skip
        start = time.perf_counter()
        est.fit({"guest": xtr[:, :k], "host": xtr[:, k:]}, ytr)
        seconds = time.perf_counter() - start
        z = xte[:, :k] @ est.coef_["guest"] + xte[:, k:] @ est.coef_["host"] + est.intercept_
        residual = "taylor" if params else "fourier"
        out.append({"option": f"{name}, real protocol", "auc": roc_auc(yte, z), "s": seconds,
                    "residual": residual})  # fmt: skip
    return out


def run(quick: bool, real: int = 0) -> list[dict[str, Any]]:
    """``real``: also run the real protocol on data sets of at most that many training rows."""
    from sklearn.linear_model import LogisticRegression

    from privfin.ml.metrics import roc_auc

    limit = 6000 if quick else None
    sets = {
        "breast": fate_split("breast"),
        "default_credit": fate_split("default_credit"),
        "heavy": heavy_tailed(6000 if quick else 20000),
    }
    lines = []
    for name, (xg, xh, y, source) in sets.items():
        xtr, ytr, xte, yte, k = split(xg, xh, y, limit)
        start = time.perf_counter()
        sk = LogisticRegression(C=1.0, max_iter=1000).fit(xtr, ytr)
        sk_s = time.perf_counter() - start
        sk_auc = roc_auc(yte, sk.decision_function(xte))
        cost = {kind: protocol_cost(xtr, ytr, k, kind) for kind in ("taylor", "fourier")}
        rows = [{"option": "scikit-learn", "test_auc": sk_auc, "gap": 0.0, "residual": "exact",
                 "epochs": None, "sim_s": sk_s, "protocol_s": None}]  # fmt: skip
        results = options(xtr, ytr, xte, yte, k)
        for r in results:
            protocol = None
            if r["epochs"] is not None:
                setup, per_row_epoch = cost[r["sigmoid"]]
                protocol = setup + per_row_epoch * ytr.size * r["epochs"]
            row = {"option": r["option"], "test_auc": r["auc"], "gap": r["auc"] - sk_auc}
            row.update(residual=r["sigmoid"], epochs=r["epochs"], sim_s=r["sim_s"])
            row.update(protocol_s=protocol)
            rows.append(row)
        if ytr.size <= real:
            for r in real_runs(xtr, ytr, xte, yte, k):
                rows.append({"option": r["option"], "test_auc": r["auc"],
                             "gap": r["auc"] - sk_auc, "residual": r["residual"], "epochs": 20,
                             "sim_s": None, "protocol_s": r["s"]})  # fmt: skip
        size = (f"{name} ({source}): {ytr.size} train / {yte.size} test rows, {k}+{xh.shape[1]} "
                f"features, 70/30 split seed 0, {machine()}")  # fmt: skip
        print_table(f"Hetero LR test AUC, {size}; protocol s: 1024-bit, extrapolated", rows)
        by = {r["option"]: r for r in rows}
        if "defaults, real protocol" in by:
            real_row = by["defaults, real protocol"]
            lines.append(emit(f"hetero_lr.accuracy.{name}.test_auc_real_protocol", "AUC",
                              real_row["test_auc"], sk_auc, PEER_NAME, True,
                              f"{size}; defaults, real protocol, 1024-bit, "
                              f"{real_row['protocol_s']:.1f} s"))  # fmt: skip
        lines.append(emit(f"hetero_lr.accuracy.{name}.test_auc", "AUC", by["defaults"]["test_auc"],
                          sk_auc, PEER_NAME, True, f"{size}; defaults"))  # fmt: skip
        lines.append(emit(f"hetero_lr.accuracy.{name}.test_auc_old_defaults", "AUC",
                          by["old defaults"]["test_auc"], sk_auc, PEER_NAME, True,
                          f"{size}; Taylor, RMSprop 0.15, L2 0.01 (before [10])"))  # fmt: skip
        lines.append(emit(f"hetero_lr.accuracy.{name}.test_auc_taylor", "AUC",
                          by["defaults, Taylor"]["test_auc"], sk_auc, PEER_NAME, True,
                          f"{size}; defaults with sigmoid='taylor'"))  # fmt: skip
        for option, key in (("defaults", "time"), ("defaults, Taylor", "time_taylor")):
            note = f"{size}; {option}, 1024-bit, extrapolated"
            seconds = by[option]["protocol_s"]
            lines.append(emit(f"hetero_lr.accuracy.{name}.protocol_{key}", "s", seconds, None,
                              PEER_NAME, False, note))  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="at most 6,000 rows per data set")
    ap.add_argument("--real", type=int, default=0, metavar="N",
                    help="also train with the real protocol (1024-bit keys, measured) on the "
                    "data sets of at most N training rows")  # fmt: skip
    args = ap.parse_args()
    run(args.quick, args.real)


if __name__ == "__main__":
    main()
