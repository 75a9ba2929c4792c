"""Fixed-point encoding of float vectors into the ring Z_2^64 (what secure aggregation sums).

``encode(x) = round(x * 2**frac_bits) mod 2**64`` for ``|x| <= bound``. The sum of ``n``
encodings decodes exactly to the sum of the rounded values as long as
``n * (bound * 2**frac_bits + 1/2) < 2**63`` (no wrap-around: checked by :meth:`Quantizer.check`).

Error bound: each rounding moves a coordinate by at most ``2**-(frac_bits+1)``, so the decoded
sum of ``n`` vectors differs from the true sum by at most ``n * 2**-(frac_bits+1)`` per
coordinate, plus the float64 rounding of the final conversion (relative ``2**-53``), which
:meth:`Quantizer.error_bound` includes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privfin.errors import ConfigError, InputError

__all__ = ["Quantizer"]


@dataclass(frozen=True)
class Quantizer:
    """Fixed-point encoding with ``frac_bits`` fractional bits of values in ``[-bound, bound]``."""

    frac_bits: int = 24
    bound: float = 2.0**16

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= 52:
            raise ConfigError("frac_bits must be in [0, 52]")
        if not (np.isfinite(self.bound) and self.bound > 0):
            raise ConfigError("bound must be a positive finite number")
        if self.bound * 2.0**self.frac_bits >= 2.0**62:
            raise ConfigError("bound * 2**frac_bits must stay below 2**62: lower one of them")

    def max_clients(self) -> int:
        """Most vectors whose sum cannot wrap around."""
        return int((2.0**63 - 1) // (self.bound * 2.0**self.frac_bits + 0.5))

    def check(self, n: int) -> None:
        """Raise :class:`ConfigError` if ``n`` encodings could wrap around."""
        if n > self.max_clients():
            raise ConfigError(
                f"{n} clients could overflow Z_2^64 with bound={self.bound:g} and "
                f"frac_bits={self.frac_bits}: lower one of them (at most "
                f"{self.max_clients()} clients)"
            )

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Encode a float vector (``InputError`` if it is not finite or exceeds ``bound``)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 1:
            raise InputError("secure aggregation sums 1-d vectors")
        if not np.all(np.isfinite(arr)):
            raise InputError("the vector to aggregate has NaN or infinite values")
        peak = float(np.max(np.abs(arr))) if arr.size else 0.0
        if peak > self.bound:
            raise InputError(
                f"a value of magnitude {peak:g} exceeds the agreed bound {self.bound:g}; clip "
                "the update or raise 'bound'"
            )
        return np.rint(arr * 2.0**self.frac_bits).astype(np.int64).view(np.uint64)

    def decode_sum(self, total: np.ndarray) -> np.ndarray:
        """Decode a sum of encodings (two's complement, then scale)."""
        return np.asarray(total, dtype=np.uint64).view(np.int64).astype(np.float64) / (
            2.0**self.frac_bits
        )

    def error_bound(self, n: int, total: np.ndarray | None = None) -> float:
        """Largest difference (per coordinate) between the decoded sum of ``n`` vectors and the
        exact sum: rounding plus, given the decoded sum ``total``, float64 conversion."""
        peak = float(np.max(np.abs(total))) if total is not None and total.size else 0.0
        return n * 2.0 ** -(self.frac_bits + 1) + peak * 2.0**-52
