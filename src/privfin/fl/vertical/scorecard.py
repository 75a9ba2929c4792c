"""Credit scorecards from a hetero LR on WOE features: points per bin, per-party partial scores.

Scaling (the usual convention): ``score = offset + factor * ln(odds of good)`` with
``factor = pdo / ln 2`` and ``offset = base_score - factor * ln(base_odds)``, so a score of
``base_score`` means good:bad odds of ``base_odds`` and every ``pdo`` points double the odds.
The LR predicts the event (bad) log-odds ``z = b + sum_j beta_j * WOE_j``, hence
``score = offset - factor * z``: the **base points** are ``offset - factor * b`` (at the guest)
and bin ``k`` of feature ``j`` earns ``-factor * beta_j * WOE_jk`` points, owned by the party
that owns feature ``j``.

Pipeline (:class:`HeteroScorecard`): hetero binning (``reveal_woe_to_hosts=True``, IV-based
selection) -> each party replaces its selected features by their WOE locally -> hetero LR ->
points. Scoring a new applicant is the joint scoring protocol of
:mod:`privfin.fl.vertical.scoring` with the points as coefficients: the guest learns the total
score only; each party's partial score stays with it.

What each party learns, beyond hetero binning and hetero LR (see their SPEC.md): each host
learns the WOE (event log-odds ratio) of its own bins — necessary for it to hold its points
table — and its own points; the guest learns every party's IV and per-bin event counts (from
binning) and the total score of scored applicants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical.binning import hetero_binning_component, woe_transform
from privfin.fl.vertical.hetero_lr import HeteroLogisticRegression
from privfin.fl.vertical.scoring import vertical_lr_scoring
from privfin.ml.binning import apply_bins
from privfin.runtime import simulate

__all__ = ["HeteroScorecard", "Scorecard", "scaling"]


def scaling(base_score: float, base_odds: float, pdo: float) -> tuple[float, float]:
    """``(offset, factor)`` of the score scale."""
    if not (pdo > 0 and base_odds > 0):
        raise ConfigError("pdo and base_odds must be positive")
    factor = pdo / math.log(2.0)
    return base_score - factor * math.log(base_odds), factor


@dataclass
class PartyCard:
    """One party's slice of a scorecard: its features' bin edges, WOE and points."""

    features: list[str]
    edges: list[list[float]]
    woe: list[list[float]]
    points: list[list[float]]

    def partial_scores(self, x: Any) -> np.ndarray:
        """Sum of this party's points for each row of ``x`` (its selected feature columns)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(self.features):
            raise ConfigError(f"expected {len(self.features)} columns ({self.features})")
        total = np.zeros(arr.shape[0])
        for j, pts in enumerate(self.points):
            total += np.asarray(pts)[apply_bins(arr[:, j], self.edges[j])]
        return total


@dataclass
class Scorecard:
    """Points tables per party plus the base points (held by the guest)."""

    base_points: float
    offset: float
    factor: float
    cards: dict[str, PartyCard] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """The scorecard as a table: party, feature, bin (interval), WOE, points."""
        out: list[dict[str, Any]] = [{"party": "", "feature": "base", "bin": "", "woe": 0.0,
                                      "points": self.base_points}]  # fmt: skip
        for party, card in self.cards.items():
            for name, edges, woe, pts in zip(
                card.features, card.edges, card.woe, card.points, strict=True
            ):
                bounds = [-math.inf, *edges, math.inf]
                for k in range(len(edges) + 1):
                    label = f"[{bounds[k]:.6g}, {bounds[k + 1]:.6g})"
                    out.append({"party": party, "feature": name, "bin": label,
                                "woe": woe[k], "points": pts[k]})  # fmt: skip
                out.append({"party": party, "feature": name, "bin": "missing",
                            "woe": woe[-1], "points": pts[-1]})  # fmt: skip
        return out


def build_scorecard(
    coef: Mapping[str, Any],
    intercept: float,
    binned: Mapping[str, tuple[list[str], list[list[float]], list[list[float]]]],
    *,
    base_score: float = 600.0,
    base_odds: float = 50.0,
    pdo: float = 20.0,
) -> Scorecard:
    """Points from LR coefficients on WOE features. ``binned[party] = (features, edges, woe)``."""
    offset, factor = scaling(base_score, base_odds, pdo)
    card = Scorecard(offset - factor * intercept, offset, factor)
    for party, (names, edges, woe) in binned.items():
        beta = np.asarray(coef[party], dtype=np.float64)
        if beta.size != len(names):
            raise ConfigError(f"{party}: {beta.size} coefficients for {len(names)} features")
        points = [(-factor * b * np.asarray(w)).tolist() for b, w in zip(beta, woe, strict=True)]
        card.cards[party] = PartyCard(list(names), edges, woe, points)
    return card


