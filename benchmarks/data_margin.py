"""How much does joining parties help? Plaintext AUCs on the synthetic scenarios.

Recomputes the figures of ``docs/data.md``: for ``credit`` and ``marketing`` a model trained on
the label party's features alone (``peer``) against the same model on the features of all parties
joined on ``id`` (``ours``); for ``fraud`` a model trained on bank_a's transactions alone against
one trained on the three banks' pooled transactions, both evaluated on bank_a's held-out data.
Models: standardised logistic regression (``lr``) and histogram gradient boosting (``gbdt``),
scikit-learn defaults. Prints a table, then one JSON line per figure.

Usage: ``python benchmarks/data_margin.py [--quick] [--rows N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from privfin.data.synthetic import SyntheticDataset, generate, join_parties


def _model(kind: str) -> Any:
    if kind == "lr":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return HistGradientBoostingClassifier(random_state=0)


def _numeric(frame: pd.DataFrame) -> np.ndarray:
    """One-hot encode text columns, compress heavy tails with log1p for the linear model."""
    encoded = pd.get_dummies(frame, dtype=np.float64)
    values = encoded.to_numpy(dtype=np.float64)
    return np.asarray(np.sign(values) * np.log1p(np.abs(values)), dtype=np.float64)


def _auc(
    kind: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray
) -> float:
    model = _model(kind)
    model.fit(x_tr, y_tr)
    return float(roc_auc_score(y_te, model.predict_proba(x_te)[:, 1]))


def vertical_aucs(
    ds: SyntheticDataset, kind: str, parties: Sequence[str] | None = None, seed: int = 0
) -> tuple[float, float, int]:
    """AUC of (label party only, all ``parties`` joined) on the customers every party holds."""
    label_party, label = next(iter(ds.labels.items()))
    joined = join_parties(ds, parties)
    y = joined.pop(f"{label_party}.{label}").to_numpy()
    features = joined.drop(columns="id")
    own = [c for c in features.columns if c.startswith(f"{label_party}.")]
    idx_tr, idx_te = train_test_split(
        np.arange(len(y)), test_size=0.3, random_state=seed, stratify=y
    )
    x_all = _numeric(features)
    x_own = _numeric(features[own])
    single = _auc(kind, x_own[idx_tr], y[idx_tr], x_own[idx_te], y[idx_te])
    joint = _auc(kind, x_all[idx_tr], y[idx_tr], x_all[idx_te], y[idx_te])
    return single, joint, len(y)


def fraud_aucs(ds: SyntheticDataset, kind: str, seed: int = 0) -> tuple[float, float, int]:
    """AUC on bank_a's test split of (bank_a-only model, model on all banks' pooled data)."""
    splits = {}
    for name, df in ds.parties.items():
        y = df["is_fraud"].to_numpy()
        x = df.drop(columns=["txn_id", "id", "is_fraud"])
        splits[name] = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    cols = pd.get_dummies(pd.concat([s[0] for s in splits.values()])).columns

    def enc(frame: pd.DataFrame) -> np.ndarray:
        return _numeric(pd.get_dummies(frame, dtype=np.float64).reindex(columns=cols, fill_value=0))

    x_tr_a, x_te_a, y_tr_a, y_te_a = splits["bank_a"]
    single = _auc(kind, enc(x_tr_a), y_tr_a, enc(x_te_a), y_te_a)
    x_pool = np.vstack([enc(s[0]) for s in splits.values()])
    y_pool = np.concatenate([s[2] for s in splits.values()])
    pooled = _auc(kind, x_pool, y_pool, enc(x_te_a), y_te_a)
    return single, pooled, len(y_tr_a)


def main() -> None:
    """Parse arguments, compute the AUCs, print the table and the JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data (seconds)")
    parser.add_argument("--rows", type=int, default=None, help="rows per party")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 100_000)
    fraud_rows = rows if args.quick else 2 * rows
    figures = []
    for scenario, parties_list, peer in (
        ("credit", None, "bank-only model"),
        ("credit", ["bank", "telecom"], "bank-only model"),
        ("marketing", None, "bank-only model"),
        ("fraud", None, "bank_a-only model"),
    ):
        n = fraud_rows if scenario == "fraud" else rows
        t0 = time.perf_counter()
        ds = generate(scenario, n, seed=args.seed)
        for kind in ("lr", "gbdt"):
            if scenario == "fraud":
                single, joint, used = fraud_aucs(ds, kind, seed=args.seed)
                size = f"{n} txns/bank, bank_a train {used}"
                tag = "pooled vs bank_a"
            else:
                single, joint, used = vertical_aucs(ds, kind, parties_list, seed=args.seed)
                size = f"{n} rows/party, {used} joined"
                tag = "+".join(parties_list or list(ds.parties))
            suffix = "" if parties_list is None else "." + "_".join(parties_list)
            name = f"data.{scenario}{suffix}.auc_margin" + ("" if kind == "lr" else ".gbdt")
            figures.append(
                {
                    "bench": name,
                    "unit": "auc",
                    "ours": round(joint, 4),
                    "peer": round(single, 4),
                    "peer_name": peer,
                    "ratio": round(joint / single, 4),
                    "higher_is_better": True,
                    "size": f"{size}, model {kind}, seed {args.seed}",
                    "_tag": tag,
                    "_secs": time.perf_counter() - t0,
                }
            )
    print(f"{'figure':<44} {'single':>7} {'joint':>7} {'margin':>7}  parties")
    for f in figures:
        margin = float(f["ours"]) - float(f["peer"])  # type: ignore[arg-type]
        print(f"{f['bench']:<44} {f['peer']:>7.4f} {f['ours']:>7.4f} {margin:>+7.4f}  {f['_tag']}")
    for f in figures:
        print(json.dumps({k: v for k, v in f.items() if not k.startswith("_")}))


if __name__ == "__main__":
    main()
