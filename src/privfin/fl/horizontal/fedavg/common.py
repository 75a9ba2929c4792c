"""Parameters of horizontal FL and the update vector both roles agree on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privfin.dp.mechanisms import GaussianVector
from privfin.errors import ConfigError, InputError
from privfin.fl.horizontal.fedavg.models import LocalOptimiser, Model, make_model
from privfin.fl.horizontal.secagg import Quantizer, SecAggParams

__all__ = ["CLIENT", "SERVER", "HFLParams", "HFLStepParams", "data_of"]

SERVER = "server"
CLIENT = "client"


@dataclass(frozen=True)
class HFLParams:
    """Everything server and clients agree on before training.

    ``mu = 0`` is FedAvg (weighted by the clients' row counts); ``mu > 0`` FedProx.
    ``clients_per_round`` clients are sampled uniformly each round (all by default); a round
    waits at most ``round_deadline`` seconds at each step, and clients later than that are
    dropped from the round (their masks are removed through secure aggregation's recovery).
    ``threshold`` defaults to a strict majority of the sampled clients. ``aggregation``
    selects how the updates are summed with ``secure_aggregation``: ``"secagg"`` (masking,
    Bonawitz et al.) or ``"ckks"`` (CKKS under a key the clients share and the server does not
    hold; weaker trust model, see ckksagg/SPEC.md). ``init_seed`` (public, part of the agreed
    parameters) fixes the initial weights: every party derives them from it and the clients
    refuse a first model that differs; without it the server draws them from its own
    randomness.
    """

    n_features: int
    model: str = "logistic"
    hidden: int = 16
    l2: float = 0.0
    rounds: int = 10
    clients_per_round: int | None = None
    optimiser: LocalOptimiser = field(default_factory=LocalOptimiser)
    secure_aggregation: bool = True
    aggregation: str = "secagg"
    threshold: int | None = None
    round_deadline: float = 60.0
    client_timeout: float = 600.0
    bound: float = 2.0**16
    frac_bits: int = 24
    patience: int | None = None
    max_failed_rounds: int = 3
    server_optimiser: str = "fedavg"
    server_lr: float = 0.1
    aggregator: str = "mean"
    trim_fraction: float = 0.1
    dp_noise_multiplier: float | None = None
    dp_clip: float = 1.0
    dp_delta: float = 1e-5
    init_seed: int | None = None

    def __post_init__(self) -> None:
        if self.init_seed is not None and (
            not isinstance(self.init_seed, int)
            or isinstance(self.init_seed, bool)
            or not 0 <= self.init_seed < 1 << 63
        ):
            raise ConfigError("init_seed must be an integer in [0, 2**63)")
        if not 0 < self.n_features <= 1 << 20 or self.rounds < 1:
            raise ConfigError("need n_features >= 1 and rounds >= 1")
        if self.round_deadline <= 0 or self.client_timeout <= 0:
            raise ConfigError("deadlines must be positive")
        if self.patience is not None and self.patience < 1:
            raise ConfigError("patience must be at least 1")
        if self.server_optimiser not in ("fedavg", "fedadam") or not self.server_lr > 0:
            raise ConfigError("server_optimiser must be 'fedavg' or 'fedadam', server_lr > 0")
        if self.aggregation not in ("secagg", "ckks"):
            raise ConfigError("aggregation must be 'secagg' (masking) or 'ckks'")
        if self.aggregator not in ("mean", "median", "trimmed_mean"):
            raise ConfigError("aggregator must be 'mean', 'median' or 'trimmed_mean'")
        if not 0 <= self.trim_fraction < 0.5:
            raise ConfigError("trim_fraction must be in [0, 0.5)")
        if self.aggregator != "mean" and (self.secure_aggregation or self.dp_noise_multiplier):
            raise ConfigError(
                f"aggregator {self.aggregator!r} needs every client's update in clear: it is "
                "incompatible with secure aggregation (which reveals only the sum) and with "
                "client-level DP; to use it, turn secure_aggregation off (an insecure mode)"
            )
        if self.dp_noise_multiplier is not None:
            if not (self.dp_noise_multiplier > 0 and self.dp_clip > 0 and 0 < self.dp_delta < 1):
                raise ConfigError("need dp_noise_multiplier > 0, dp_clip > 0, 0 < dp_delta < 1")
            if self.patience is not None:
                raise ConfigError(
                    "early stopping reads a validation set without noise: not with client-level DP"
                )

    def mechanism(self) -> GaussianVector | None:
        """Client-level DP: each client's update clipped to ``dp_clip`` (L2) and rounded to
        the mechanism's grid; discrete Gaussian noise added to the securely aggregated sum."""
        if self.dp_noise_multiplier is None:
            return None
        return GaussianVector(self.dp_noise_multiplier, self.dp_clip)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> HFLParams:
        known = {f for f in cls.__dataclass_fields__ if f != "optimiser"}
        opt_keys = {
            "optimiser": "kind",
            "lr": "lr",
            "local_epochs": "epochs",
            "batch_size": "batch_size",
            "mu": "mu",
        }
        unknown = set(params) - known - set(opt_keys)
        if unknown:
            raise ConfigError(f"unknown hfl parameters: {sorted(unknown)}")
        if "n_features" not in params:
            raise ConfigError("hfl needs the agreed parameter 'n_features'")
        try:
            opt = LocalOptimiser(**{opt_keys[k]: v for k, v in params.items() if k in opt_keys})
            return cls(optimiser=opt, **{k: v for k, v in params.items() if k in known})
        except TypeError as exc:
            raise ConfigError(f"bad hfl parameter: {exc}") from None

    def make_model(self) -> Model:
        return make_model(self.model, self.n_features, hidden=self.hidden, l2=self.l2)

    def initial_weights(self, model: Model, rng: np.random.Generator) -> np.ndarray:
        """The round-0 model: from the public ``init_seed`` when it is set (the same at every
        party), else from ``rng`` (the server's own randomness)."""
        if self.init_seed is not None:
            rng = np.random.default_rng(self.init_seed)
        return np.asarray(model.init(rng), dtype=np.float64)

    def sampled(self, n_clients: int) -> int:
        k = n_clients if self.clients_per_round is None else self.clients_per_round
        if not 1 <= k <= n_clients:
            raise ConfigError(f"clients_per_round must be in [1, {n_clients}]")
        return k

    def secagg(self, n_sampled: int, dim: int) -> SecAggParams:
        t = self.threshold if self.threshold is not None else n_sampled // 2 + 1
        gv = self.mechanism()
        # With DP the clients send integer grid units: summed exactly (no fractional bits).
        q = (
            Quantizer(frac_bits=self.frac_bits, bound=self.bound)
            if gv is None
            else Quantizer(frac_bits=0, bound=gv.clip / gv.grid + 1.0)
        )
        return SecAggParams(
            dim=dim,
            threshold=t,
            quantizer=q,
            stage_timeout=self.round_deadline,
            client_timeout=self.client_timeout,
        )


@dataclass(frozen=True)
class HFLStepParams(HFLParams):
    """:class:`HFLParams` of the pipeline step ``hfl``, as its parameters are written in a
    spec: ``n_features`` is left out (the step takes it from the clients' tables, after
    checking that every client has the same feature columns) and the local optimiser is given
    by ``optimiser``, ``lr``, ``local_epochs``, ``batch_size`` and ``mu``. Documentation and
    validation only: :meth:`from_mapping` returns the :class:`HFLParams` the protocol runs.

    Attributes
    ----------
    n_features:
        Set by the step from the clients' tables (leave it out).
    model:
        ``"logistic"``, ``"mlp"`` (one hidden layer of ``hidden`` tanh units) or
        ``"torch_mlp"`` (the same as a PyTorch module; every party needs ``privfin[torch]``).
    hidden:
        Hidden units of the MLP.
    l2:
        L2 penalty of the local loss.
    rounds:
        FedAvg rounds.
    clients_per_round:
        Clients sampled per round (default: all).
    optimiser:
        Local optimiser: ``"sgd"`` or ``"adam"`` (fresh moments every round).
    secure_aggregation:
        Sum the updates by secure aggregation (off: an insecure mode, refused in production).
    aggregation:
        ``"secagg"`` (masking, default) or ``"ckks"`` (a CKKS key the clients share; weaker).
    threshold:
        Secure aggregation's threshold (default: a strict majority of the sampled clients).
    round_deadline:
        Seconds the server waits at each step of a round; later clients are dropped.
    client_timeout:
        Seconds a client waits for the server.
    bound, frac_bits:
        Fixed-point encoding of updates: largest magnitude, fractional bits.
    patience:
        Early stopping: rounds without a better validation AUC (needs the validation table).
    max_failed_rounds:
        Rounds in a row below the threshold before the job fails.
    server_optimiser, server_lr:
        ``"fedavg"`` or ``"fedadam"`` (server-side Adam on the mean update) and its rate.
    aggregator, trim_fraction:
        ``"mean"``; ``"median"`` or ``"trimmed_mean"`` only without secure aggregation.
    dp_noise_multiplier:
        Client-level DP: noise multiplier (``None``: no DP).
    dp_clip, dp_delta:
        Client-level DP: L2 clip of each client's update; delta of the reported epsilon.
    init_seed:
        Public seed of the initial weights, agreed in the spec: every party derives the same
        round-0 model from it and the clients refuse a different one from the server (default:
        the server draws them from its own randomness).
    lr:
        Local learning rate.
    local_epochs:
        Local epochs per round.
    batch_size:
        Local minibatch size.
    mu:
        FedProx proximal term (0: FedAvg).
    """

    n_features: int = 1
    optimiser: str = "sgd"  # type: ignore[assignment]
    lr: float = 0.1
    local_epochs: int = 1
    batch_size: int = 32
    mu: float = 0.0

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> HFLParams:
        return HFLParams.from_mapping({"n_features": 1, **params})


def data_of(inputs: Mapping[str, Any], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """A party's ``X`` (rows × ``n_features``) and 0/1 labels ``y`` from its inputs."""
    if "X" not in inputs or "y" not in inputs:
        raise InputError("an hfl client needs the inputs 'X' and 'y'")
    x = np.asarray(inputs["X"], dtype=np.float64)
    y = np.asarray(inputs["y"], dtype=np.float64).ravel()
    if x.ndim != 2 or x.shape[1] != n_features:
        raise InputError(f"X must have {n_features} columns (the agreed n_features), got {x.shape}")
    if len(y) != len(x) or len(y) == 0:
        raise InputError("X and y need the same, non-zero number of rows")
    if not np.all(np.isfinite(x)) or not np.all((y == 0) | (y == 1)):
        raise InputError("X must be finite and y 0/1")
    return x, y