class HeteroScorecard:
    """Hetero binning + hetero LR on WOE + points, as one estimator (simulation/evaluation).

    Parameters
    ----------
    binning:
        Parameters of ``hetero_binning`` (``method``, ``n_bins``, ``iv_threshold`` …).
    lr:
        Parameters of ``hetero_lr`` (``mode``, ``max_iter``, ``learning_rate`` …).
    base_score, base_odds, pdo:
        The score scale (default 600 points at 50:1 good:bad odds, 20 points to double).

    Attributes: ``scorecard_`` (:class:`Scorecard`), ``selected_`` (party -> kept features),
    ``iv_`` (party -> feature -> IV), ``model_`` (the fitted
    :class:`HeteroLogisticRegression`).
    """

    def __init__(
        self,
        *,
        binning: Mapping[str, Any] | None = None,
        lr: Mapping[str, Any] | None = None,
        base_score: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
    ) -> None:
        self.binning = dict(binning or {})
        self.lr = dict(lr or {})
        self.base_score, self.base_odds, self.pdo = base_score, base_odds, pdo

    def fit(
        self, features: Mapping[str, Any], y: Any, *, guest: str, seed: int | None = None
    ) -> Self:
        """``features``: party -> DataFrame (PSI-aligned rows); ``y``: the guest's labels."""
        insecure = bool(self.binning.get("insecure_allow_small_keys"))
        roles = {p: ["guest"] if p == guest else ["host"] for p in features}
        inputs: dict[str, dict[str, Any]] = {p: {"X": x} for p, x in features.items()}
        inputs[guest]["y"] = y
        out = simulate(
            hetero_binning_component, roles, params={**self.binning, "reveal_woe_to_hosts": True},
            inputs=inputs, component_name="hetero_binning", seed=seed,
            settings=Settings(mode="development") if insecure else Settings(),
        )  # fmt: skip
        g = out[guest]
        self.iv_ = g["iv"]
        self.selected_ = g["selected"]
        binned: dict[str, tuple[list[str], list[list[float]], list[list[float]]]] = {}
        woe_x: dict[str, np.ndarray] = {}
        for party, x in features.items():
            res = out[party]
            names = list(res["features"])
            woe_all = [g["woe"][party][f] for f in names] if party == guest else res["woe"]
            keep = [j for j, f in enumerate(names) if f in set(self.selected_[party])]
            if not keep:
                continue
            edges = [res["edges"][j] for j in keep]
            woes = [woe_all[j] for j in keep]
            binned[party] = ([names[j] for j in keep], edges, woes)
            cols = np.asarray(x, dtype=np.float64)[:, keep]
            woe_x[party] = woe_transform(cols, edges, woes)
        if guest not in woe_x or len(woe_x) < 2:
            raise ConfigError("IV selection left the guest or every host without features")
        self.model_ = HeteroLogisticRegression(**self.lr).fit(woe_x, y, guest=guest, seed=seed)
        self.guest_ = guest
        self.scorecard_ = build_scorecard(
            self.model_.coef_, self.model_.intercept_, binned,
            base_score=self.base_score, base_odds=self.base_odds, pdo=self.pdo,
        )  # fmt: skip
        return self

    def score(self, features: Mapping[str, Any], *, hub: MemoryHub | None = None) -> np.ndarray:
        """Total scores of applicants by joint scoring: each party turns its raw features into
        WOE and contributes its points; the guest learns the total only."""
        card = self.scorecard_
        roles = {p: ["guest"] if p == self.guest_ else ["host"] for p in card.cards}
        inputs: dict[str, dict[str, Any]] = {}
        for party, pc in card.cards.items():
            x = np.asarray(features[party], dtype=np.float64)
            names = list(self.iv_[party])
            cols = x[:, [names.index(f) for f in pc.features]]
            woe = woe_transform(cols, pc.edges, pc.woe)
            coef = -card.factor * np.asarray(self.model_.coef_[party])
            inputs[party] = {"X": woe, "coef": coef}
        inputs[self.guest_]["intercept"] = card.base_points
        out = simulate(vertical_lr_scoring, roles, inputs=inputs, hub=hub)
        return np.asarray(out[self.guest_]["z"])
