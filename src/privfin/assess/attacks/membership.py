"""Membership inference: did this row take part in training the model?

Two attacks, both black-box (the attacker queries the model's probabilities) and both assuming
what the literature assumes: the attacker knows the training algorithm and its
hyper-parameters and can draw data from the same distribution (here: the same pool of
candidate rows), so it can train **shadow models** on random halves of the pool.

- **Shadow-model attack** (Shokri et al., S&P 2017): an attack classifier learns, from the
  shadow models' outputs on rows they did and did not train on, to tell members from
  non-members; it is then applied to the target model's outputs.
- **LiRA** (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022),
  online variant with a global variance (their recommendation with few shadow models): for each
  row, the logit-scaled confidence ``log(p/(1-p))`` of its true label under the shadow models
  that trained on it (IN) and those that did not (OUT) is fitted by two Gaussians; the score of
  the target's confidence is the log likelihood ratio IN/OUT. A row without IN shadows falls
  back to the offline test (how far above the OUT mean it lies).

Evaluation is leave-one-out over ``M`` models each trained on a uniformly random half of the
pool: each model in turn is the target and the others its shadows; every (model, row) pair is
one trial (member or not, each with probability 1/2). Reported: AUC, advantage ``max(TPR −
FPR)``, TPR at FPR 0.01 and 0.1 (Carlini et al. argue the low-FPR regime is what matters).

Targets: ``plain`` — logistic regression with almost no regularisation on few rows and many
features (it memorises, the unprotected control); ``dp-sgd`` — the same model trained by
:class:`privfin.dp.sgd.DPSGDClassifier`; ``hfl`` — :class:`FedAvgClassifier` over secure
aggregation (three clients); ``hfl-dp`` — the same with client-level DP. Federated learning
alone protects the *updates*, not the final model: expect ``hfl`` to leak like ``plain`` when it
fits as well; that is a finding, not a bug.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from privfin.assess.attacks._metrics import logit_confidence, roc_result
from privfin.assess.model import AttackResult
from privfin.config import Settings
from privfin.dp.mechanisms import PrivacyCost
from privfin.dp.sgd import DPSGDClassifier
from privfin.errors import ConfigError

__all__ = ["TARGETS", "lira_scores", "membership_inference", "shadow_scores"]

Arr = npt.NDArray[np.float64]
Predict = Callable[[Arr], Arr]  # rows -> probability of class 1
Trainer = Callable[[Arr, Arr, int], Predict]

TARGETS = ("plain", "dp-sgd", "hfl", "hfl-dp")


@dataclass(frozen=True)
class _Size:
    pool: int
    features: int
    models: int


QUICK = _Size(pool=100, features=32, models=8)
FULL = _Size(pool=200, features=48, models=24)


def candidate_pool(n: int, d: int, seed: int) -> tuple[Arr, Arr]:
    """Rows scaled to norm about 1 with a weak linear signal and 20 % flipped labels (the rows
    a model can only fit by memorising them)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) / np.sqrt(d)
    w = rng.normal(size=d)
    y = (x @ w + 0.3 * rng.normal(size=n) > 0).astype(np.float64)
    flip = rng.random(n) < 0.2
    y[flip] = 1.0 - y[flip]
    if y.min() == y.max():  # pragma: no cover - astronomically unlikely
        y[0] = 1.0 - y[0]
    return x, y


# -- trainers (the attacker replays the same one for its shadow models)


