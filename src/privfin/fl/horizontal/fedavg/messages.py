"""Typed messages of horizontal FL rounds (wire names ``hfl.*``); updates themselves travel
through secure aggregation (:mod:`privfin.fl.horizontal.secagg`)."""

from __future__ import annotations

import numpy as np

from privfin.federation.codec import Message, wire_message

__all__ = ["MAX_PARAMS", "PlainUpdate", "RoundPlan"]

#: Most model parameters.
MAX_PARAMS = 1 << 24


def _check_vector(v: np.ndarray, what: str) -> None:
    if v.dtype != np.float64 or v.ndim != 1 or not 0 < v.size <= MAX_PARAMS + 2:
        raise ValueError(f"{what} must be a non-empty 1-d float64 vector")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be finite")


@wire_message("hfl.RoundPlan")
class RoundPlan(Message, frozen=True, kw_only=True):
    """Server -> every client, each round: the global model, whether the client was sampled,
    and whether training is over (then ``weights`` is the final model)."""

    round: int
    selected: bool
    done: bool
    weights: np.ndarray

    def __post_init__(self) -> None:
        if not 0 <= self.round < 2**31:
            raise ValueError("round out of range")
        _check_vector(self.weights, "weights")


@wire_message("hfl.PlainUpdate")
class PlainUpdate(Message, frozen=True, kw_only=True):
    """Client -> server without secure aggregation (insecure mode): the update in clear."""

    round: int
    update: np.ndarray

    def __post_init__(self) -> None:
        if not 0 <= self.round < 2**31:
            raise ValueError("round out of range")
        _check_vector(self.update, "update")
