"""The optional PyTorch adapter (extra ``privfin[torch]``): a torch module's flat parameters
through FedAvg and secure aggregation. Skipped, with the reason, where PyTorch is not
installed; the error without it is tested everywhere."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.fl.horizontal.fedavg import LocalOptimiser, hfl_component, local_train, make_model
from privfin.ml.metrics import roc_auc
from privfin.runtime import simulate

NO_TORCH = "PyTorch not installed (optional extra: pip install privfin[torch])"
DEV = Settings(mode="development")
ROLES = {"server": ["server"], "a": ["client"], "b": ["client"], "c": ["client"]}


def split() -> tuple[
    dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Standardised breast cancer rows: 170 test rows, the rest over three banks."""
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    idx = np.random.default_rng(0).permutation(len(y))
    test, parts = idx[:170], np.array_split(idx[170:], 3)
    inputs = {b: {"X": x[i], "y": y[i].astype(float)} for b, i in zip("abc", parts, strict=True)}
    return inputs, x[idx[170:]], y[idx[170:]].astype(float), x[test], y[test].astype(float)


def test_torch_model_without_torch_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(ConfigError, match=r"privfin\[torch\]"):
        make_model("torch_mlp", 30)
    with pytest.raises(ConfigError, match="torch_mlp"):
        make_model("resnet", 30)


def test_torch_mlp_matches_the_numpy_mlp() -> None:
    """Same architecture, same parameters (reordered: torch stores W1 as hidden × features):
    the same probabilities, loss and gradient as the numpy MLP, to float64 rounding."""
    pytest.importorskip("torch", reason=NO_TORCH)
    tm = make_model("torch_mlp", 30, hidden=8, l2=1e-2)
    nm = make_model("mlp", 30, hidden=8, l2=1e-2)
    assert tm.n_params == nm.n_params == 30 * 8 + 2 * 8 + 1
    inputs, *_ = split()
    x, y = inputs["a"]["X"][:50], inputs["a"]["y"][:50]
    w = nm.init(np.random.default_rng(3))
    d, h = 30, 8
    w1, rest = w[: d * h].reshape(d, h), w[d * h :]
    wt = np.concatenate([w1.T.ravel(), rest])  # torch order: W1ᵀ, b1, W2, b2
    np.testing.assert_allclose(tm.predict_proba(wt, x), nm.predict_proba(w, x), rtol=1e-12)
    lt, gt = tm.loss_grad(wt, x, y)
    ln, gn = nm.loss_grad(w, x, y)
    assert lt == pytest.approx(ln, rel=1e-9)
    g1t = gt[: d * h].reshape(h, d).T
    np.testing.assert_allclose(g1t, gn[: d * h].reshape(d, h), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gt[d * h :], gn[d * h :], rtol=1e-9, atol=1e-14)


def test_torch_init_follows_the_generator() -> None:
    pytest.importorskip("torch", reason=NO_TORCH)
    m = make_model("torch_mlp", 30)
    a = m.init(np.random.default_rng(5))
    np.testing.assert_array_equal(a, m.init(np.random.default_rng(5)))
    assert not np.array_equal(a, m.init(np.random.default_rng(6)))


def test_fedavg_of_a_torch_model_over_secure_aggregation_reaches_pooled_auc() -> None:
    """FedAvg of ``torch_mlp`` (secure aggregation on, public init_seed) reaches the test AUC
    of the same torch model trained on the pooled rows from the same start, within 0.005."""
    pytest.importorskip("torch", reason=NO_TORCH)
    inputs, xtr, ytr, xt, yt = split()
    p = {
        "n_features": 30,
        "model": "torch_mlp",
        "rounds": 5,
        "local_epochs": 2,
        "batch_size": 16,
        "optimiser": "adam",
        "lr": 0.01,
        "l2": 1e-3,
        "init_seed": 1,
    }
    out = simulate(hfl_component, ROLES, params=p, inputs=inputs, seed=0, settings=DEV)
    m = make_model("torch_mlp", 30, l2=p["l2"])
    fed = roc_auc(yt, m.predict_proba(out["server"]["weights"], xt))
    opt = LocalOptimiser(kind="adam", lr=p["lr"], epochs=10, batch_size=16)
    w0 = m.init(np.random.default_rng(1))  # what init_seed=1 gives every party
    w, _ = local_train(m, w0, xtr, ytr, opt, np.random.default_rng(2))
    pooled = roc_auc(yt, m.predict_proba(w, xt))
    assert fed >= pooled - 0.005 and fed > 0.95
    assert out["a"]["weights"].shape == (m.n_params,)
