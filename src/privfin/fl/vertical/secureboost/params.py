"""Parameters of hetero SecureBoost, validated once at the boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from privfin.config import Settings, require_insecure_allowed
from privfin.errors import ConfigError
from privfin.fl.vertical.secureboost.packing import layout_widths
from privfin.ml.trees import MAX_BINS, TreeParams, make_objective

__all__ = ["BoostParams"]


@dataclass(frozen=True)
class BoostParams:
    """Hyper-parameters and protocol options (see ``SPEC.md``).

    Parameters
    ----------
    n_trees, max_depth, n_bins, learning_rate:
        Boosting rounds, tree depth, quantile bins per feature, shrinkage.
    objective:
        ``"binary"`` (logistic), ``"multiclass"`` (softmax; one multi-output tree per round)
        or ``"regression"`` (squared error).
    n_classes:
        Number of classes for ``"multiclass"`` (labels ``0..n_classes-1``).
    reg_lambda, min_child_weight, min_samples_leaf, min_split_gain:
        Tree regularisation (:class:`privfin.ml.trees.TreeParams`).
    goss, top_rate, other_rate:
        Gradient-based one-side sampling: keep the ``top_rate`` fraction of rows with the
        largest gradients and a random ``other_rate`` fraction of the rest (up-weighted).
        Reveals the sampled row set to the hosts.
    complete_secure:
        Build the first tree from the guest's features only (hosts learn nothing about it).
    share_gains_with_hosts:
        Send each host the gains of the splits on its features (for its gain importance).
        They are computed from decrypted histograms the host produced, so a malicious host
        can shape them to read guest gradients (up to 64 bits per split it wins; SPEC.md).
        Default off: hosts get split counts only.
    key_bits, he_scheme:
        Guest's key: Paillier (default) or Okamoto–Uchiyama, at least 2048 bits.
    insecure_allow_small_keys:
        Accept keys below 2048 bits (tests only; also needs insecure modes allowed).
    precision_bits:
        Fractional bits of the fixed-point gradients.
    regression_range_bits:
        Regression only: the gradients' range (max - min over the rows of a tree, in label
        units) must stay below ``2**regression_range_bits``. Hosts refuse wider gradient slots
        (SPEC.md): each bit more lets a malicious guest hide one more bit per row and slot.
        Scale labels (e.g. to thousands) rather than raising it.
    n_jobs:
        Threads for bulk ciphertext work in each party.
    """

    n_trees: int = 5
    max_depth: int = 3
    n_bins: int = 32
    learning_rate: float = 0.3
    objective: str = "binary"
    n_classes: int | None = None
    reg_lambda: float = 0.1
    min_child_weight: float = 0.0
    min_samples_leaf: int = 1
    min_split_gain: float = 1e-6
    goss: bool = False
    top_rate: float = 0.2
    other_rate: float = 0.1
    complete_secure: bool = False
    share_gains_with_hosts: bool = False
    key_bits: int = 2048
    he_scheme: str = "paillier"
    insecure_allow_small_keys: bool = False
    precision_bits: int = 24
    regression_range_bits: int = 20
    n_jobs: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.n_trees <= 10_000:
            raise ConfigError(f"n_trees must be in [1, 10000], got {self.n_trees}")
        if not 2 <= self.n_bins <= MAX_BINS:
            raise ConfigError(f"n_bins must be in [2, {MAX_BINS}], got {self.n_bins}")
        if not 0 < self.learning_rate <= 10:
            raise ConfigError("learning_rate must be in (0, 10]")
        if self.objective not in ("binary", "multiclass", "regression"):
            raise ConfigError("objective must be 'binary', 'multiclass' or 'regression'")
        if self.objective == "multiclass" and (self.n_classes is None or self.n_classes < 2):
            raise ConfigError("objective 'multiclass' needs n_classes >= 2")
        if self.goss and not (
            0 < self.top_rate < 1
            and 0 < self.other_rate < 1
            and self.top_rate + self.other_rate <= 1
        ):
            raise ConfigError("GOSS needs 0 < top_rate, other_rate and top_rate + other_rate <= 1")
        if self.he_scheme not in ("paillier", "ou"):
            raise ConfigError("he_scheme must be 'paillier' or 'ou'")
        if not 8 <= self.precision_bits <= 53:
            raise ConfigError("precision_bits must be in [8, 53]")
        if not 1 <= self.regression_range_bits <= 64:
            raise ConfigError("regression_range_bits must be in [1, 64]")
        if not 1 <= self.n_jobs <= 256:
            raise ConfigError("n_jobs must be in [1, 256]")
        self.tree_params()  # validates the tree part

    def tree_params(self) -> TreeParams:
        return TreeParams(
            max_depth=self.max_depth,
            reg_lambda=self.reg_lambda,
            min_child_weight=self.min_child_weight,
            min_samples_leaf=self.min_samples_leaf,
            min_split_gain=self.min_split_gain,
        )

    @property
    def n_outputs(self) -> int:
        return int(self.n_classes or 2) if self.objective == "multiclass" else 1

    @property
    def goss_scale(self) -> float:
        """Largest GOSS weight of a row (1 without GOSS): gradients are multiplied by it."""
        if not self.goss:
            return 1.0
        return max(1.0, (1.0 - self.top_rate) / self.other_rate)

    def gradient_bounds(self) -> tuple[float, float, float, float] | None:
        """Public per-row bounds ``(g_min, g_max, h_min, h_max)`` of the (GOSS-weighted)
        gradients, or ``None`` (regression: the guest measures them)."""
        bounds = make_objective(self.objective, self.n_classes).gradient_bounds()
        if bounds is None:
            return None
        s = self.goss_scale
        return (bounds[0] * s, bounds[1] * s, bounds[2] * s, bounds[3] * s)

    def max_widths(self, n_rows: int) -> tuple[int, ...]:
        """The widest gradient layout an honest guest declares for a tree over ``n_rows``
        rows (a host refuses anything wider, SPEC.md): from the public bounds, or in
        regression from ``regression_range_bits`` (g) and the GOSS weight (h)."""
        bounds = self.gradient_bounds()
        if bounds is None:
            ranges = (2.0**self.regression_range_bits, self.goss_scale)
        else:
            ranges = (bounds[1] - bounds[0], bounds[3] - bounds[2])
        return layout_widths(n_rows, self.precision_bits, [ranges] * self.n_outputs)

    def goss_sizes(self, n_rows: int) -> tuple[int, int]:
        """Rows kept by GOSS: ``(top, other)`` (public, from the rates and ``n_rows``)."""
        n_top = max(1, int(self.top_rate * n_rows))
        n_other = max(1, int(self.other_rate * n_rows))
        return n_top, min(n_other, n_rows - n_top)

    def check_keys(self, settings: Settings) -> None:
        """Refuse keys below 2048 bits unless explicitly allowed (flag and settings)."""
        if self.key_bits < 2048:
            if not self.insecure_allow_small_keys:
                raise ConfigError(
                    f"key_bits={self.key_bits} is below 2048 (112-bit security); set "
                    "insecure_allow_small_keys=True only in tests"
                )
            require_insecure_allowed(settings, f"SecureBoost with {self.key_bits}-bit keys")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> BoostParams:
        """Build from job parameters; unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"unknown SecureBoost parameters {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(params))
        except TypeError as exc:  # pragma: no cover - defensive
            raise ConfigError(f"bad SecureBoost parameters: {exc}") from None
