"""[12] DP-SGD: exact per-example gradients, the accountant's epsilon, accuracy near the
non-private model, the ledger charged before the data is read, scikit-learn conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from privfin.dp.accounting import Accountant
from privfin.dp.ledger import BudgetExceeded, BudgetLedger
from privfin.dp.release import Charge
from privfin.dp.sgd import DPSGDClassifier, _forward, per_example_gradients
from privfin.errors import ConfigError
from privfin.store import open_engine, upgrade


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(3000, 10, n_informative=5, random_state=0)
    return np.clip(x, -4, 4) / 4, y  # scaled with public bounds


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_per_example_gradients_match_finite_differences(model: str) -> None:
    rng = np.random.default_rng(0)
    d, h = 4, 3
    x = rng.normal(size=(5, d))
    y = rng.integers(0, 2, size=5).astype(float)
    dim = d + 1 if model == "logistic" else d * h + 2 * h + 1
    w = rng.normal(size=dim)

    def loss(wv: np.ndarray, i: int) -> float:
        z = _forward(model, wv, x[i : i + 1], h)[0]
        return float(np.logaddexp(0, z) - y[i] * z)

    g = per_example_gradients(model, w, x, y, h)
    assert g.shape == (5, dim)
    eps = 1e-6
    for i in range(5):
        num = np.array(
            [(loss(w + eps * e, i) - loss(w - eps * e, i)) / (2 * eps) for e in np.eye(dim)]
        )
        assert np.allclose(g[i], num, atol=1e-6)


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_accuracy_and_epsilon(model: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    plain = LogisticRegression().fit(x, y).score(x, y)
    clf = DPSGDClassifier(
        model, noise_multiplier=1.5, sampling_rate=0.05, steps=200, learning_rate=1.0, seed=1
    ).fit(x, y)
    assert clf.score(x, y) > plain - 0.05
    dim = 11 if model == "logistic" else 10 * 16 + 33
    eff = clf.mechanism().effective_noise_multiplier(dim)
    assert 1.49 < eff < 1.5  # the grid's rounding costs a little noise
    expected = Accountant("rdp").gaussian(eff, sampling_rate=0.05, count=200).epsilon(1e-5)
    assert clf.epsilon_ == pytest.approx(expected, rel=1e-12)
    assert 2.0 < clf.epsilon_ < 3.0
    assert clf.predict_proba(x).shape == (3000, 2)
    if model == "logistic":
        assert clf.coef_.shape == (1, 10) and clf.intercept_.shape == (1,)


def test_noise_is_there_and_seeds_reproduce(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    kw = {"noise_multiplier": 1.0, "sampling_rate": 0.05, "steps": 20}
    a = DPSGDClassifier(seed=1, **kw).fit(x, y).weights_  # type: ignore[arg-type]
    b = DPSGDClassifier(seed=1, **kw).fit(x, y).weights_  # type: ignore[arg-type]
    c = DPSGDClassifier(seed=2, **kw).fit(x, y).weights_  # type: ignore[arg-type]
    assert np.array_equal(a, b) and not np.allclose(a, c)
    d = DPSGDClassifier(**kw).fit(x, y).weights_  # type: ignore[arg-type]  # OS CSPRNG
    assert not np.allclose(a, d)


def test_charged_before_the_data_is_read(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    engine = open_engine(tmp_path / "s.sqlite")
    upgrade(engine)
    ledger = BudgetLedger(engine)
    ledger.set_budget("cards", 3.0, 1e-4, who="owner")
    clf = DPSGDClassifier(noise_multiplier=1.5, sampling_rate=0.05, steps=200, seed=3)
    charge = Charge(ledger, "cards", "bank", "job-7", "bank-node", step="train")
    cost = clf.privacy_cost(10)
    clf.fit(x, y, charge=charge)
    (row,) = ledger.history("cards")
    assert row.state == "committed" and row.mechanism == "dpsgd:logistic"
    assert row.epsilon == pytest.approx(cost.epsilon) and row.delta == 1e-5
    with pytest.raises(BudgetExceeded):
        clone(clf).fit(np.full((3, 10), np.nan), [0, 1, 0], charge=charge)  # refused first
    assert len(ledger.history("cards")) == 1
    engine.dispose()


def test_estimator_conventions_and_validation(data: tuple[np.ndarray, np.ndarray]) -> None:
    clf = DPSGDClassifier("mlp", hidden=4, steps=5)
    assert clone(clf).get_params()["hidden"] == 4
    with pytest.raises(ConfigError, match="not fitted"):
        clf.predict(data[0])
    for bad in (
        {"model": "svm"},
        {"noise_multiplier": 0.0},
        {"sampling_rate": 1.5},
        {"steps": 0},
        {"accountant": "moments"},
        {"delta": 0.0},
    ):
        with pytest.raises(ConfigError):
            DPSGDClassifier(**bad).fit(*data)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="two classes"):
        DPSGDClassifier(steps=1).fit(data[0], np.zeros(len(data[0])))
