"""Scikit-learn-style estimator over the runtime: :class:`HeteroSecureBoost`.

``fit`` and ``predict_proba`` run the very same components a job runs, one thread per party
over the in-memory transport (:func:`privfin.runtime.simulate`), so a notebook user gets the
federated protocol, leakage and all, without deploying nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical.secureboost.component import (
    secureboost_component,
    secureboost_predict_component,
)
from privfin.fl.vertical.secureboost.model import GuestModel, HostModel
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.runtime import simulate

__all__ = ["HeteroSecureBoost"]


class HeteroSecureBoost:
    """Hetero SecureBoost: the guest holds ``y`` and some features, hosts hold the others.

    Parameters are those of :class:`BoostParams` (``n_trees=5, max_depth=3, n_bins=32,
    learning_rate=0.3, objective="binary", ...``); ``guest`` names the guest party.

    Learned attributes: ``model_`` (the guest's model), ``host_models_`` (each host's lookup
    table — in a deployment each host keeps its own), ``train_scores_``, ``metrics_``.

    Security: as SPEC.md; the estimator only wires parties that would otherwise run apart.
    """

    def __init__(self, *, guest: str = "guest", **params: Any) -> None:
        self.guest = guest
        self.params = dict(params)
        BoostParams.from_mapping(self.params)

    def get_params(self) -> dict[str, Any]:
        return {"guest": self.guest, **self.params}

    def _roles(self, hosts: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        if not hosts:
            raise ConfigError("give at least one host: hosts={'name': X_host}")
        if self.guest in hosts:
            raise ConfigError("a host cannot have the guest's name")
        return {self.guest: ("guest",), **{h: ("host",) for h in hosts}}

    def fit(
        self, X: Any, y: Any, *, hosts: Mapping[str, Any], seed: int | None = None,
        settings: Settings | None = None, hub: MemoryHub | None = None, timeout: float = 600.0,
    ) -> HeteroSecureBoost:  # fmt: skip
        """Train on aligned rows: ``X`` (guest features), ``y`` and ``hosts={name: X_host}``."""
        inputs: dict[str, dict[str, Any]] = {self.guest: {"X": X, "y": y}}
        inputs.update({h: {"X": xh} for h, xh in hosts.items()})
        out = simulate(
            secureboost_component, self._roles(hosts), params=self.params, inputs=inputs,
            seed=seed, settings=settings, hub=hub, timeout=timeout,
            component_name="secureboost",
        )  # fmt: skip
        self.model_: GuestModel = out[self.guest]["model"]
        self.host_models_: dict[str, HostModel] = {h: out[h]["model"] for h in hosts}
        self.train_scores_ = out[self.guest]["scores"]
        return self

    def predict_proba(
        self, X: Any, *, hosts: Mapping[str, Any], seed: int | None = None,
        settings: Settings | None = None, hub: MemoryHub | None = None,
    ) -> npt.NDArray[np.float64]:  # fmt: skip
        """Class probabilities ``(n, n_classes)`` (regression: predictions ``(n,)``)."""
        if not hasattr(self, "model_"):
            raise ConfigError("call fit() first")
        inputs: dict[str, dict[str, Any]] = {self.guest: {"X": X, "model": self.model_}}
        inputs.update({h: {"X": xh, "model": self.host_models_[h]} for h, xh in hosts.items()})
        out = simulate(
            secureboost_predict_component, self._roles(hosts), inputs=inputs, seed=seed,
            settings=settings, hub=hub, component_name="secureboost_predict",
        )  # fmt: skip
        scores: npt.NDArray[np.float64] = out[self.guest]["scores"]
        return scores

    def predict(self, X: Any, *, hosts: Mapping[str, Any], **kw: Any) -> npt.NDArray[Any]:
        """Class labels (classification) or values (regression)."""
        s = self.predict_proba(X, hosts=hosts, **kw)
        return s if s.ndim == 1 else np.argmax(s, axis=1)

    def feature_importance(self, kind: str = "split") -> dict[str, float]:
        """Guest features by name and hosts as a whole (host features: ask the host)."""
        return self.model_.feature_importance(kind)
