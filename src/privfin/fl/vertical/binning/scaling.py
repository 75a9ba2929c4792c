"""Per-party feature scaling for vertical models (component ``vertical_scaling``).

Each party fits and applies its own scaler on its own columns: no message is exchanged and
nothing leaves the party. Scaling is per column, so scaling each party's slice equals scaling
the joined table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from privfin.errors import ConfigError
from privfin.runtime import Context

__all__ = ["Scaler", "vertical_scaling_component"]


@dataclass
class Scaler:
    """``standard`` ((x - mean) / std) or ``minmax`` ((x - min) / (max - min)) per column."""

    method: str = "standard"
    offset_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, x: Any) -> Scaler:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise ConfigError("scaling needs a 2-D table")
        if self.method == "standard":
            offset, scale = np.nanmean(arr, axis=0), np.nanstd(arr, axis=0)
        elif self.method == "minmax":
            offset = np.nanmin(arr, axis=0)
            scale = np.nanmax(arr, axis=0) - offset
        else:
            raise ConfigError("method must be 'standard' or 'minmax'")
        self.offset_, self.scale_ = offset, np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, x: Any) -> np.ndarray:
        if self.offset_ is None or self.scale_ is None:
            raise ConfigError("fit the scaler first")
        out: np.ndarray = (np.asarray(x, dtype=np.float64) - self.offset_) / self.scale_
        return out


def vertical_scaling_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Scale this party's ``X`` locally; returns ``{"X", "offset", "scale"}`` (party-private)."""
    scaler = Scaler(str(params.get("method", "standard"))).fit(inputs.get("X"))
    assert scaler.offset_ is not None and scaler.scale_ is not None
    return {
        "X": scaler.transform(inputs.get("X")),
        "offset": scaler.offset_.tolist(),
        "scale": scaler.scale_.tolist(),
    }
