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
import numpy.typing as npt
import pandas as pd

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical._estimator import VerticalEstimator
from privfin.fl.vertical.binning import hetero_binning_component, woe_transform
from privfin.fl.vertical.hetero_lr.estimator import HeteroLogisticRegression
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


_LR_RESERVED = ("guest", "settings", "seed", "timeout")


def _design_names(features: list[str], edges: list[list[float]], woe: bool) -> list[str]:
    """Column names of a party's LR design: one per feature (WOE) or one per bin."""
    if woe:
        return list(features)
    return [
        f"{f}#{k if k <= len(e) else 'missing'}"
        for f, e in zip(features, edges, strict=True)
        for k in range(len(e) + 2)
    ]


class HeteroScorecard(VerticalEstimator):
    """Hetero binning + hetero LR on WOE + points, as one estimator (simulation/evaluation).

    Follows the estimator convention of :mod:`privfin.fl.vertical._estimator`: ``fit(X, y)``
    with one DataFrame of ``party.column`` columns or ``{party: DataFrame}``; ``y`` has two
    classes, ``classes_[1]`` (e.g. 1) is the event (bad).

    Parameters
    ----------
    guest:
        The party holding the labels (and its own features).
    binning:
        Parameters of ``hetero_binning`` (``method``, ``n_bins``, ``iv_threshold`` …). With
        ``reveal_woe_to_hosts`` hosts train on their (rounded) WOE; by default their WOE stays
        at the guest and hosts train on their bin indicators (one coefficient per bin).
    lr:
        Parameters of :class:`HeteroLogisticRegression` (``mode``, ``max_iter``,
        ``learning_rate`` …; ``guest``, ``settings``, ``seed`` and ``timeout`` are this
        estimator's).
    base_score, base_odds, pdo:
        The score scale (default 600 points at 50:1 good:bad odds, 20 points to double).
    settings, seed, timeout:
        Settings of every simulated party (default :meth:`Settings.from_env`), the seed of
        their randomness, seconds a party waits for a message.

    Attributes: ``scorecard_`` (:class:`Scorecard`; feature names qualified by party),
    ``selected_`` (party -> kept features), ``iv_`` (party -> feature -> IV), ``model_`` (the
    fitted :class:`HeteroLogisticRegression`; its columns are the WOE columns or the bins
    ``bank.x0#k``), ``classes_``, ``feature_names_in_``, ``n_features_in_``.

    :meth:`credit_score` gives the points of applicants; :meth:`decision_function` their event
    log-odds (``(offset - points) / factor``) and :meth:`predict_proba` the probabilities.
    """

    _fitted_attr = "scorecard_"

    def __init__(
        self,
        *,
        guest: str = "guest",
        binning: Mapping[str, Any] | None = None,
        lr: Mapping[str, Any] | None = None,
        base_score: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
        settings: Settings | None = None,
        seed: int | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.guest = guest
        self.binning = binning
        self.lr = lr
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo
        self.settings = settings
        self.seed = seed
        self.timeout = timeout

    def _lr_estimator(self) -> HeteroLogisticRegression:
        lr = dict(self.lr or {})
        reserved = sorted(set(lr) & set(_LR_RESERVED))
        if reserved:
            raise ConfigError(f"lr must not set {reserved}: they are the scorecard's parameters")
        try:
            return HeteroLogisticRegression(
                **lr, guest=self.guest, settings=self.settings, seed=self.seed,
                timeout=self.timeout,
            )  # fmt: skip
        except TypeError:
            known = sorted(set(HeteroLogisticRegression().get_params()) - set(_LR_RESERVED))
            raise ConfigError(f"unknown lr parameters {sorted(lr)}; known: {known}") from None

    def fit(self, X: Any, y: Any) -> Self:
        """Train on PSI-aligned features of every party and the guest's labels ``y``."""
        parts = self._fit_frames(X)
        guest = self.guest_
        y01 = self._binary_labels(y, len(parts[guest]))
        scaling(self.base_score, self.base_odds, self.pdo)  # validates the scale
        lr_est = self._lr_estimator()
        binning = dict(self.binning or {})
        reveal = bool(binning.get("reveal_woe_to_hosts", False))
        roles = {p: ["guest"] if p == guest else ["host"] for p in parts}
        inputs: dict[str, dict[str, Any]] = {p: {"X": x} for p, x in parts.items()}
        inputs[guest]["y"] = y01
        out = simulate(
            hetero_binning_component, roles, params=binning,
            inputs=inputs, component_name="hetero_binning", seed=self.seed,
            settings=self._settings(), timeout=self.timeout,
        )  # fmt: skip
        g = out[guest]
        self.iv_ = g["iv"]
        self.selected_ = g["selected"]
        binned: dict[str, tuple[list[str], list[list[float]], list[list[float]] | None]] = {}
        design: dict[str, pd.DataFrame] = {}
        missing: dict[str, list[int | None]] = {}
        for party, x in parts.items():
            res = out[party]
            names = list(res["features"])
            # A host's WOE is what the host received (only if revealed), never the guest's copy.
            woe_all = [g["woe"][party][f] for f in names] if party == guest else res["woe"]
            keep = [j for j, f in enumerate(names) if f in set(self.selected_[party])]
            if not keep:
                continue
            kept = [names[j] for j in keep]
            edges = [res["edges"][j] for j in keep]
            missing[party] = [res["missing_to"][j] for j in keep]
            cols = x.to_numpy(dtype=np.float64, na_value=np.nan)[:, keep]
            if woe_all is not None:
                woes = [woe_all[j] for j in keep]
                binned[party] = (kept, edges, woes)
                matrix = woe_transform(cols, edges, woes)
            else:
                binned[party] = (kept, edges, None)
                matrix = bin_indicators(cols, edges, missing[party])
            columns = _design_names(kept, edges, woe_all is not None)
            design[party] = pd.DataFrame(matrix, columns=columns)
        if guest not in design or len(design) < 2:
            raise ConfigError("IV selection left the guest or every host without features")
        if not reveal and any(b[2] is not None for p, b in binned.items() if p != guest):
            raise ConfigError("a host holds WOE although reveal_woe_to_hosts is off")
        self.model_ = lr_est.fit(design, y01)
        self.scorecard_ = build_scorecard(
            self.model_.coef_, self.model_.intercept_, binned,
            base_score=self.base_score, base_odds=self.base_odds, pdo=self.pdo,
            missing_to=missing,
        )  # fmt: skip
        return self

    def credit_score(self, X: Any, *, hub: MemoryHub | None = None) -> np.ndarray:
        """Total scores (points) of applicants by joint scoring: each party encodes its raw
        features by their bins and contributes its points; the guest learns the total only."""
        parts = self._frames(X)
        card = self.scorecard_
        roles = {p: ["guest"] if p == self.guest_ else ["host"] for p in card.cards}
        inputs: dict[str, dict[str, Any]] = {}
        for party, pc in card.cards.items():
            cols = parts[party][pc.features].to_numpy(dtype=np.float64, na_value=np.nan)
            design = bin_indicators(cols, pc.edges, pc.missing_to)
            inputs[party] = {"X": design, "coef": pc.flat_points()}
        inputs[self.guest_]["intercept"] = card.base_points
        out = simulate(
            vertical_lr_scoring, roles, inputs=inputs, hub=hub, seed=self.seed,
            settings=self._settings(), timeout=self.timeout, component_name="vertical_lr_scoring",
        )  # fmt: skip
        return np.asarray(out[self.guest_]["z"], dtype=np.float64)

    def decision_function(self, X: Any, *, hub: MemoryHub | None = None) -> np.ndarray:
        """Event log-odds of every applicant (log-odds of ``classes_[1]``), from the points."""
        points = self.credit_score(X, hub=hub)  # refuses an unfitted model
        z: np.ndarray = (self.scorecard_.offset - points) / self.scorecard_.factor
        return z

    def predict_proba(self, X: Any, *, hub: MemoryHub | None = None) -> npt.NDArray[np.float64]:
        """``[[1 - p, p], ...]``, ``p`` the probability of the event ``classes_[1]``."""
        z = self.decision_function(X, hub=hub)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))
        return np.column_stack([1.0 - p, p])

    # ------------------------------------------------------------------ save / load

    def _party_slice(self, party: str) -> dict[str, Any]:
        out: dict[str, Any] = {"party": party, "card": None, "lr": None}
        pc = self.scorecard_.cards.get(party)
        if pc is not None:
            out["card"] = {
                "features": pc.features, "edges": pc.edges, "woe": pc.woe,
                "points": pc.points, "missing_to": pc.missing_to,
            }  # fmt: skip
            out["lr"] = self.model_._party_slice(party)
            out["lr"]["features"] = self.model_.feature_names_in_[party]
        if party == self.guest_:
            card = self.scorecard_
            out.update(base_points=card.base_points, offset=card.offset, factor=card.factor)
            out.update(iv=self.iv_, selected=self.selected_)
        return out

    def _restore(self, manifest: Any, slices: Any) -> None:
        g = slices[self.guest_]
        card = Scorecard(float(g["base_points"]), float(g["offset"]), float(g["factor"]))
        self.iv_, self.selected_ = g["iv"], g["selected"]
        lr_names: dict[str, list[str]] = {}
        for party in self.feature_names_in_:
            c = slices[party]["card"]
            if c is None:
                continue
            card.cards[party] = PartyCard(
                list(c["features"]), c["edges"], c["woe"], c["points"], c["missing_to"]
            )
            lr_names[party] = [str(n) for n in slices[party]["lr"]["features"]]
        self.scorecard_ = card
        model = self._lr_estimator()
        model.feature_names_in_ = lr_names
        model.n_features_in_ = sum(len(v) for v in lr_names.values())
        model.guest_ = self.guest_
        model.hosts_ = [p for p in lr_names if p != self.guest_]
        model.classes_ = np.array([0.0, 1.0])
        model._restore(manifest, {p: slices[p]["lr"] for p in lr_names})
        self.model_ = model
