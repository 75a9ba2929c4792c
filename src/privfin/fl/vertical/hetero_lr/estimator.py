"""Scikit-learn-style estimator over the runtime: ``HeteroLogisticRegression().fit(...)``.

``fit`` and ``predict_proba`` run the real protocols (``hetero_lr`` and
``vertical_lr_scoring``) between in-process parties over the memory transport (or the hub you
pass): the same component code a job runs across nodes. The estimator holds every party's
slice of the model afterwards, which only makes sense in a simulation or an evaluation; in a
deployment each node keeps its own slice (its artifact store) and scoring runs as a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical.hetero_lr.common import LRParams
from privfin.fl.vertical.hetero_lr.component import hetero_lr_component
from privfin.fl.vertical.scoring import vertical_lr_scoring
from privfin.runtime import simulate

__all__ = ["HeteroLogisticRegression"]


class HeteroLogisticRegression:
    """Vertical logistic regression between a guest (labels) and hosts (features).

    Parameters are those of :class:`~privfin.fl.vertical.hetero_lr.common.LRParams`
    (``mode``, ``max_iter``, ``batch_size``, ``learning_rate``, ``optimizer``, ``penalty``,
    ``alpha``, ``class_weight``, ``key_bits`` …); they are validated in :meth:`fit`.

    Attributes
    ----------
    coef_:
        Party name -> that party's coefficients (one per feature column).
    intercept_:
        The guest's intercept.
    n_iter_:
        Epochs run.
    guest_, hosts_:
        Party names.

    Security: see ``hetero_lr/SPEC.md``; default 2048-bit Paillier keys.
    """

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def fit(
        self,
        features: Mapping[str, Any],
        y: Any,
        *,
        guest: str,
        arbiter: str = "arbiter",
        seed: int | None = None,
        hub: MemoryHub | None = None,
        timeout: float = 600.0,
        settings: Settings | None = None,
    ) -> Self:
        """Train on PSI-aligned features (party -> matrix, rows in the same order) and the
        guest's labels ``y``. ``settings`` (default: production, or development with
        ``insecure_allow_small_keys``) governs every simulated party, e.g. ``allow_insecure``
        to accept a peer's OU key, which carries no proof that it is well formed."""
        if guest not in features or len(features) < 2:
            raise ConfigError("features must map the guest and at least one host to matrices")
        params = dict(self.params)
        if params.get("feature_counts") is None:
            # In process the estimator holds every party's data: the agreed counts are known.
            shapes = {party: np.shape(x) for party, x in features.items()}
            for party, shape in shapes.items():
                if len(shape) != 2 or 0 in shape:
                    raise ConfigError(f"features of {party!r} must be a non-empty 2-D matrix")
            params["feature_counts"] = {party: int(shape[1]) for party, shape in shapes.items()}
        p = LRParams.from_mapping(params)
        roles: dict[str, tuple[str, ...]] = {
            party: ("guest",) if party == guest else ("host",) for party in features
        }
        if p.mode == "arbiter":
            if arbiter in features:
                raise ConfigError(f"the arbiter {arbiter!r} must not hold features")
            roles[arbiter] = ("arbiter",)
        inputs: dict[str, dict[str, Any]] = {party: {"X": x} for party, x in features.items()}
        inputs[guest]["y"] = y
        if settings is None:
            small = p.insecure_allow_small_keys
            settings = Settings(mode="development") if small else Settings.from_env()
        out = simulate(
            hetero_lr_component,
            roles,
            params=params,
            inputs=inputs,
            component_name="hetero_lr",
            seed=seed,
            hub=hub,
            settings=settings,
            timeout=timeout,
        )
        self.guest_ = guest
        self.hosts_ = sorted(p for p in features if p != guest)
        self.coef_ = {party: np.asarray(out[party]["coef"]) for party in features}
        self.intercept_ = float(out[guest]["intercept"])
        self.n_iter_ = int(out[guest]["n_iter"])
        return self

    def decision_function(
        self, features: Mapping[str, Any], *, hub: MemoryHub | None = None
    ) -> np.ndarray:
        """Linear scores, computed by the joint scoring protocol (the guest learns them)."""
        if not hasattr(self, "coef_"):
            raise ConfigError("fit the model first")
        if set(features) != set(self.coef_):
            raise ConfigError(f"features must come from exactly the parties {sorted(self.coef_)}")
        roles = {party: ("guest",) if party == self.guest_ else ("host",) for party in features}
        inputs: dict[str, dict[str, Any]] = {
            party: {"X": x, "coef": self.coef_[party]} for party, x in features.items()
        }
        inputs[self.guest_]["intercept"] = self.intercept_
        out = simulate(
            vertical_lr_scoring, roles, inputs=inputs, component_name="vertical_lr_scoring", hub=hub
        )
        return np.asarray(out[self.guest_]["z"])

    def predict_proba(self, features: Mapping[str, Any]) -> np.ndarray:
        """``[[1 - p, p], ...]`` as scikit-learn, ``p`` the probability of class 1."""
        z = self.decision_function(features)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))
        return np.column_stack([1.0 - p, p])

    def predict(self, features: Mapping[str, Any], threshold: float = 0.5) -> np.ndarray:
        """Class 1 where the probability reaches ``threshold``."""
        return (self.predict_proba(features)[:, 1] >= threshold).astype(np.int64)
