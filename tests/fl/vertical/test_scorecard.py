"""Scorecard: points scale, per-party partial scores, joint scoring equals the sum of points."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from _datasets import breast_hetero
from privfin.config import Settings
from privfin.fl.vertical import scorecard
from privfin.fl.vertical.scorecard import (
    HeteroScorecard,
    bin_indicators,
    build_scorecard,
    scaling,
)
from privfin.ml.metrics import roc_auc

KEYS = {"key_bits": 768, "insecure_allow_small_keys": True}
DEV = Settings(mode="development")


def test_scaling_hand_values() -> None:
    offset, factor = scaling(600, 50, 20)
    assert factor == pytest.approx(20 / math.log(2))
    assert offset == pytest.approx(600 - factor * math.log(50))
    card = build_scorecard({"g": [-1.0]}, 0.0, {"g": (["x"], [[0.0]], [[0.5, -0.5, 0.0]])})
    assert card.cards["g"].points[0] == pytest.approx([factor * 0.5, -factor * 0.5, 0.0])
    # Odds of good 50:1 (z = -ln 50) score base_score; doubling them adds pdo.
    assert card.base_points == pytest.approx(offset)


def test_bin_indicators_follow_missing_to() -> None:
    x = np.array([[0.5], [2.0], [np.nan]])
    assert bin_indicators(x, [[1.0]]).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert bin_indicators(x, [[1.0]], [1]).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]


@pytest.mark.parametrize("reveal", [False, True])
def test_hetero_scorecard_on_breast(reveal: bool) -> None:
    g, h = breast_hetero()
    h = h.set_index("id").loc[g["id"]].reset_index()
    xg, xh, y = g.drop(columns=["id", "y"]), h.drop(columns=["id"]), g["y"].to_numpy(float)
    binning = {**KEYS, "method": "chimerge", "n_bins": 5, "iv_threshold": 2.0}
    if reveal:
        binning["reveal_woe_to_hosts"] = True
    sc = HeteroScorecard(
        guest="bank",
        binning=binning,
        lr={**KEYS, "mode": "guest", "max_iter": 10, "batch_size": 0, "learning_rate": 0.2},
        seed=1,
        settings=DEV,
    ).fit({"bank": xg, "telco": xh}, y)
    card = sc.scorecard_
    assert set(card.cards) == {"bank", "telco"} and card.rows()[0]["feature"] == "base"
    host = card.cards["telco"]
    if reveal:
        # The host trains on the WOE it received: rounded to one decimal.
        assert host.woe is not None
        assert all(v == round(v, 1) for w in host.woe for v in w)
        beta = np.asarray(sc.model_.coef_["telco"])
        assert len(beta) == len(host.features)
    else:
        # The scorecard no longer forces WOE disclosure: the host never held its WOE and
        # learns one coefficient per bin instead.
        assert host.woe is None
        assert len(sc.model_.coef_["telco"]) == sum(len(e) + 2 for e in host.edges)
    scores = sc.credit_score({"bank": xg, "telco": xh})
    parts = card.base_points + sum(
        card.cards[p].partial_scores(
            x.rename(columns=lambda c, p=p: f"{p}.{c}")[card.cards[p].features].to_numpy()
        )
        for p, x in (("bank", xg), ("telco", xh))
    )
    np.testing.assert_allclose(scores, parts, atol=1e-4)
    # y = 1 is the event (bad): higher scores must mean lower risk.
    assert roc_auc(1 - y, scores) > 0.97


def test_scorecard_does_not_send_woe_to_hosts_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # scikit-learn's bundled copy of the breast cancer data (no file outside the repository)
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    x = bunch.data.iloc[:, :30]
    xg, xh, y = x.iloc[:, :10], x.iloc[:, 10:], bunch.target.to_numpy(float)
    seen: list[object] = []
    real = scorecard.simulate

    def spy(component: Any, roles: Any, **kw: Any) -> Any:
        out = real(component, roles, **kw)
        if component is scorecard.hetero_binning_component:
            seen.append(out["telco"]["woe"])
        return out

    monkeypatch.setattr(scorecard, "simulate", spy)
    HeteroScorecard(
        guest="bank",
        binning={**KEYS, "iv_threshold": 2.0},
        lr={**KEYS, "mode": "guest", "max_iter": 2, "batch_size": 0},
        seed=1,
        settings=DEV,
    ).fit({"bank": xg, "telco": xh}, y)
    assert seen == [None]
