"""Credit scorecards from a hetero LR on WOE features: points per bin, per-party partial scores.

Scaling (the usual convention): ``score = offset + factor * ln(odds of good)`` with
``factor = pdo / ln 2`` and ``offset = base_score - factor * ln(base_odds)``, so a score of
``base_score`` means good:bad odds of ``base_odds`` and every ``pdo`` points double the odds.
The LR predicts the event (bad) log-odds ``z = b + sum_j beta_j * WOE_j``, hence
``score = offset - factor * z``: the **base points** are ``offset - factor * b`` (at the guest)
and bin ``k`` of feature ``j`` earns ``-factor * beta_j * WOE_jk`` points, owned by the party
that owns feature ``j``.

Pipeline (:class:`HeteroScorecard`): hetero binning (IV-based selection) -> each party encodes
its selected features locally -> hetero LR -> points. The guest encodes its features by their
WOE. A host encodes its features by their WOE only if the job sets
``binning.reveal_woe_to_hosts`` (then it receives its bins' WOE rounded to ``woe_decimals``, and
bin ``k`` earns ``-factor * beta_j * WOE_jk``); by default the host's WOE stays at the guest and
the host encodes each selected feature by its final-bin indicators instead, so the LR learns one
coefficient ``gamma_jk`` per bin and bin ``k`` earns ``-factor * gamma_jk`` points. Scoring a new
applicant is the joint scoring protocol of :mod:`privfin.fl.vertical.scoring` with the points
as coefficients of the bin indicators: the guest learns the total score only; each party's
partial score stays with it.

What each party learns, beyond hetero binning and hetero LR (see their SPEC.md): each host
learns its own points (hence how its bins rank in risk: inherent in holding a points table) and,
only with ``reveal_woe_to_hosts``, the rounded WOE of its bins; the guest learns every party's
IV and per-bin event counts (from binning) and the total score of scored applicants. With bin
indicators, every indicator column covers no rows or at least ``min_bin_share`` of them (the
binning floors; few missing values are counted in a value bin, ``missing_to``), so the host's
LR gradients are sums over such bins, never over a handful of rows.
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

__all__ = ["HeteroScorecard", "Scorecard", "bin_indicators", "scaling"]


def scaling(base_score: float, base_odds: float, pdo: float) -> tuple[float, float]:
    """``(offset, factor)`` of the score scale."""
    if not (pdo > 0 and base_odds > 0):
        raise ConfigError("pdo and base_odds must be positive")
    factor = pdo / math.log(2.0)
    return base_score - factor * math.log(base_odds), factor


def bin_indicators(
    x: Any, edges: list[list[float]], missing_to: list[int | None] | None = None
) -> np.ndarray:
    """One 0/1 column per bin of every feature (value bins, then the missing bin); a missing
    value goes to the missing bin, or to ``missing_to[j]`` if binning counted feature ``j``'s
    few missing values in a value bin."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(edges):
        raise ConfigError(f"expected {len(edges)} feature columns")
    blocks = []
    for j, e in enumerate(edges):
        idx = apply_bins(arr[:, j], e)
        target = None if missing_to is None else missing_to[j]
        if target is not None:
            idx[idx == len(e) + 1] = target
        block = np.zeros((arr.shape[0], len(e) + 2))
        block[np.arange(arr.shape[0]), idx] = 1.0
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.zeros((arr.shape[0], 0))


