"""Scikit-learn estimator over the runtime: :class:`HeteroSecureBoost`.

``fit`` and ``predict_proba`` run the very same components a job runs, one thread per party
over the in-memory transport (:func:`privfin.runtime.simulate`), so a notebook user gets the
federated protocol, leakage and all, without deploying nodes. Input forms, ``save``/``load``
and the scikit-learn contract: :mod:`privfin.fl.vertical._estimator`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical._estimator import VerticalEstimator
from privfin.fl.vertical.secureboost.component import (
    secureboost_component,
    secureboost_predict_component,
)
from privfin.fl.vertical.secureboost.model import GuestModel, HostModel
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.runtime import simulate

__all__ = ["BOOST_PARAMS", "HeteroSecureBoost"]

#: The protocol's hyper-parameters, all of them constructor parameters of the estimator.
BOOST_PARAMS = tuple(f.name for f in fields(BoostParams))
_D: dict[str, Any] = {f.name: f.default for f in fields(BoostParams)}


class HeteroSecureBoost(VerticalEstimator):
    """Hetero SecureBoost: the guest holds ``y`` and some features, hosts hold the others.

    Parameters
    ----------
    guest:
        The party holding the labels (and its own features).
    n_trees, max_depth, n_bins, learning_rate, objective, n_classes, reg_lambda,
    min_child_weight, min_samples_leaf, min_split_gain, goss, top_rate, other_rate,
    complete_secure, share_gains_with_hosts, key_bits, he_scheme, insecure_allow_small_keys,
    precision_bits, regression_range_bits, n_jobs:
        The protocol's parameters, as :class:`BoostParams` (same defaults); validated in
        :meth:`fit`. With ``objective="multiclass"`` ``n_classes`` defaults to the number of
        classes in ``y``; with ``"regression"`` the estimator is a regressor (``predict``
        gives values, ``score`` is R²).
    settings:
        Settings of every simulated party (default :meth:`Settings.from_env`); keys below 2048
        bits need ``insecure_allow_small_keys`` and ``Settings(mode="development")``.
    seed:
        Seeds every party's randomness (``None``: OS randomness).
    timeout:
        Seconds a simulated party waits for a message.

    Attributes
    ----------
    model_:
        The guest's model (:class:`GuestModel`).
    host_models_:
        Host name -> its lookup table (:class:`HostModel`; in a deployment each host keeps its
        own).
    train_scores_:
        The guest's predictions on the training rows (as :meth:`predict_proba`; regression:
        values). Not saved.
    metrics_:
        Party name -> that party's run counters of the training (seconds spent in key
        generation, encryption, histograms, ..., ciphertexts decrypted). Not saved.
    classes_, feature_names_in_, n_features_in_, guest_, hosts_:
        Labels (classification), each party's qualified column names, their total number,
        party names.

    Security: as SPEC.md; the estimator only wires parties that would otherwise run apart.
    """

    _fitted_attr = "model_"

    def __init__(
        self,
        *,
        guest: str = "guest",
        n_trees: int = _D["n_trees"],
        max_depth: int = _D["max_depth"],
        n_bins: int = _D["n_bins"],
        learning_rate: float = _D["learning_rate"],
        objective: str = _D["objective"],
        n_classes: int | None = _D["n_classes"],
        reg_lambda: float = _D["reg_lambda"],
        min_child_weight: float = _D["min_child_weight"],
        min_samples_leaf: int = _D["min_samples_leaf"],
        min_split_gain: float = _D["min_split_gain"],
        goss: bool = _D["goss"],
        top_rate: float = _D["top_rate"],
        other_rate: float = _D["other_rate"],
        complete_secure: bool = _D["complete_secure"],
        share_gains_with_hosts: bool = _D["share_gains_with_hosts"],
        key_bits: int = _D["key_bits"],
        he_scheme: str = _D["he_scheme"],
        insecure_allow_small_keys: bool = _D["insecure_allow_small_keys"],
        precision_bits: int = _D["precision_bits"],
        regression_range_bits: int = _D["regression_range_bits"],
        n_jobs: int = _D["n_jobs"],
        settings: Settings | None = None,
        seed: int | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.guest = guest
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.n_bins = n_bins
        self.learning_rate = learning_rate
        self.objective = objective
        self.n_classes = n_classes
        self.reg_lambda = reg_lambda
        self.min_child_weight = min_child_weight
        self.min_samples_leaf = min_samples_leaf
        self.min_split_gain = min_split_gain
        self.goss = goss
        self.top_rate = top_rate
        self.other_rate = other_rate
        self.complete_secure = complete_secure
        self.share_gains_with_hosts = share_gains_with_hosts
        self.key_bits = key_bits
        self.he_scheme = he_scheme
        self.insecure_allow_small_keys = insecure_allow_small_keys
        self.precision_bits = precision_bits
        self.regression_range_bits = regression_range_bits
        self.n_jobs = n_jobs
        self.settings = settings
        self.seed = seed
        self.timeout = timeout

    def _protocol_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in BOOST_PARAMS}

    def _labels(self, y: Any, n_rows: int, params: dict[str, Any]) -> npt.NDArray[Any]:
        """The labels the protocol trains on; sets ``classes_`` (classification)."""
        if self.objective == "binary":
            return self._binary_labels(y, n_rows)
        yv = self._label_vector(y, n_rows)
        if self.objective != "multiclass":
            return yv.astype(np.float64)
        classes = np.unique(yv)
        if self.n_classes is None:
            params["n_classes"] = int(classes.size)
        elif classes.size != self.n_classes:
            raise ConfigError(f"y holds {classes.size} classes but n_classes={self.n_classes}")
        self.classes_ = classes
        return np.searchsorted(classes, yv).astype(np.int64)

    def fit(self, X: Any, y: Any, *, hub: MemoryHub | None = None) -> Self:
        """Train on PSI-aligned features of every party (one DataFrame with ``party.column``
        names or ``{party: features}``; NaN = missing) and the guest's labels ``y``.

        ``hub``: a :class:`MemoryHub` to inspect the messages afterwards (``hub.wire``).
        """
        parts = self._fit_frames(X)
        params = self._protocol_params()
        labels = self._labels(y, len(parts[self.guest_]), params)
        BoostParams.from_mapping(params)  # refuses bad values before any party starts
        roles = {p: ("guest",) if p == self.guest_ else ("host",) for p in parts}
        inputs: dict[str, dict[str, Any]] = {p: {"X": x} for p, x in parts.items()}
        inputs[self.guest_]["y"] = labels
        out = simulate(
            secureboost_component, roles, params=params, inputs=inputs, seed=self.seed,
            settings=self._settings(), hub=hub, timeout=self.timeout,
            component_name="secureboost",
        )  # fmt: skip
        self.model_: GuestModel = out[self.guest_]["model"]
        self.host_models_: dict[str, HostModel] = {h: out[h]["model"] for h in self.hosts_}
        self.train_scores_: npt.NDArray[np.float64] = out[self.guest_]["scores"]
        self.metrics_: dict[str, dict[str, float]] = {p: out[p]["metrics"] for p in parts}
        return self

    def _scores(self, X: Any, hub: MemoryHub | None) -> npt.NDArray[np.float64]:
        parts = self._frames(X)
        roles = {p: ("guest",) if p == self.guest_ else ("host",) for p in parts}
        inputs: dict[str, dict[str, Any]] = {self.guest_: {"X": parts[self.guest_]}}
        inputs[self.guest_]["model"] = self.model_
        for h in self.hosts_:
            inputs[h] = {"X": parts[h], "model": self.host_models_[h]}
        out = simulate(
            secureboost_predict_component, roles, inputs=inputs, seed=self.seed,
            settings=self._settings(), hub=hub, timeout=self.timeout,
            component_name="secureboost_predict",
        )  # fmt: skip
        scores: npt.NDArray[np.float64] = out[self.guest_]["scores"]
        return scores

    def predict_proba(self, X: Any, *, hub: MemoryHub | None = None) -> npt.NDArray[np.float64]:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``, by
        the joint prediction protocol (the guest learns them, hosts nothing)."""
        if self.objective == "regression":
            raise ConfigError("a regression model has no class probabilities: use predict()")
        return self._scores(X, hub)

    def predict(self, X: Any, *, hub: MemoryHub | None = None) -> npt.NDArray[Any]:
        """Class labels (classification) or values (regression)."""
        if self.objective == "regression":
            return self._scores(X, hub)
        return super().predict(X, hub=hub)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classification) or R² (regression), as scikit-learn."""
        if self.objective != "regression":
            return float(super().score(X, y, sample_weight=sample_weight))
        from sklearn.metrics import r2_score

        return float(r2_score(y, self.predict(X), sample_weight=sample_weight))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        if self.objective == "regression":
            from sklearn.utils import RegressorTags

            tags.estimator_type = "regressor"
            tags.classifier_tags = None
            tags.regressor_tags = RegressorTags()
        return tags

    def feature_importance(self, kind: str = "split") -> dict[str, float]:
        """The guest's view: its features by qualified name (``bank.x0``) and each host as a
        whole (``host:telco``); a host's own features: ``host_models_[host]``."""
        self._check_fitted()
        return self.model_.feature_importance(kind)

    # ------------------------------------------------------------------ save / load

    def _party_slice(self, party: str) -> dict[str, Any]:
        model = self.model_ if party == self.guest_ else self.host_models_[party]
        return {"party": party, "model": json.loads(model.to_json())}

    def _restore(self, manifest: Any, slices: Any) -> None:
        self.model_ = GuestModel.from_json(json.dumps(slices[self.guest_]["model"]))
        self.host_models_ = {
            h: HostModel.from_json(json.dumps(slices[h]["model"])) for h in self.hosts_
        }
