"""Hetero LR with DEFAULT settings: test AUC against scikit-learn and against the best the
protocol's gradient can give ([10] item 5).

The protocol's gradient is the first-order Taylor expansion ``σ(z) − y ≈ 0.25 z + 0.5 − y``:
whatever the schedule, training converges at most to the minimiser of that gradient's loss
(ridge regression on ``4 (y − 0.5)``, closed form below). So the defaults are checked on two
levels, on :func:`plaintext_reference` (the protocol's arithmetic in floating point; the real
protocol equals it within fixed-point rounding, checked at the end here and in
``test_hetero_lr.py``):

- the defaults reach that optimum (within 0.003 test AUC) in their 20 epochs — FATE's
  RMSprop 0.15 at a constant rate (the old defaults) stays 0.19 below it on the credit
  subsample, its steps never shrink;
- on breast the optimum is within 0.003 of scikit-learn's ``LogisticRegression(C=1.0)``, and
  so are the defaults; on the credit data the Taylor optimum itself is 0.007 below
  scikit-learn (the approximation's bias, measured in ``benchmarks/hetero_lr_accuracy.py``).

Data: the repository's breast split and 3,000-row default_credit subsample (tests/data), and
the synthetic credit scenario with outliers (1 % of rows at 50-100 standard deviations) in a
third of the columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from _datasets import fate_hetero
from privfin.config import Settings
from privfin.data.synthetic import generate
from privfin.fl.vertical.hetero_lr import HeteroLogisticRegression, LRParams, plaintext_reference
from privfin.ml.metrics import roc_auc

Array = npt.NDArray[np.float64]
#: The settings before [10]: FATE's coordinated-LR example (RMSprop, constant rate 0.15).
OLD = {"optimizer": "rmsprop", "learning_rate": 0.15, "lr_schedule": "constant", "lr_decay": 0.0}


def public(name: str) -> tuple[Array, Array, Array]:
    """Guest features, host features, labels of a repository split (rows aligned by id)."""
    g, h = fate_hetero(name)
    h = h.set_index("id").loc[g["id"]]
    return g.drop(columns=["id", "y"]).to_numpy(float), h.to_numpy(float), g["y"].to_numpy(float)


def heavy_tailed(rows: int, seed: int) -> tuple[Array, Array, Array]:
    """Bank (guest, label ``default``) and telecom (host) of the synthetic credit scenario,
    joined on id, standardised, with outliers at 50-100 SD in 1 % of the rows of a third of
    the columns (as ``benchmarks/hetero_lr_accuracy.py``)."""
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
    return x[:, : len(gcols)], x[:, len(gcols) :], joined["default"].to_numpy(float)


def split(xg: Array, xh: Array, y: Array) -> tuple[Array, Array, Array, Array, int]:
    """70/30 stratified split, standardised with the training rows' statistics (pooled)."""
    x = np.hstack([xg, xh])
    tr, te = train_test_split(np.arange(y.size), test_size=0.3, random_state=0, stratify=y)
    sd = x[tr].std(axis=0)
    x = (x - x[tr].mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return x[tr], y[tr], x[te], y[te], xg.shape[1]


def aucs(name: str) -> dict[str, float]:
    """Test AUCs: scikit-learn, the Taylor optimum, the defaults and the old defaults."""
    data = heavy_tailed(6000, 0) if name == "heavy" else public(name)
    xtr, ytr, xte, yte, k = split(*data)
    sk = LogisticRegression(C=1.0, max_iter=1000).fit(xtr, ytr)
    out = {"sklearn": roc_auc(yte, sk.decision_function(xte))}
    # The minimiser of the Taylor gradient's loss with the default L2 (intercept free).
    p = LRParams()
    xb = np.hstack([xtr, np.ones((ytr.size, 1))])
    pen = np.eye(xb.shape[1]) * p.alpha
    pen[-1, -1] = 0.0
    w = np.linalg.solve(0.25 * xb.T @ xb / ytr.size + pen, xb.T @ (ytr - 0.5) / ytr.size)
    out["taylor"] = roc_auc(yte, xte @ w[:-1])
    for label, params in (("default", p), ("old", LRParams(**OLD))):
        g, hs, _ = plaintext_reference(xtr[:, :k], [xtr[:, k:]], ytr, params, seed=1)
        out[label] = roc_auc(yte, xte[:, :k] @ g.coef + g.bias + xte[:, k:] @ hs[0].coef)
    return out


@pytest.fixture(scope="module", params=["breast", "default_credit", "heavy"])
def measured(request: Any) -> tuple[str, dict[str, float]]:
    return request.param, aucs(request.param)


def test_defaults_reach_the_optimum_of_the_taylor_gradient(
    measured: tuple[str, dict[str, float]],
) -> None:
    name, auc = measured
    assert abs(auc["default"] - auc["taylor"]) <= 0.003, (name, auc)
    # The old defaults did not (fails with them): a constant RMSprop step never settles.
    assert auc["taylor"] - auc["old"] > 0.003, (name, auc)


def test_defaults_match_scikit_learn_on_breast(measured: tuple[str, dict[str, float]]) -> None:
    name, auc = measured
    if name == "breast":
        assert auc["default"] >= auc["sklearn"] - 0.003, auc
        assert auc["old"] < auc["sklearn"] - 0.003, auc  # the old defaults: 0.0105 below
    else:
        # The Taylor gradient's own bias on the credit data (docs/benchmarks.md): within 0.01
        # of scikit-learn on these samples, where the old defaults ended 0.03-0.2 below.
        assert auc["default"] >= auc["sklearn"] - 0.01, (name, auc)
        assert auc["old"] < auc["sklearn"] - 0.01, (name, auc)


def test_real_protocol_with_defaults_on_heavy_tailed_rows_equals_the_simulator() -> None:
    """One small run of the real protocol (768-bit keys) with the default schedule on rows
    with outliers: the same weights as :func:`plaintext_reference` (fixed-point rounding)."""
    xg, xh, y = heavy_tailed(600, 2)
    xg, xh, y = xg[:300], xh[:300], y[:300]
    assert np.abs(np.hstack([xg, xh])).max() > 40  # outliers are among these rows
    est = HeteroLogisticRegression(
        guest="bank", max_iter=2, key_bits=768, insecure_allow_small_keys=True,
        settings=Settings(mode="development"), seed=3, timeout=120,
    )  # fmt: skip
    est.fit({"bank": xg, "telecom": xh}, y)
    params = LRParams(max_iter=2)
    assert params.optimizer == "adam" and params.lr_schedule == "inverse"
    g, hs, _ = plaintext_reference(xg, [xh], y, params, seed=0)  # no shuffle: seed unused
    np.testing.assert_allclose(est.coef_["bank"], g.coef, atol=2e-5)
    np.testing.assert_allclose(est.coef_["telecom"], hs[0].coef, atol=2e-5)
    assert est.intercept_ == pytest.approx(g.bias, abs=2e-5)
