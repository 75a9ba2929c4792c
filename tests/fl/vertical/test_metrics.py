"""privfin.ml.metrics against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm

from privfin.errors import ConfigError
from privfin.ml import metrics


def _sample(seed: int, n: int = 500, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + 0.8 * y
    if ties:
        s = np.round(s, 1)
    return y, s


@pytest.mark.parametrize("ties", [False, True])
def test_auc_and_roc_match_sklearn(ties: bool) -> None:
    y, s = _sample(1, ties=ties)
    assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, thr = metrics.roc_curve(y, s)
    fpr2, tpr2, thr2 = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr2)
    np.testing.assert_allclose(tpr, tpr2)
    np.testing.assert_allclose(thr[1:], thr2[1:])


@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(-5, 5)), min_size=2, max_size=60).filter(
        lambda r: len({a for a, _ in r}) == 2
    )
)
def test_auc_property_against_sklearn(rows: list[tuple[int, int]]) -> None:
    y = np.array([a for a, _ in rows])
    s = np.array([b for _, b in rows], dtype=float)
    assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_ks_is_max_tpr_minus_fpr() -> None:
    y, s = _sample(2)
    fpr, tpr, _ = skm.roc_curve(y, s)
    ks = metrics.ks_statistic(y, s)
    assert ks.ks == pytest.approx(float(np.max(tpr - fpr)), abs=1e-12)
    # Hand check on a separable sample: KS = 1 at the threshold between the classes.
    perfect = metrics.ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert perfect.ks == 1.0 and perfect.threshold == 0.8


def test_gain_table() -> None:
    y, s = _sample(3, n=1000)
    g = metrics.gain_table(y, s, 10)
    assert g.count.sum() == 1000 and g.events.sum() == y.sum()
    assert g.cum_gain[-1] == pytest.approx(1.0) and g.cum_lift[-1] == pytest.approx(1.0)
    assert g.lift[0] > 1.2 > g.lift[-1]
    top = np.argsort(-s, kind="mergesort")[:100]
    assert g.events[0] == y[top].sum()
    assert len(g.as_rows()) == 10


def test_confusion_matches_sklearn() -> None:
    y, s = _sample(4)
    c = metrics.confusion_at(y, s, 0.3)
    tn, fp, fn, tp = skm.confusion_matrix(y, s >= 0.3).ravel()
    assert (c["tn"], c["fp"], c["fn"], c["tp"]) == (tn, fp, fn, tp)
    assert c["precision"] == pytest.approx(skm.precision_score(y, s >= 0.3))
    assert c["recall"] == pytest.approx(skm.recall_score(y, s >= 0.3))
    assert c["f1"] == pytest.approx(skm.f1_score(y, s >= 0.3))
    assert c["accuracy"] == pytest.approx(skm.accuracy_score(y, s >= 0.3))


def test_psi() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=5000)
    same = metrics.population_stability_index(base, rng.normal(size=5000))
    shifted = metrics.population_stability_index(base, rng.normal(0.5, 1, size=5000))
    assert same.psi < 0.02 and shifted.psi > 0.2
    assert same.contributions.sum() == pytest.approx(same.psi)
    assert same.expected.sum() == pytest.approx(1.0)
    # Hand value: two bins, shares (0.5, 0.5) -> (0.25, 0.75).
    hand = metrics.population_stability_index([0, 0, 1, 1], [0, 1, 1, 1], n_bins=2)
    expect = (0.25 - 0.5) * np.log(0.5) + (0.75 - 0.5) * np.log(1.5)
    assert hand.psi == pytest.approx(expect)


def test_report_and_validation() -> None:
    y, s = _sample(6)
    rep = metrics.binary_report(y, s)
    assert rep.summary()["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    with pytest.raises(ConfigError):
        metrics.roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ConfigError):
        metrics.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ConfigError):
        metrics.roc_auc([0, 1], [0.1])
    with pytest.raises(ConfigError):
        metrics.roc_auc([0, 1], [0.1, float("nan")])
