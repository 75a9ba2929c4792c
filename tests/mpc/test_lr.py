"""SS-LR on FATE's breast cancer split (vertical and horizontal) and a default_credit sample:
stable run to run, close to the plaintext reference and to scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from _datasets import breast_hetero, fate_hetero
from privfin.mpc.lr import plaintext_logistic, ss_lr
from privfin.runtime import simulate

from ._setups import DEV

TRAIN = {"epochs": 5, "batch_size": 128, "learning_rate": 0.5}


def _breast() -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    g, h = breast_hetero()
    assert (g["id"] == h["id"]).all()
    hc = [c for c in h.columns if c != "id"]
    h = h.rename(columns={c: f"h_{c}" for c in hc})
    return g, h, [c for c in g.columns if c not in ("id", "y")], [f"h_{c}" for c in hc]


def test_vertical_ss_lr_is_stable_and_matches_plaintext() -> None:
    g, h, gc, hc = _breast()
    x = np.hstack([g[gc].to_numpy(), h[hc].to_numpy()])
    y = g["y"].to_numpy().astype(np.float64)
    roles = {"guest": ("data", "compute", "result"), "host": ("data", "compute")}
    params = {"features": {"guest": gc, "host": hc}, "label": {"party": "guest", "column": "y"}}
    aucs, coefs = [], []
    for seed in range(3):
        out = simulate(
            ss_lr,
            roles,
            params={**params, **TRAIN},
            inputs={"guest": {"table": g}, "host": {"table": h}},
            settings=DEV,
            seed=seed,
        )
        assert out["host"] is None
        w = np.array(out["guest"]["coef"])
        coefs.append(w)
        aucs.append(roc_auc_score(y, x @ w + out["guest"]["intercept"]))
    ref = plaintext_logistic(x, y, **TRAIN)
    ref_auc = roc_auc_score(y, x @ ref[:-1] + ref[-1])
    sk_auc = roc_auc_score(y, LogisticRegression(max_iter=2000).fit(x, y).decision_function(x))
    assert max(aucs) - min(aucs) <= 1e-4  # stable run to run (FATE SSHE-LR was not)
    assert abs(np.mean(aucs) - ref_auc) <= 1e-3
    assert abs(np.mean(aucs) - sk_auc) <= 5e-3
    np.testing.assert_allclose(coefs[0], ref[:-1], atol=0.05)


def test_horizontal_ss_lr_keeps_the_model_shared() -> None:
    g, _h, gc, _ = _breast()
    a, b = g.iloc[:300], g.iloc[300:]
    roles = {"a": ("data", "compute"), "b": ("data", "compute"), "r": ("result",)}
    params = {"partition": "horizontal", "features": gc, "label": "y", **TRAIN, "epochs": 2}
    out = simulate(
        ss_lr,
        roles,
        params={**params, "reveal_model": False},
        inputs={"a": {"table": a}, "b": {"table": b}},
        settings=DEV,
        seed=1,
    )
    assert out["r"] is None  # nothing revealed
    shares = [np.array(out[p]["share"], dtype=np.uint64) for p in ("a", "b")]
    w = (shares[0] + shares[1]).view(np.int64) / 2.0**16
    x = g[gc].to_numpy()
    ref = plaintext_logistic(x, g["y"].to_numpy().astype(float), **{**TRAIN, "epochs": 2})
    np.testing.assert_allclose(w, ref, atol=0.05)


#: Tuned in plaintext (``plaintext_logistic``) on the 3,000 shipped rows of default_credit: a
#: constant rate of 2 per row-averaged gradient with batches of 256 and the last epoch's
#: iterates averaged (plaintext: 6e-5 below sklearn). On all 30,000 rows (benchmarks, see
#: SPEC.md) 3 epochs of batches of 1024 do the same; on 3,000 rows they end 0.010 below.
CREDIT_TRAIN = {"epochs": 20, "batch_size": 256, "learning_rate": 2.0, "average": True}


@pytest.mark.slow
def test_vertical_ss_lr_on_default_credit_is_within_0_002_of_sklearn_in_5_seeded_runs() -> None:
    g, h = fate_hetero("default_credit")
    assert (g["id"] == h["id"]).all()
    gc = [c for c in g.columns if c not in ("id", "y")]
    h = h.rename(columns={c: f"h_{c}" for c in h.columns if c != "id"})
    hc = [c for c in h.columns if c != "id"]
    x = np.hstack([g[gc].to_numpy(), h[hc].to_numpy()])
    y = g["y"].to_numpy().astype(np.float64)
    sk_auc = roc_auc_score(y, LogisticRegression(max_iter=5000).fit(x, y).decision_function(x))
    roles = {"guest": ("data", "compute", "result"), "host": ("data", "compute")}
    params = {
        "features": {"guest": gc, "host": hc},
        "label": {"party": "guest", "column": "y"},
        **CREDIT_TRAIN,
    }
    gaps = []
    for seed in range(5):
        out = simulate(
            ss_lr,
            roles,
            params=params,
            inputs={"guest": {"table": g}, "host": {"table": h}},
            settings=DEV,
            seed=seed,
            timeout=300,
        )["guest"]
        auc = roc_auc_score(y, x @ np.array(out["coef"]) + out["intercept"])
        gaps.append(auc - sk_auc)
    assert max(abs(gap) for gap in gaps) <= 2e-3, gaps