def _plain(x: Arr, y: Arr, seed: int) -> Predict:
    model = LogisticRegression(C=1e3, solver="newton-cholesky", max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return lambda rows: np.asarray(model.predict_proba(rows)[:, 1], dtype=np.float64)


class _CostOnce(DPSGDClassifier):
    """DP-SGD whose (data-independent) accounting is done once for all shadow models."""

    _cache: dict[tuple[Any, ...], PrivacyCost] = {}  # noqa: RUF012 - a process-wide memo

    def privacy_cost(self, n_features: int) -> PrivacyCost:
        key = (self.model, self.noise_multiplier, self.sampling_rate, self.steps, n_features)
        if key not in self._cache:
            self._cache[key] = super().privacy_cost(n_features)
        return self._cache[key]


DP_SGD = {
    "noise_multiplier": 4.0,
    "clip": 1.0,
    "sampling_rate": 0.2,
    "steps": 60,
    "learning_rate": 1.0,
}


def _dp_sgd(x: Arr, y: Arr, seed: int) -> Predict:
    model = _CostOnce("logistic", seed=seed, **DP_SGD).fit(x, y)  # type: ignore[arg-type]
    return lambda rows: np.asarray(model.predict_proba(rows)[:, 1], dtype=np.float64)


def dp_sgd_epsilon(n_features: int) -> PrivacyCost:
    return _CostOnce("logistic", **DP_SGD).privacy_cost(n_features)  # type: ignore[arg-type]


HFL = {"model": "logistic", "rounds": 30, "local_epochs": 5, "lr": 1.0, "batch_size": 8}
HFL_DP = {**HFL, "rounds": 10, "dp_noise_multiplier": 1.0, "dp_clip": 1.0}


def _fedavg(extra: dict[str, Any], notes: dict[str, Any]) -> Trainer:
    from privfin.fl.horizontal.fedavg.estimator import FedAvgClassifier

    def train(x: Arr, y: Arr, seed: int) -> Predict:
        groups = np.arange(len(x)) % 3
        model = FedAvgClassifier(
            **extra, seed=seed, settings=Settings(mode="development"), timeout=120
        ).fit(x, y, groups=groups)
        if model.dp_ is not None:
            notes["dp"] = model.dp_
        return lambda rows: np.asarray(model.predict_proba(rows)[:, 1], dtype=np.float64)

    return train


def trainer(target: str, notes: dict[str, Any] | None = None) -> Trainer:
    """The training procedure of ``target`` (``notes`` receives what it reports, e.g. the
    client-level DP guarantee of ``hfl-dp``)."""
    notes = {} if notes is None else notes
    if target == "plain":
        return _plain
    if target == "dp-sgd":
        return _dp_sgd
    if target == "hfl":
        return _fedavg(HFL, notes)
    if target == "hfl-dp":
        return _fedavg(HFL_DP, notes)
    raise ConfigError(f"unknown membership-inference target {target!r}; one of {TARGETS}")


# -- the attacks


def confidences(train: Trainer, x: Arr, y: Arr, models: int, seed: int) -> tuple[Arr, Arr]:
    """Train ``models`` models on random halves; return ``(phi, inside)``: the logit-scaled
    confidence of each model on each row's true label, and whether the row was in its training
    set (both ``models x rows``)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    phi = np.empty((models, n))
    inside = np.zeros((models, n), dtype=bool)
    for m in range(models):
        while True:
            take = rng.permutation(n)[: n // 2]
            if len(np.unique(y[take])) == 2:
                break
        inside[m, take] = True
        predict = train(x[take], y[take], seed * 1000 + m)
        p1 = predict(x)
        phi[m] = logit_confidence(np.where(y == 1, p1, 1 - p1))
    return phi, inside


def lira_scores(phi_target: Arr, phi_shadow: Arr, in_shadow: npt.NDArray[np.bool_]) -> Arr:
    """LiRA (online, global variance) scores of the target's confidences ``phi_target``
    (one per row), given the shadow models' confidences and memberships."""
    out_mask = ~in_shadow
    n_in = in_shadow.sum(axis=0)
    n_out = out_mask.sum(axis=0)
    mu_in = np.where(n_in > 0, (phi_shadow * in_shadow).sum(axis=0) / np.maximum(n_in, 1), 0.0)
    mu_out = np.where(n_out > 0, (phi_shadow * out_mask).sum(axis=0) / np.maximum(n_out, 1), 0.0)
    res_in = (phi_shadow - mu_in)[in_shadow]
    res_out = (phi_shadow - mu_out)[out_mask]
    sd_in = float(np.std(res_in)) if res_in.size > 1 else 1.0
    sd_out = float(np.std(res_out)) if res_out.size > 1 else 1.0
    sd_in, sd_out = max(sd_in, 1e-6), max(sd_out, 1e-6)
    ll_in = -0.5 * ((phi_target - mu_in) / sd_in) ** 2 - np.log(sd_in)
    ll_out = -0.5 * ((phi_target - mu_out) / sd_out) ** 2 - np.log(sd_out)
    offline = (phi_target - mu_out) / sd_out
    return np.asarray(np.where(n_in > 0, ll_in - ll_out, offline), dtype=np.float64)


def _attack_features(phi: Arr, y: Arr) -> Arr:
    return np.column_stack([phi, y, phi * y])


def shadow_scores(
    phi_target: Arr, phi_shadow: Arr, in_shadow: npt.NDArray[np.bool_], y: Arr
) -> Arr:
    """Shokri et al.'s attack: a classifier trained on the shadow models' (confidence, label)
    -> member, applied to the target's confidences."""
    feats = np.vstack([_attack_features(row, y) for row in phi_shadow])
    labels = in_shadow.reshape(-1).astype(int)
    clf = LogisticRegression(max_iter=1000).fit(feats, labels)
    return np.asarray(clf.decision_function(_attack_features(phi_target, y)), dtype=np.float64)


def membership_inference(target: str, *, quick: bool = True, seed: int = 0) -> list[AttackResult]:
    """Run LiRA and the shadow-model attack against ``target`` (one of :data:`TARGETS`)."""
    notes: dict[str, Any] = {}
    train = trainer(target, notes)
    size = QUICK if quick else FULL
    x, y = candidate_pool(size.pool, size.features, seed)
    phi, inside = confidences(train, x, y, size.models, seed)
    lira, shadow, truth = [], [], []
    for t in range(size.models):
        others = np.arange(size.models) != t
        lira.append(lira_scores(phi[t], phi[others], inside[others]))
        shadow.append(shadow_scores(phi[t], phi[others], inside[others], y))
        truth.append(inside[t])
    members = np.concatenate(truth).astype(int)
    name, protected, extra = _describe(target, size.features)
    if "dp" in notes:
        dp = notes["dp"]
        extra += (
            f"; client-level DP as reported by the server: epsilon {float(dp['epsilon']):.2f} "
            f"at delta {float(dp['delta']):g} per client"
        )
    setup = (
        f"{size.models} models on random halves of {size.pool} rows x {size.features} features, "
        f"leave-one-out (each model the target once, the others its shadows){extra}"
    )
    return [
        roc_result(
            "membership-inference/lira", name, protected=protected, members=members,
            scores=np.concatenate(lira), detail=f"LiRA online, global variance; {setup}",
        ),
        roc_result(
            "membership-inference/shadow", name, protected=protected, members=members,
            scores=np.concatenate(shadow), detail=f"Shokri shadow-model attack; {setup}",
        ),
    ]  # fmt: skip


def _describe(target: str, d: int) -> tuple[str, bool, str]:
    if target == "plain":
        return "plain logistic regression (C=1e3, no protection)", False, ""
    if target == "dp-sgd":
        cost = dp_sgd_epsilon(d)
        return (
            "DP-SGD logistic regression (privfin.dp.sgd)",
            True,
            f"; DP-SGD noise multiplier {DP_SGD['noise_multiplier']}, clip {DP_SGD['clip']}, "
            f"q {DP_SGD['sampling_rate']}, {DP_SGD['steps']} steps: "
            f"epsilon {cost.epsilon:.2f} at delta {cost.delta:g} (accountant)",
        )
    if target == "hfl":
        return (
            "FedAvg logistic regression over secure aggregation (privfin.fl.horizontal)",
            True,
            "; 3 clients; FL protects updates, not the released model",
        )
    return (
        "FedAvg with client-level DP (privfin.fl.horizontal, dp_noise_multiplier=1.0)",
        True,
        "; 3 clients; client-level DP bounds row-level membership too",
    )
