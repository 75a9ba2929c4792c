"""Models trained by horizontal FL, in numpy, as flat parameter vectors (what is aggregated).

A model is stateless: ``init(rng)`` gives starting parameters, ``loss_grad(w, X, y)`` the mean
log-loss (plus ``l2/2·|w|²`` on the weights, not biases) and its gradient, ``predict_proba(w,
X)`` the probability of class 1. :func:`local_train` runs the local optimiser with the
optional FedProx proximal term ``mu/2·|w − w_global|²``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from privfin.errors import ConfigError

__all__ = ["MLP", "LocalOptimiser", "LogisticRegressionModel", "Model", "local_train", "make_model"]

FloatArray = np.ndarray


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def _logloss(p: FloatArray, y: FloatArray) -> float:
    eps = 1e-12
    return float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))


class Model(Protocol):
    @property
    def n_features(self) -> int: ...

    @property
    def n_params(self) -> int: ...

    def init(self, rng: np.random.Generator) -> FloatArray: ...

    def loss_grad(
        self, w: FloatArray, x: FloatArray, y: FloatArray
    ) -> tuple[float, FloatArray]: ...

    def predict_proba(self, w: FloatArray, x: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class LogisticRegressionModel:
    """Binary logistic regression: parameters ``[coef (n_features), intercept]``."""

    n_features: int
    l2: float = 0.0

    @property
    def n_params(self) -> int:
        return self.n_features + 1

    def init(self, rng: np.random.Generator) -> FloatArray:
        return np.zeros(self.n_params)

    def predict_proba(self, w: FloatArray, x: FloatArray) -> FloatArray:
        return _sigmoid(x @ w[:-1] + w[-1])

    def loss_grad(self, w: FloatArray, x: FloatArray, y: FloatArray) -> tuple[float, FloatArray]:
        p = self.predict_proba(w, x)
        r = (p - y) / len(y)
        g = np.empty_like(w)
        g[:-1] = x.T @ r + self.l2 * w[:-1]
        g[-1] = r.sum()
        return _logloss(p, y) + 0.5 * self.l2 * float(w[:-1] @ w[:-1]), g


@dataclass(frozen=True)
class MLP:
    """One hidden layer (``hidden`` tanh units) and a sigmoid output; Glorot-uniform weights,
    zero biases. Parameters flattened as ``[W1, b1, w2, b2]``."""

    n_features: int
    hidden: int = 16
    l2: float = 0.0

    @property
    def n_params(self) -> int:
        return self.n_features * self.hidden + 2 * self.hidden + 1

    def _unpack(self, w: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, float]:
        d, h = self.n_features, self.hidden
        w1 = w[: d * h].reshape(d, h)
        b1 = w[d * h : d * h + h]
        w2 = w[d * h + h : d * h + 2 * h]
        return w1, b1, w2, float(w[-1])

    def init(self, rng: np.random.Generator) -> FloatArray:
        d, h = self.n_features, self.hidden
        a1 = np.sqrt(6.0 / (d + h))
        a2 = np.sqrt(6.0 / (h + 1))
        return np.concatenate(
            [rng.uniform(-a1, a1, d * h), np.zeros(h), rng.uniform(-a2, a2, h), [0.0]]
        )

    def predict_proba(self, w: FloatArray, x: FloatArray) -> FloatArray:
        w1, b1, w2, b2 = self._unpack(w)
        return _sigmoid(np.tanh(x @ w1 + b1) @ w2 + b2)

    def loss_grad(self, w: FloatArray, x: FloatArray, y: FloatArray) -> tuple[float, FloatArray]:
        w1, b1, w2, b2 = self._unpack(w)
        a = np.tanh(x @ w1 + b1)
        p = _sigmoid(a @ w2 + b2)
        r = (p - y) / len(y)
        g_w2 = a.T @ r + self.l2 * w2
        g_b2 = r.sum()
        da = np.outer(r, w2) * (1.0 - a * a)
        g_w1 = x.T @ da + self.l2 * w1
        g_b1 = da.sum(axis=0)
        reg = 0.5 * self.l2 * float(np.sum(w1 * w1) + w2 @ w2)
        return _logloss(p, y) + reg, np.concatenate([g_w1.ravel(), g_b1, g_w2, [g_b2]])


def make_model(kind: str, n_features: int, *, hidden: int = 16, l2: float = 0.0) -> Model:
    """``"logistic"``, ``"mlp"`` (numpy) or ``"torch_mlp"`` (the same architecture as a
    PyTorch module: needs the extra ``privfin[torch]``, else ConfigError)."""
    if kind == "logistic":
        return LogisticRegressionModel(n_features, l2=l2)
    if kind == "mlp":
        return MLP(n_features, hidden=hidden, l2=l2)
    if kind == "torch_mlp":
        from privfin.fl.horizontal.fedavg.torch_model import torch_mlp

        return torch_mlp(n_features, hidden=hidden, l2=l2)
    raise ConfigError(f"unknown model {kind!r}: use 'logistic', 'mlp' or 'torch_mlp'")


@dataclass(frozen=True)
class LocalOptimiser:
    """Local training of one round: ``epochs`` passes of minibatch ``sgd`` or ``adam`` (fresh
    moments each round) with learning rate ``lr``; ``mu > 0`` adds FedProx's proximal term."""

    kind: str = "sgd"
    lr: float = 0.1
    epochs: int = 1
    batch_size: int = 32
    mu: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("sgd", "adam"):
            raise ConfigError("optimiser must be 'sgd' or 'adam'")
        if not (self.lr > 0 and self.epochs >= 1 and self.batch_size >= 1 and self.mu >= 0):
            raise ConfigError("need lr > 0, epochs >= 1, batch_size >= 1, mu >= 0")


def local_train(
    model: Model,
    w_global: FloatArray,
    x: FloatArray,
    y: FloatArray,
    opt: LocalOptimiser,
    rng: np.random.Generator,
) -> tuple[FloatArray, float]:
    """Train from ``w_global`` on the local data; returns the new parameters and the mean
    training loss of the last epoch."""
    w = w_global.copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    step = 0
    loss = 0.0
    n = len(y)
    for _ in range(opt.epochs):
        order = rng.permutation(n)
        losses = []
        for start in range(0, n, opt.batch_size):
            idx = order[start : start + opt.batch_size]
            batch_loss, g = model.loss_grad(w, x[idx], y[idx])
            losses.append(batch_loss * len(idx))
            if opt.mu > 0:
                g = g + opt.mu * (w - w_global)
            if opt.kind == "adam":
                step += 1
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * g * g
                mh = m / (1 - 0.9**step)
                vh = v / (1 - 0.999**step)
                w = w - opt.lr * mh / (np.sqrt(vh) + 1e-8)
            else:
                w = w - opt.lr * g
        loss = float(np.sum(losses) / n)
    return w, loss
