"""A scikit-learn estimator for horizontal FL, run in simulation (one process).

``FedAvgClassifier().fit(X, y, groups=bank_of_row)`` splits the rows by ``groups`` (one client
per distinct value), runs the ``hfl`` component for every client and the server in one process
(:func:`privfin.runtime.simulate`) and keeps the final global model. Hyper-parameters are those
of :class:`~privfin.fl.horizontal.fedavg.common.HFLParams`; ``get_params``/``set_params`` and
``sklearn.base.clone`` work. ``save(path)`` writes JSON (never a pickle); ``load`` reads it.

Security: in simulation the estimator holds every client's data; in a deployment each bank's
node runs the same component with its own rows only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

from privfin.config import Settings
from privfin.errors import InputError
from privfin.fl.horizontal._estimator import clients_from_groups
from privfin.fl.horizontal.fedavg.common import HFLParams
from privfin.fl.horizontal.fedavg.component import hfl_component
from privfin.runtime import simulate

__all__ = ["FedAvgClassifier"]

MODEL_FORMAT = "privfin.hfl.fedavg"
FORMAT_VERSION = 1
_HYPER = (
    "model",
    "hidden",
    "l2",
    "rounds",
    "clients_per_round",
    "optimiser",
    "lr",
    "local_epochs",
    "batch_size",
    "mu",
    "server_optimiser",
    "server_lr",
    "secure_aggregation",
    "aggregation",
    "threshold",
    "round_deadline",
    "dp_noise_multiplier",
    "dp_clip",
    "dp_delta",
    "init_seed",
)


class FedAvgClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary classifier trained by FedAvg / FedProx / FedAdam over secure aggregation.

    Learned attributes: ``weights_`` (the flat parameter vector), ``classes_``,
    ``n_features_in_``, ``history_`` (per-round metrics for plots), ``dp_`` (the (ε, δ)
    report with client-level DP, else ``None``), ``clients_`` (the client names).

    ``init_seed`` is the job's public seed of the initial weights (a deployment's parties
    agree on it in the spec); ``seed`` seeds all of the simulation's randomness (masks,
    sampling, minibatch order, and the initial weights when ``init_seed`` is not set).
    """

    def __init__(
        self,
        model: str = "logistic",
        hidden: int = 16,
        l2: float = 0.0,
        rounds: int = 10,
        clients_per_round: int | None = None,
        optimiser: str = "sgd",
        lr: float = 0.1,
        local_epochs: int = 1,
        batch_size: int = 32,
        mu: float = 0.0,
        server_optimiser: str = "fedavg",
        server_lr: float = 0.1,
        secure_aggregation: bool = True,
        aggregation: str = "secagg",
        threshold: int | None = None,
        round_deadline: float = 60.0,
        dp_noise_multiplier: float | None = None,
        dp_clip: float = 1.0,
        dp_delta: float = 1e-5,
        init_seed: int | None = None,
        settings: Settings | None = None,
        seed: int | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.model = model
        self.hidden = hidden
        self.l2 = l2
        self.rounds = rounds
        self.clients_per_round = clients_per_round
        self.optimiser = optimiser
        self.lr = lr
        self.local_epochs = local_epochs
        self.batch_size = batch_size
        self.mu = mu
        self.server_optimiser = server_optimiser
        self.server_lr = server_lr
        self.secure_aggregation = secure_aggregation
        self.aggregation = aggregation
        self.threshold = threshold
        self.round_deadline = round_deadline
        self.dp_noise_multiplier = dp_noise_multiplier
        self.dp_clip = dp_clip
        self.dp_delta = dp_delta
        self.init_seed = init_seed
        self.settings = settings
        self.seed = seed
        self.timeout = timeout

    def _params(self, n_features: int) -> dict[str, Any]:
        return {"n_features": n_features, **{k: getattr(self, k) for k in _HYPER}}

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike, *, groups: npt.ArrayLike) -> Self:
        """Train with one client per distinct value of ``groups`` (names: ``client_<value>``
        unless the values are valid party names)."""
        inputs, classes, x = clients_from_groups(X, y, groups)
        roles = {"server": ["server"], **{c: ["client"] for c in inputs}}
        HFLParams.from_mapping(self._params(x.shape[1]))  # validate before starting threads
        out = simulate(
            hfl_component,
            roles,
            params=self._params(x.shape[1]),
            inputs=inputs,
            seed=self.seed,
            settings=self.settings,
            timeout=self.timeout,
        )
        srv = out["server"]
        self.weights_ = np.asarray(srv["weights"], dtype=np.float64)
        self.history_ = srv["history"]
        self.dp_ = srv.get("dp")
        self.classes_ = classes
        self.n_features_in_ = x.shape[1]
        self.clients_ = sorted(inputs)
        return self

    def predict_proba(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise InputError(f"X must have {self.n_features_in_} columns")
        p = HFLParams.from_mapping(self._params(self.n_features_in_)).make_model()
        p1 = p.predict_proba(self.weights_, x)
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[Any]:
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)])

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (hyper-parameters, classes, weights)."""
        doc = {
            "format": MODEL_FORMAT,
            "version": FORMAT_VERSION,
            "params": {k: getattr(self, k) for k in _HYPER},
            "n_features": int(self.n_features_in_),
            "classes": self.classes_.tolist(),
            "weights": self.weights_.tolist(),
        }
        Path(path).write_text(json.dumps(doc))

    @classmethod
    def load(cls, path: str | Path) -> FedAvgClassifier:
        try:
            doc = json.loads(Path(path).read_text())
            if doc.get("format") != MODEL_FORMAT or doc.get("version") != FORMAT_VERSION:
                raise ValueError("not a privfin FedAvg model of a known version")
            est = cls(**{k: doc["params"][k] for k in _HYPER if k in doc["params"]})
            est.n_features_in_ = int(doc["n_features"])
            est.classes_ = np.asarray(doc["classes"])
            est.weights_ = np.asarray(doc["weights"], dtype=np.float64)
            model = HFLParams.from_mapping(est._params(est.n_features_in_)).make_model()
            if est.weights_.shape != (model.n_params,):
                raise ValueError("weights of the wrong size")
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot load {path}: {exc}") from None
        return est
