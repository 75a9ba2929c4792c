"""Element-wise optimisers and learning-rate schedules.

Every optimiser here updates each coordinate from that coordinate's gradient history only, so in
a vertical model each party can run it on its own slice of the weights and the result equals a
centralised run on the concatenated weights. No state is ever shared.

Security: plaintext and party-local; nothing here is sent anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError

__all__ = ["OPTIMIZERS", "SCHEDULES", "Optimizer", "learning_rate"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adagrad")
SCHEDULES = ("constant", "inverse", "sqrt", "exponential", "step")

FloatArray = npt.NDArray[np.float64]


def learning_rate(
    schedule: str, lr0: float, epoch: int, *, decay: float = 0.0, step: int = 1
) -> float:
    """Learning rate of epoch ``epoch`` (0-based).

    ``constant``: ``lr0``; ``inverse``: ``lr0 / (1 + decay * epoch)``; ``sqrt``:
    ``lr0 / sqrt(1 + decay * epoch)``; ``exponential``: ``lr0 * decay ** epoch``; ``step``:
    ``lr0 * decay ** (epoch // step)``.
    """
    if schedule == "constant":
        return lr0
    if schedule == "inverse":
        return lr0 / (1.0 + decay * epoch)
    if schedule == "sqrt":
        return lr0 / float(np.sqrt(1.0 + decay * epoch))
    if schedule == "exponential":
        return lr0 * decay**epoch
    if schedule == "step":
        return lr0 * decay ** (epoch // max(1, step))
    raise ConfigError(f"unknown learning-rate schedule {schedule!r}; use one of {SCHEDULES}")


@dataclass
class Optimizer:
    """One party's optimiser state for ``size`` weights.

    ``kind``: ``sgd``, ``momentum`` / ``nesterov`` (``beta1`` = momentum), ``rmsprop`` (``beta2``
    = smoothing, as ``torch.optim.RMSprop``'s alpha), ``adam`` (``beta1``, ``beta2``, bias
    corrected) or ``adagrad``.
    """

    kind: str
    size: int
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    _m: FloatArray = field(init=False, repr=False)
    _v: FloatArray = field(init=False, repr=False)
    _t: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.kind not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.kind!r}; use one of {OPTIMIZERS}")
        self._m = np.zeros(self.size)
        self._v = np.zeros(self.size)

    def direction(self, grad: FloatArray) -> FloatArray:
        """The step direction (to be multiplied by the learning rate and subtracted)."""
        self._t += 1
        g = np.asarray(grad, dtype=np.float64)
        if self.kind == "sgd":
            return g
        if self.kind in ("momentum", "nesterov"):
            self._m = self.beta1 * self._m + g
            return g + self.beta1 * self._m if self.kind == "nesterov" else self._m
        if self.kind == "rmsprop":
            self._v = self.beta2 * self._v + (1.0 - self.beta2) * g * g
            return g / (np.sqrt(self._v) + self.eps)
        if self.kind == "adagrad":
            self._v = self._v + g * g
            return g / (np.sqrt(self._v) + self.eps)
        self._m = self.beta1 * self._m + (1.0 - self.beta1) * g
        self._v = self.beta2 * self._v + (1.0 - self.beta2) * g * g
        m_hat = self._m / (1.0 - self.beta1**self._t)
        v_hat = self._v / (1.0 - self.beta2**self._t)
        return m_hat / (np.sqrt(v_hat) + self.eps)
