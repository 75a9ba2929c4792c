"""End to end: ECDH-PSI aligns the guest's and host's tables, then hetero LR trains on them."""

from __future__ import annotations

import numpy as np

from _datasets import breast_hetero
from privfin.config import Settings
from privfin.fl.vertical.hetero_lr import HeteroLogisticRegression
from privfin.ml.metrics import roc_auc
from privfin.psi import simulate as psi_simulate


def test_psi_then_hetero_lr() -> None:
    g, h = breast_hetero()
    g, h = g.iloc[:400], h.iloc[150:]  # partial overlap, other order
    ids = psi_simulate(
        {"bank": g["id"].astype(str).tolist(), "telco": h["id"].astype(str).tolist()}, seed=1
    )
    assert ids["bank"] == ids["telco"]  # both learn the intersection, in the agreed order
    common = ids["bank"]
    assert isinstance(common, list) and 0 < len(common) < 400
    ga = g.set_index(g["id"].astype(str)).loc[common]
    ha = h.set_index(h["id"].astype(str)).loc[common]
    y = ga["y"].to_numpy(float)
    xg, xh = ga.drop(columns=["id", "y"]).to_numpy(), ha.drop(columns=["id"]).to_numpy()
    est = HeteroLogisticRegression(
        guest="bank",
        key_bits=768,
        insecure_allow_small_keys=True,
        max_iter=20,
        seed=2,
        settings=Settings(mode="development"),
    )
    est.fit({"bank": xg, "telco": xh}, y)
    assert roc_auc(y, est.predict_proba({"bank": xg, "telco": xh})[:, 1]) > 0.97
    assert np.all(np.isfinite(est.coef_["telco"]))
