"""DP-SGD (Abadi et al. 2016) for logistic regression and a one-hidden-layer MLP, in numpy, on
one party's data.

Each step takes a **Poisson sample** of the rows (each row independently with probability
``sampling_rate``), computes each sampled row's gradient, **clips** it to L2 norm ``clip``,
sums, adds **Gaussian noise** of standard deviation ``noise_multiplier * clip`` (the safe
:class:`~privfin.dp.mechanisms.GaussianVector`: rounded to a power-of-two grid, discrete
Gaussian noise) and divides by the *expected* batch size ``sampling_rate * n`` (dividing by
the actual size would leak it). The **accountant** (RDP or PLD, ``dp-accounting``) turns
(noise multiplier, sampling rate, steps) into the (epsilon, delta) the model costs; it is
known before training, so a :class:`~privfin.dp.release.Charge` reserves it in the ledger
before the data is read.

Privacy unit: **one row** (record-level DP; one customer when each customer has one row).
Features must be scaled with public bounds, not statistics of the data (those would leak).
The model is a release: its parameters may be published. The initial weights and the
training randomness come from the OS CSPRNG; ``seed`` makes them reproducible for tests only.

Estimator convention (scikit-learn): ``__init__`` stores hyper-parameters; ``fit`` validates
them and returns ``self``; learned attributes end in ``_``: ``coef_``/``intercept_``
(logistic), ``weights_`` (both), ``classes_``, ``epsilon_``, ``delta_``, ``steps_``.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

from privfin.crypto.random import RandomSource, SeededRandom
from privfin.dp import _sample
from privfin.dp.accounting import Accountant
from privfin.dp.mechanisms import GaussianVector, PrivacyCost, check_epsilon
from privfin.errors import ConfigError

__all__ = ["DPSGDClassifier", "per_example_gradients"]

Arr = npt.NDArray[np.float64]


def _sigmoid(z: Arr) -> Arr:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def _unpack(w: Arr, d: int, hidden: int) -> tuple[Arr, Arr, Arr, float]:
    """MLP weights: W1 (d x h), b1 (h), w2 (h), b2."""
    i = d * hidden
    w1 = w[:i].reshape(d, hidden)
    b1 = w[i : i + hidden]
    w2 = w[i + hidden : i + 2 * hidden]
    return w1, b1, w2, float(w[-1])


def _n_params(model: str, d: int, hidden: int) -> int:
    return d + 1 if model == "logistic" else d * hidden + 2 * hidden + 1


def _forward(model: str, w: Arr, x: Arr, hidden: int) -> Arr:
    """Logits of rows ``x``."""
    d = x.shape[1]
    if model == "logistic":
        return np.asarray(x @ w[:d] + w[d], dtype=np.float64)
    w1, b1, w2, b2 = _unpack(w, d, hidden)
    h = np.tanh(x @ w1 + b1)
    return np.asarray(h @ w2 + b2, dtype=np.float64)


def per_example_gradients(model: str, w: Arr, x: Arr, y: Arr, hidden: int = 0) -> Arr:
    """Gradient of each row's logistic loss (one row of the result per row of ``x``)."""
    d = x.shape[1]
    if model == "logistic":
        r = _sigmoid(x @ w[:d] + w[d]) - y  # dL/dlogit
        return np.hstack([x * r[:, None], r[:, None]])
    w1, b1, w2, b2 = _unpack(w, d, hidden)
    h = np.tanh(x @ w1 + b1)
    r = _sigmoid(h @ w2 + b2) - y
    dh = (r[:, None] * w2[None, :]) * (1 - h * h)  # n x h
    g_w1 = x[:, :, None] * dh[:, None, :]  # n x d x h
    return np.hstack([g_w1.reshape(len(x), -1), dh, h * r[:, None], r[:, None]])


class DPSGDClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary classifier trained by DP-SGD (see the module docstring).

    Parameters
    ----------
    model:
        ``"logistic"`` (logistic regression) or ``"mlp"`` (one tanh hidden layer).
    hidden:
        Hidden units of the MLP.
    noise_multiplier:
        Noise standard deviation over the clipping bound.
    clip:
        L2 bound of each row's gradient.
    sampling_rate:
        Poisson sampling probability of each row per step.
    steps:
        Number of noisy steps.
    learning_rate:
        Step size (plain SGD; the noise makes fancier optimisers little better).
    l2:
        L2 penalty on the weights (applied without noise: it does not touch the data).
    delta:
        The delta of the reported (epsilon, delta).
    accountant:
        ``"rdp"`` or ``"pld"``.
    seed:
        ``None`` (production): the OS CSPRNG; an integer: a seeded, **insecure** source for
        reproducible tests.
    """

    def __init__(
        self,
        model: str = "logistic",
        *,
        hidden: int = 16,
        noise_multiplier: float = 1.1,
        clip: float = 1.0,
        sampling_rate: float = 0.01,
        steps: int = 1000,
        learning_rate: float = 0.5,
        l2: float = 0.0,
        delta: float = 1e-5,
        accountant: str = "rdp",
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.hidden = hidden
        self.noise_multiplier = noise_multiplier
        self.clip = clip
        self.sampling_rate = sampling_rate
        self.steps = steps
        self.learning_rate = learning_rate
        self.l2 = l2
        self.delta = delta
        self.accountant = accountant
        self.seed = seed

    # -- validation and accounting
    def _check(self) -> None:
        if self.model not in ("logistic", "mlp"):
            raise ConfigError(f"model must be 'logistic' or 'mlp', got {self.model!r}")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ConfigError(f"hidden must be an integer >= 1, got {self.hidden!r}")
        check_epsilon(self.noise_multiplier, "noise_multiplier")
        check_epsilon(self.clip, "clip")
        check_epsilon(self.learning_rate, "learning_rate")
        if not (isinstance(self.sampling_rate, (int, float)) and 0 < self.sampling_rate <= 1):
            raise ConfigError(f"sampling_rate must be in (0, 1], got {self.sampling_rate!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        if not (isinstance(self.l2, (int, float)) and self.l2 >= 0 and math.isfinite(self.l2)):
            raise ConfigError(f"l2 must be a finite number >= 0, got {self.l2!r}")
        if not (0 < self.delta < 1):
            raise ConfigError(f"delta must be in (0, 1), got {self.delta!r}")
        if self.accountant not in ("rdp", "pld"):
            raise ConfigError(f"accountant must be 'rdp' or 'pld', got {self.accountant!r}")

    def mechanism(self) -> GaussianVector:
        return GaussianVector(self.noise_multiplier, self.clip)

    def privacy_cost(self, n_features: int) -> PrivacyCost:
        """The (epsilon, delta) a fit on ``n_features`` features costs (data-independent)."""
        self._check()
        dim = _n_params(self.model, n_features, self.hidden)
        acc = Accountant(self.accountant)  # type: ignore[arg-type]
        self.mechanism().account(acc, dim, sampling_rate=self.sampling_rate, count=self.steps)
        return PrivacyCost(acc.epsilon(self.delta), self.delta)

    # -- training
    def fit(self, X: Any, y: Any, *, charge: Any = None) -> Self:
        """Train; with ``charge`` (a :class:`~privfin.dp.release.Charge`) the cost is reserved
        in its ledger before the data is read and committed after."""
        self._check()
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 1:
            raise ConfigError("X must be a 2-D array with at least one row")
        cost = self.privacy_cost(x.shape[1])
        if charge is None:
            return self._fit(x, y, cost)
        with charge.ledger.spend(
            charge.dataset, cost, party=charge.party, job=charge.job,
            mechanism=f"dpsgd:{self.model}", who=charge.who, step=charge.step,
        ):  # fmt: skip
            return self._fit(x, y, cost)

    def _fit(self, x: Arr, y_raw: Any, cost: PrivacyCost) -> Self:
        if not np.all(np.isfinite(x)):
            raise ConfigError("X has NaN or infinite values")
        labels = np.asarray(y_raw)
        classes = np.unique(labels)
        if classes.size != 2 or labels.shape != (x.shape[0],):
            raise ConfigError("y must hold exactly two classes, one label per row of X")
        y = (labels == classes[1]).astype(np.float64)
        n, d = x.shape
        rng: RandomSource = SeededRandom(self.seed) if self.seed is not None else None  # type: ignore[assignment]
        src = _sample.source(rng)
        init = np.random.default_rng(int.from_bytes(src.bytes(16), "big"))
        dim = _n_params(self.model, d, self.hidden)
        if self.model == "logistic":
            w = np.zeros(dim)
        else:
            w = np.zeros(dim)
            w[: d * self.hidden] = init.normal(0, 1 / math.sqrt(d), d * self.hidden)
            lo = d * self.hidden + self.hidden
            w[lo : lo + self.hidden] = init.normal(0, 1 / math.sqrt(self.hidden), self.hidden)
        mech = self.mechanism()
        expected = self.sampling_rate * n
        for _ in range(self.steps):
            take = _sample._uniforms(src, n) <= self.sampling_rate
            if take.any():
                g = per_example_gradients(self.model, w, x[take], y[take], self.hidden)
                total = mech.round(g).sum(axis=0)
            else:
                total = np.zeros(dim, dtype=np.int64)
            noisy = mech.noise_sum(total, src) / expected
            w = w - self.learning_rate * (noisy + self.l2 * w)
        self.weights_ = w
        self.classes_ = classes
        self.n_features_in_ = d
        self.epsilon_ = cost.epsilon
        self.delta_ = cost.delta
        self.steps_ = self.steps
        if self.model == "logistic":
            self.coef_ = w[:d].reshape(1, -1)
            self.intercept_ = w[d : d + 1]
        return self

    # -- predicting
    def decision_function(self, X: Any) -> Arr:
        if not hasattr(self, "weights_"):
            raise ConfigError("this DPSGDClassifier is not fitted yet; call fit first")
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ConfigError(f"X must have {self.n_features_in_} columns")
        return _forward(self.model, self.weights_, x, self.hidden)

    def predict_proba(self, X: Any) -> Arr:
        p = _sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> Any:
        positive = (self.decision_function(X) > 0).astype(int)
        return self.classes_[positive]
