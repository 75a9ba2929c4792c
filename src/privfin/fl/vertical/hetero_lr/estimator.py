"""Scikit-learn estimator over the runtime: ``HeteroLogisticRegression(guest="bank").fit(X, y)``.

``fit`` and ``predict_proba`` run the real protocols (``hetero_lr`` and
``vertical_lr_scoring``) between in-process parties over the memory transport (or the hub you
pass): the same component code a job runs across nodes. The estimator holds every party's
slice of the model afterwards, which only makes sense in a simulation or an evaluation; in a
deployment each node keeps its own slice (its artifact store) and scoring runs as a job.
Input forms, ``save``/``load`` and the scikit-learn contract: :mod:`privfin.fl.vertical._estimator`.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical._estimator import VerticalEstimator
from privfin.fl.vertical.hetero_lr.common import LRParams
from privfin.fl.vertical.hetero_lr.component import hetero_lr_component
from privfin.fl.vertical.scoring import vertical_lr_scoring
from privfin.runtime import simulate

__all__ = ["LR_PARAMS", "HeteroLogisticRegression"]

#: The protocol's hyper-parameters, all of them constructor parameters of the estimator
#: (``feature_counts`` is filled in from the data the estimator holds).
LR_PARAMS = tuple(f.name for f in fields(LRParams) if f.name not in ("feature_counts", "extra"))
_D: dict[str, Any] = {f.name: f.default for f in fields(LRParams) if f.default is not MISSING}


class HeteroLogisticRegression(VerticalEstimator):
    """Vertical logistic regression between a guest (labels) and hosts (features).

    Parameters
    ----------
    guest:
        The party holding the labels (and its own features).
    mode, max_iter, batch_size, learning_rate, optimizer, lr_schedule, lr_decay, lr_step,
    penalty, alpha, early_stopping, tol, fit_intercept, sigmoid, class_weight, shuffle, scheme,
    key_bits, insecure_allow_small_keys, grad_bits, frac_bits, stat_bits, n_jobs:
        The protocol's parameters, as :class:`~privfin.fl.vertical.hetero_lr.common.LRParams`
        (same defaults); validated in :meth:`fit`. ``class_weight`` keys are 0 and 1 (1 is
        ``classes_[1]``).
    arbiter:
        Name of the simulated arbiter party in ``mode="arbiter"``.
    settings:
        Settings of every simulated party (default :meth:`Settings.from_env`); keys below 2048
        bits need ``insecure_allow_small_keys`` and ``Settings(mode="development")``.
    seed:
        Seeds every party's randomness (``None``: OS randomness).
    timeout:
        Seconds a simulated party waits for a message.

    Attributes
    ----------
    coef_:
        Party name -> that party's coefficients (one per column, ``feature_names_in_[party]``).
    intercept_:
        The guest's intercept.
    n_iter_:
        Epochs run.
    classes_, feature_names_in_, n_features_in_, guest_, hosts_:
        Labels, each party's qualified column names, their total number, party names.

    Security: see ``hetero_lr/SPEC.md``; default 2048-bit Paillier keys.
    """

    _fitted_attr = "n_iter_"

    def __init__(
        self,
        *,
        guest: str = "guest",
        mode: str = _D["mode"],
        max_iter: int = _D["max_iter"],
        batch_size: int = _D["batch_size"],
        learning_rate: float = _D["learning_rate"],
        optimizer: str = _D["optimizer"],
        lr_schedule: str = _D["lr_schedule"],
        lr_decay: float = _D["lr_decay"],
        lr_step: int = _D["lr_step"],
        penalty: str = _D["penalty"],
        alpha: float = _D["alpha"],
        early_stopping: bool = _D["early_stopping"],
        tol: float = _D["tol"],
        fit_intercept: bool = _D["fit_intercept"],
        sigmoid: str = _D["sigmoid"],
        class_weight: str | dict[int, float] | None = _D["class_weight"],
        shuffle: bool = _D["shuffle"],
        scheme: str = _D["scheme"],
        key_bits: int = _D["key_bits"],
        insecure_allow_small_keys: bool = _D["insecure_allow_small_keys"],
        grad_bits: int = _D["grad_bits"],
        frac_bits: int = _D["frac_bits"],
        stat_bits: int = _D["stat_bits"],
        n_jobs: int = _D["n_jobs"],
        arbiter: str = "arbiter",
        settings: Settings | None = None,
        seed: int | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.guest = guest
        self.mode = mode
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.lr_step = lr_step
        self.penalty = penalty
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.sigmoid = sigmoid
        self.class_weight = class_weight
        self.shuffle = shuffle
        self.scheme = scheme
        self.key_bits = key_bits
        self.insecure_allow_small_keys = insecure_allow_small_keys
        self.grad_bits = grad_bits
        self.frac_bits = frac_bits
        self.stat_bits = stat_bits
        self.n_jobs = n_jobs
        self.arbiter = arbiter
        self.settings = settings
        self.seed = seed
        self.timeout = timeout

    def _protocol_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LR_PARAMS}

    def fit(self, X: Any, y: Any, *, hub: MemoryHub | None = None) -> Self:
        """Train on PSI-aligned features of every party (one DataFrame with ``party.column``
        names or ``{party: features}``) and the guest's labels ``y`` (two classes).

        ``hub``: a :class:`MemoryHub` to inspect the messages afterwards (``hub.wire``).
        """
        parts = self._fit_frames(X)
        for party, df in parts.items():
            if df.shape[1] == 0 or df.shape[0] == 0:
                raise ConfigError(f"features of {party!r} must be a non-empty 2-D matrix")
        y01 = self._binary_labels(y, len(parts[self.guest_]))
        params = self._protocol_params()
        params["feature_counts"] = {p: int(df.shape[1]) for p, df in parts.items()}
        p = LRParams.from_mapping(params)
        roles: dict[str, tuple[str, ...]] = {
            party: ("guest",) if party == self.guest_ else ("host",) for party in parts
        }
        if p.mode == "arbiter":
            if self.arbiter in parts:
                raise ConfigError(f"the arbiter {self.arbiter!r} must not hold features")
            roles[self.arbiter] = ("arbiter",)
        inputs: dict[str, dict[str, Any]] = {party: {"X": x} for party, x in parts.items()}
        inputs[self.guest_]["y"] = y01
        out = simulate(
            hetero_lr_component, roles, params=params, inputs=inputs, component_name="hetero_lr",
            seed=self.seed, hub=hub, settings=self._settings(), timeout=self.timeout,
        )  # fmt: skip
        self.coef_ = {party: np.asarray(out[party]["coef"], dtype=np.float64) for party in parts}
        self.intercept_ = float(out[self.guest_]["intercept"])
        self.n_iter_ = int(out[self.guest_]["n_iter"])
        return self

    def decision_function(self, X: Any, *, hub: MemoryHub | None = None) -> npt.NDArray[Any]:
        """Linear scores (log-odds of ``classes_[1]``), computed by the joint scoring protocol
        (the guest learns them)."""
        parts = self._frames(X)
        roles = {party: ("guest",) if party == self.guest_ else ("host",) for party in parts}
        inputs: dict[str, dict[str, Any]] = {
            party: {"X": x, "coef": self.coef_[party]} for party, x in parts.items()
        }
        inputs[self.guest_]["intercept"] = self.intercept_
        out = simulate(
            vertical_lr_scoring, roles, inputs=inputs, component_name="vertical_lr_scoring",
            hub=hub, seed=self.seed, settings=self._settings(), timeout=self.timeout,
        )  # fmt: skip
        return np.asarray(out[self.guest_]["z"], dtype=np.float64)

    def predict_proba(self, X: Any, *, hub: MemoryHub | None = None) -> npt.NDArray[np.float64]:
        """``[[1 - p, p], ...]`` as scikit-learn, ``p`` the probability of ``classes_[1]``."""
        z = self.decision_function(X, hub=hub)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))
        return np.column_stack([1.0 - p, p])

    # ------------------------------------------------------------------ save / load

    def _party_slice(self, party: str) -> dict[str, Any]:
        out: dict[str, Any] = {"party": party, "coef": self.coef_[party].tolist()}
        if party == self.guest_:
            out["intercept"] = self.intercept_
            out["n_iter"] = self.n_iter_
        return out

    def _restore(self, manifest: Any, slices: Any) -> None:
        if isinstance(self.class_weight, dict):  # JSON turned the class keys into strings
            self.class_weight = {int(k): float(v) for k, v in self.class_weight.items()}
        self.coef_ = {}
        for party, names in self.feature_names_in_.items():
            coef = np.asarray(slices[party]["coef"], dtype=np.float64)
            if coef.shape != (len(names),):
                raise ValueError(f"party {party!r}: {coef.size} coefficients for {len(names)}")
            self.coef_[party] = coef
        self.intercept_ = float(slices[self.guest_]["intercept"])
        self.n_iter_ = int(slices[self.guest_]["n_iter"])
