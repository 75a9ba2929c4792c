"""A PyTorch module as a horizontal-FL model (optional: ``pip install privfin[torch]``).

:class:`TorchModel` adapts a ``torch.nn.Module`` that maps a float64 batch (rows ×
``n_features``) to one logit per row to the :class:`~privfin.fl.horizontal.fedavg.models.Model`
protocol: parameters travel as one flat float64 vector (the module's parameters in
``module.parameters()`` order, each flattened), so FedAvg, secure aggregation, client-level DP
and FedAdam handle them exactly as the numpy models' vectors. The loss is the mean log-loss
(``binary_cross_entropy_with_logits``) plus ``l2/2·|W|²`` over the parameters of two or more
dimensions (weights, not biases); the gradient comes from autograd.

``make_model("torch_mlp", d, hidden=h)`` is a named architecture every party can build from a
job spec (a spec carries no code): ``Linear(d, h) → tanh → Linear(h, 1)`` with PyTorch's
default initialisation. Other architectures: ``TorchModel(factory, n_features)`` in Python
(simulation, the estimator's building blocks, ``local_train``).

Nothing here imports PyTorch until a model is built; without it a :class:`ConfigError` says
which extra to install.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from privfin.errors import ConfigError, InputError

__all__ = ["TorchModel", "torch_mlp"]

FloatArray = np.ndarray
#: Every module construction (seeded in :meth:`TorchModel.init`, unseeded in the constructor)
#: draws from PyTorch's global generator: one at a time, so a seeded one is not interleaved.
_INIT_LOCK = threading.Lock()


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ConfigError(
            "the PyTorch models need PyTorch, which is not installed: pip install 'privfin[torch]'"
        ) from None
    return torch


class TorchModel:
    """A ``torch.nn.Module`` (built by ``factory()``, run in float64 on the CPU) behind flat
    parameter vectors. ``factory`` must build the same architecture every call; its own
    initialisation is what :meth:`init` draws, seeded from the given generator."""

    def __init__(self, factory: Callable[[], Any], n_features: int, l2: float = 0.0) -> None:
        torch = _torch()
        if n_features < 1 or l2 < 0:
            raise ConfigError("need n_features >= 1 and l2 >= 0")
        self._t = torch
        self._factory = factory
        # Building a module draws from PyTorch's global generator: under the same lock as
        # init() (another party's seeded init would otherwise see this draw in the middle of
        # its own) and on a forked generator (the caller's global state is left alone).
        with _INIT_LOCK, torch.random.fork_rng(devices=[]):
            self._module = factory().double()
        self._params = list(self._module.parameters())
        if not self._params:
            raise ConfigError("the torch module has no parameters")
        self._decay = [p.dim() > 1 for p in self._params]
        self._n_params = int(sum(p.numel() for p in self._params))
        self._lock = threading.Lock()  # the module's parameters are set per call
        self.n_features = n_features
        self.l2 = l2

    @property
    def n_params(self) -> int:
        return self._n_params

    def init(self, rng: np.random.Generator) -> FloatArray:
        """The module's own initialisation, with PyTorch's generator seeded from ``rng`` (the
        same ``rng`` state gives the same vector, as ``init_seed`` needs)."""
        t = self._t
        seed = int(rng.integers(0, 2**63 - 1))
        with _INIT_LOCK, t.random.fork_rng(devices=[]):
            t.manual_seed(seed)
            module = self._factory().double()
            vec = t.nn.utils.parameters_to_vector(module.parameters()).detach()
        return np.array(vec.numpy(), dtype=np.float64)

    def _load(self, w: FloatArray) -> None:
        if w.shape != (self._n_params,):
            raise InputError(f"expected {self._n_params} parameters, got {w.shape}")
        t = self._t
        with t.no_grad():
            t.nn.utils.vector_to_parameters(t.tensor(w, dtype=t.float64), self._params)

    def _logits(self, x: FloatArray) -> Any:
        t = self._t
        xt = t.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        return self._module(xt).reshape(-1)

    def predict_proba(self, w: FloatArray, x: FloatArray) -> FloatArray:
        t = self._t
        with self._lock, t.no_grad():
            self._load(w)
            return np.array(t.sigmoid(self._logits(x)).numpy(), dtype=np.float64)

    def loss_grad(self, w: FloatArray, x: FloatArray, y: FloatArray) -> tuple[float, FloatArray]:
        t = self._t
        with self._lock:
            self._load(w)
            target = t.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
            loss = t.nn.functional.binary_cross_entropy_with_logits(self._logits(x), target)
            if self.l2 > 0:
                reg = sum(
                    (p * p).sum() for p, d in zip(self._params, self._decay, strict=True) if d
                )
                loss = loss + 0.5 * self.l2 * reg
            grads = t.autograd.grad(loss, self._params)
            g = t.cat([gi.reshape(-1) for gi in grads]).detach().numpy()
            return float(loss.item()), np.array(g, dtype=np.float64)


def torch_mlp(n_features: int, hidden: int = 16, l2: float = 0.0) -> TorchModel:
    """``Linear(n_features, hidden) → tanh → Linear(hidden, 1)`` as a :class:`TorchModel`
    (the numpy :class:`~privfin.fl.horizontal.fedavg.models.MLP`'s architecture; parameter
    order ``W1 (hidden × n_features), b1, W2 (1 × hidden), b2``)."""
    torch = _torch()
    if hidden < 1:
        raise ConfigError("hidden must be at least 1")

    def factory() -> Any:
        nn = torch.nn
        return nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    return TorchModel(factory, n_features, l2=l2)