@dataclass
class PartyCard:
    """One party's slice of a scorecard: its features' bin edges, WOE (``None`` for a host
    that did not receive its WOE) and points."""

    features: list[str]
    edges: list[list[float]]
    woe: list[list[float]] | None
    points: list[list[float]]
    missing_to: list[int | None] | None = None

    def partial_scores(self, x: Any) -> np.ndarray:
        """Sum of this party's points for each row of ``x`` (its selected feature columns)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(self.features):
            raise ConfigError(f"expected {len(self.features)} columns ({self.features})")
        total: np.ndarray = bin_indicators(arr, self.edges, self.missing_to) @ self.flat_points()
        return total

    def flat_points(self) -> np.ndarray:
        """The points of every bin, feature by feature (coefficients of the bin indicators)."""
        return np.concatenate([np.asarray(p, dtype=np.float64) for p in self.points])


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
            woes = card.woe or [[math.nan] * len(p) for p in card.points]
            for name, edges, woe, pts in zip(
                card.features, card.edges, woes, card.points, strict=True
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
    binned: Mapping[str, tuple[list[str], list[list[float]], list[list[float]] | None]],
    *,
    base_score: float = 600.0,
    base_odds: float = 50.0,
    pdo: float = 20.0,
    missing_to: Mapping[str, list[int | None]] | None = None,
) -> Scorecard:
    """Points from LR coefficients. ``binned[party] = (features, edges, woe)``: with WOE tables
    the coefficients are one per feature (LR on WOE); with ``woe=None`` they are one per bin
    (LR on the bin indicators of :func:`bin_indicators`)."""
    offset, factor = scaling(base_score, base_odds, pdo)
    card = Scorecard(offset - factor * intercept, offset, factor)
    for party, (names, edges, woe) in binned.items():
        beta = np.asarray(coef[party], dtype=np.float64)
        if woe is not None:
            if beta.size != len(names):
                raise ConfigError(f"{party}: {beta.size} coefficients for {len(names)} features")
            points = [
                (-factor * b * np.asarray(w)).tolist() for b, w in zip(beta, woe, strict=True)
            ]
        else:
            sizes = [len(e) + 2 for e in edges]
            if beta.size != sum(sizes):
                raise ConfigError(f"{party}: {beta.size} coefficients for {sum(sizes)} bins")
            cuts = np.cumsum(sizes)[:-1]
            points = [(-factor * g).tolist() for g in np.split(beta, cuts)]
        missing = None if missing_to is None else missing_to.get(party)
        card.cards[party] = PartyCard(list(names), edges, woe, points, missing)
    return card


class HeteroScorecard:
    """Hetero binning + hetero LR on WOE + points, as one estimator (simulation/evaluation).

    Parameters
    ----------
    binning:
        Parameters of ``hetero_binning`` (``method``, ``n_bins``, ``iv_threshold`` …). With
        ``reveal_woe_to_hosts`` hosts train on their (rounded) WOE; by default their WOE stays
        at the guest and hosts train on their bin indicators (one coefficient per bin).
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
        reveal = bool(self.binning.get("reveal_woe_to_hosts", False))
        roles = {p: ["guest"] if p == guest else ["host"] for p in features}
        inputs: dict[str, dict[str, Any]] = {p: {"X": x} for p, x in features.items()}
        inputs[guest]["y"] = y
        out = simulate(
            hetero_binning_component, roles, params=self.binning,
            inputs=inputs, component_name="hetero_binning", seed=seed,
            settings=Settings(mode="development") if insecure else Settings.from_env(),
        )  # fmt: skip
        g = out[guest]
        self.iv_ = g["iv"]
        self.selected_ = g["selected"]
        binned: dict[str, tuple[list[str], list[list[float]], list[list[float]] | None]] = {}
        design: dict[str, np.ndarray] = {}
        missing: dict[str, list[int | None]] = {}
        for party, x in features.items():
            res = out[party]
            names = list(res["features"])
            # A host's WOE is what the host received (only if revealed), never the guest's copy.
            woe_all = [g["woe"][party][f] for f in names] if party == guest else res["woe"]
            keep = [j for j, f in enumerate(names) if f in set(self.selected_[party])]
            if not keep:
                continue
            edges = [res["edges"][j] for j in keep]
            missing[party] = [res["missing_to"][j] for j in keep]
            cols = np.asarray(x, dtype=np.float64)[:, keep]
            if woe_all is not None:
                woes = [woe_all[j] for j in keep]
                binned[party] = ([names[j] for j in keep], edges, woes)
                design[party] = woe_transform(cols, edges, woes)
            else:
                binned[party] = ([names[j] for j in keep], edges, None)
                design[party] = bin_indicators(cols, edges, missing[party])
        if guest not in design or len(design) < 2:
            raise ConfigError("IV selection left the guest or every host without features")
        if not reveal and any(b[2] is not None for p, b in binned.items() if p != guest):
            raise ConfigError("a host holds WOE although reveal_woe_to_hosts is off")
        self.model_ = HeteroLogisticRegression(**self.lr).fit(design, y, guest=guest, seed=seed)
        self.guest_ = guest
        self.scorecard_ = build_scorecard(
            self.model_.coef_, self.model_.intercept_, binned,
            base_score=self.base_score, base_odds=self.base_odds, pdo=self.pdo,
            missing_to=missing,
        )  # fmt: skip
        return self

    def score(self, features: Mapping[str, Any], *, hub: MemoryHub | None = None) -> np.ndarray:
        """Total scores of applicants by joint scoring: each party encodes its raw features by
        their bins and contributes its points; the guest learns the total only."""
        card = self.scorecard_
        roles = {p: ["guest"] if p == self.guest_ else ["host"] for p in card.cards}
        inputs: dict[str, dict[str, Any]] = {}
        for party, pc in card.cards.items():
            x = np.asarray(features[party], dtype=np.float64)
            names = list(self.iv_[party])
            cols = x[:, [names.index(f) for f in pc.features]]
            design = bin_indicators(cols, pc.edges, pc.missing_to)
            inputs[party] = {"X": design, "coef": pc.flat_points()}
        inputs[self.guest_]["intercept"] = card.base_points
        out = simulate(vertical_lr_scoring, roles, inputs=inputs, hub=hub)
        return np.asarray(out[self.guest_]["z"])
