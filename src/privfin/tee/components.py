"""Components approved to run inside an enclave (the code whose measurement owners allow).

Each takes the decrypted tables (by dataset name, already in memory inside the enclave) and
JSON parameters, and returns a JSON-ready result: the only thing that leaves the enclave, sealed
to the result party. Models leave as plain numbers (coefficients, tree arrays), never pickled.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from privfin.errors import ConfigError

__all__ = ["APPROVED", "column_stats", "read_table", "train_model"]


def read_table(raw: bytes) -> Any:
    """A dataset as sent to the enclave: CSV text with a header."""
    import pandas as pd

    return pd.read_csv(io.BytesIO(raw))


def _join(tables: Mapping[str, Any], on: str) -> Any:
    frames = list(tables.values())
    if not frames:
        raise ConfigError("no input tables")
    if any(on not in f.columns for f in frames):
        raise ConfigError(f"an input table has no id column {on!r}")
    joined = frames[0]
    for f in frames[1:]:
        joined = joined.merge(f, on=on, how="inner")
    return joined


def column_stats(tables: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Row count, mean and standard deviation of the numeric columns of the joined tables."""
    joined = _join(tables, str(params.get("id_column", "id")))
    numeric = joined.select_dtypes("number")
    return {
        "rows": len(joined),
        "mean": {c: float(numeric[c].mean()) for c in numeric.columns},
        "std": {c: float(numeric[c].std(ddof=1)) for c in numeric.columns},
    }


def _tree_arrays(tree: Any) -> dict[str, list[Any]]:
    t = tree.tree_
    return {
        "children_left": t.children_left.tolist(),
        "children_right": t.children_right.tolist(),
        "feature": t.feature.tolist(),
        "threshold": t.threshold.tolist(),
        "value": t.value[:, 0, 0].tolist(),
    }


def train_model(tables: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Join the parties' tables on ``id_column`` and train a scikit-learn model (``model``:
    ``lr`` logistic regression or ``gbdt`` gradient boosting) on ``label``; hold out
    ``test_fraction`` for AUC/KS/accuracy. Returns the model as numbers and the metrics."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score, roc_curve
    from sklearn.model_selection import train_test_split

    id_col = str(params.get("id_column", "id"))
    label = str(params.get("label", "label"))
    kind = str(params.get("model", "lr"))
    seed = int(params.get("seed", 0))
    joined = _join(tables, id_col).sort_values(id_col)
    if label not in joined.columns:
        raise ConfigError(f"label column {label!r} is in no input table")
    features = [c for c in joined.columns if c not in (id_col, label)]
    x = joined[features].to_numpy(dtype=float)
    y = joined[label].to_numpy()
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=float(params.get("test_fraction", 0.3)), random_state=seed, stratify=y
    )
    model_out: dict[str, Any]
    if kind == "lr":
        lr = LogisticRegression(max_iter=int(params.get("max_iter", 1000)))
        lr.fit(x_tr, y_tr)
        proba = lr.predict_proba(x_te)[:, 1]
        model_out = {
            "type": "logistic_regression",
            "features": features,
            "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0]),
        }
    elif kind == "gbdt":
        gb = GradientBoostingClassifier(
            n_estimators=int(params.get("n_estimators", 50)),
            max_depth=int(params.get("max_depth", 3)),
            learning_rate=float(params.get("learning_rate", 0.1)),
            random_state=seed,
        )
        gb.fit(x_tr, y_tr)
        proba = gb.predict_proba(x_te)[:, 1]
        init = float(np.log(np.mean(y_tr) / (1 - np.mean(y_tr))))
        model_out = {
            "type": "gbdt",
            "features": features,
            "learning_rate": gb.learning_rate,
            "init_logit": init,
            "trees": [_tree_arrays(est[0]) for est in gb.estimators_],
        }
    else:
        raise ConfigError(f"model must be 'lr' or 'gbdt', got {kind!r}")
    fpr, tpr, _ = roc_curve(y_te, proba)
    metrics = {
        "auc": float(roc_auc_score(y_te, proba)),
        "ks": float(np.max(tpr - fpr)),
        "accuracy": float(accuracy_score(y_te, proba >= 0.5)),
        "rows_joined": len(joined),
        "rows_train": len(y_tr),
        "rows_test": len(y_te),
    }
    return {"model": model_out, "metrics": metrics}


APPROVED: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]] = {
    "column_stats": column_stats,
    "train_model": train_model,
}
