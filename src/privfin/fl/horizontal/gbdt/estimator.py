"""A scikit-learn estimator for the federated histogram GBDT, run in simulation.

``FedGBDTClassifier().fit(X, y, groups=bank_of_row)`` splits the rows by ``groups`` (one client
per distinct value, as :class:`~privfin.fl.horizontal.fedavg.FedAvgClassifier`), runs the
``hfl_gbdt`` component for every client and the server in one process
(:func:`privfin.runtime.simulate`) and keeps the final model. Hyper-parameters are those of
:class:`~privfin.fl.horizontal.gbdt.common.GBDTParams` (same names and defaults);
``get_params``/``set_params`` and ``sklearn.base.clone`` work. ``save(path)`` writes JSON
(never a pickle); ``load`` reads it. NaN in ``X`` is a missing value (its own branch).

Security: in simulation the estimator holds every client's data; in a deployment each bank's
node runs the same component with its own rows only.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin

from privfin.config import Settings
from privfin.errors import InputError
from privfin.federation.memory import MemoryHub
from privfin.fl.horizontal._estimator import clients_from_groups
from privfin.fl.horizontal.gbdt.common import GBDTParams
from privfin.fl.horizontal.gbdt.component import hfl_gbdt_component
from privfin.fl.horizontal.gbdt.model import FedGBDTModel
from privfin.runtime import simulate

__all__ = ["FedGBDTClassifier"]

MODEL_FORMAT = "privfin.hfl.gbdt"
FORMAT_VERSION = 1
#: The protocol's hyper-parameters (all but ``n_features``, taken from ``X``).
_HYPER = tuple(f.name for f in fields(GBDTParams) if f.name != "n_features")
_D: dict[str, Any] = {f.name: f.default for f in fields(GBDTParams)}


class FedGBDTClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary classifier: gradient-boosted trees grown from securely aggregated histograms.

    Parameters
    ----------
    n_trees, max_depth, n_bins, learning_rate, reg_lambda, min_child_weight,
    min_samples_leaf, min_split_gain, sketch_bins, sketch_range, aggregation, threshold,
    round_deadline, client_timeout, frac_bits, bound, max_restarts:
        As :class:`GBDTParams`; validated in :meth:`fit`.
    settings:
        Settings of every simulated party (default: from the environment).
    seed:
        Seeds every party's randomness (``None``: the operating system's).
    timeout:
        Seconds a simulated party waits for a message.

    Attributes
    ----------
    model_:
        The trained :class:`FedGBDTModel` (bin edges, initial score, trees).
    history_:
        One dict per tree (clients, leaves, seconds, validation AUC if given).
    clients_, classes_, n_features_in_:
        Client names, the two labels (``classes_[1]`` is the event), feature count.
    """

    def __init__(
        self,
        *,
        n_trees: int = _D["n_trees"],
        max_depth: int = _D["max_depth"],
        n_bins: int = _D["n_bins"],
        learning_rate: float = _D["learning_rate"],
        reg_lambda: float = _D["reg_lambda"],
        min_child_weight: float = _D["min_child_weight"],
        min_samples_leaf: int = _D["min_samples_leaf"],
        min_split_gain: float = _D["min_split_gain"],
        sketch_bins: int = _D["sketch_bins"],
        sketch_range: float = _D["sketch_range"],
        aggregation: str = _D["aggregation"],
        threshold: int | None = _D["threshold"],
        round_deadline: float = _D["round_deadline"],
        client_timeout: float = _D["client_timeout"],
        frac_bits: int = _D["frac_bits"],
        bound: float = _D["bound"],
        max_restarts: int = _D["max_restarts"],
        settings: Settings | None = None,
        seed: int | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.n_bins = n_bins
        self.learning_rate = learning_rate
        self.reg_lambda = reg_lambda
        self.min_child_weight = min_child_weight
        self.min_samples_leaf = min_samples_leaf
        self.min_split_gain = min_split_gain
        self.sketch_bins = sketch_bins
        self.sketch_range = sketch_range
        self.aggregation = aggregation
        self.threshold = threshold
        self.round_deadline = round_deadline
        self.client_timeout = client_timeout
        self.frac_bits = frac_bits
        self.bound = bound
        self.max_restarts = max_restarts
        self.settings = settings
        self.seed = seed
        self.timeout = timeout

    def _params(self, n_features: int) -> dict[str, Any]:
        return {"n_features": n_features, **{k: getattr(self, k) for k in _HYPER}}

    def fit(
        self,
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        groups: npt.ArrayLike,
        eval_set: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
        hub: MemoryHub | None = None,
    ) -> Self:
        """Train with one client per distinct value of ``groups``; ``eval_set=(X_val, y_val)``
        (held by the server) adds a validation AUC per tree to ``history_``; ``hub`` to inspect
        the messages afterwards."""
        inputs, classes, x = clients_from_groups(X, y, groups, allow_missing=True)
        params = self._params(x.shape[1])
        GBDTParams.from_mapping(params)  # refuses bad values before any party starts
        server: dict[str, Any] = {}
        if eval_set is not None:
            server = {
                "X_val": np.asarray(eval_set[0], dtype=np.float64),
                "y_val": (np.asarray(eval_set[1]).ravel() == classes[1]).astype(np.float64),
            }
        out = simulate(
            hfl_gbdt_component,
            {"server": ["server"], **{c: ["client"] for c in inputs}},
            params=params,
            inputs={"server": server, **inputs},
            seed=self.seed,
            settings=self.settings,
            timeout=self.timeout,
            hub=hub,
            component_name="hfl_gbdt",
        )
        self.model_: FedGBDTModel = out["server"]["model"]
        self.history_: list[dict[str, Any]] = out["server"]["history"]
        self.classes_ = classes
        self.n_features_in_ = x.shape[1]
        self.clients_ = sorted(inputs)
        return self

    def _x(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this FedGBDTClassifier is not fitted yet")
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise InputError(f"X must have {self.n_features_in_} columns")
        return x

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Raw scores (log-odds of ``classes_[1]``)."""
        return self.model_.decision_function(self._x(X))

    def predict_proba(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(n, 2)``: probabilities of ``classes_[0]`` and ``classes_[1]``."""
        return self.model_.predict_proba(self._x(X))

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[Any]:
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (hyper-parameters, classes, the model)."""
        doc = {
            "format": MODEL_FORMAT,
            "version": FORMAT_VERSION,
            "params": {k: getattr(self, k) for k in _HYPER},
            "n_features": int(self.n_features_in_),
            "classes": self.classes_.tolist(),
            "model": self.model_.to_dict(),
        }
        Path(path).write_text(json.dumps(doc))

    @classmethod
    def load(cls, path: str | Path) -> FedGBDTClassifier:
        try:
            doc = json.loads(Path(path).read_text())
            if doc.get("format") != MODEL_FORMAT or doc.get("version") != FORMAT_VERSION:
                raise ValueError("not a privfin federated GBDT model of a known version")
            est = cls(**{k: doc["params"][k] for k in _HYPER})
            est.n_features_in_ = int(doc["n_features"])
            est.classes_ = np.asarray(doc["classes"])
            est.model_ = FedGBDTModel.from_dict(doc["model"])
            if len(est.model_.edges) != est.n_features_in_:
                raise ValueError("bin edges for the wrong number of features")
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot load {path}: {exc}") from None
        return est
