"""Differential privacy: safe mechanisms with declared privacy maps, accounting, a budget
ledger in the node's store, DP releases over tables and DP-SGD.

Modules, in the order of their imports (see ``SPEC.md`` for the privacy units and which
mechanism to use for what):

``_sample``
    Exact samplers on the integers (discrete Laplace and Gaussian, Canonne-Kamath-Steinke
    2020) from a cryptographic source; a vectorised discrete Gaussian for noise vectors.
``accounting``
    :class:`Accountant`: RDP or PLD composition of heterogeneous mechanisms, Poisson
    subsampling, conversion to (epsilon, delta) (``dp-accounting``).
``mechanisms``
    Discrete Laplace/Gaussian, Laplace for reals on a grid, the Gaussian mechanism for
    clipped vectors, the exponential mechanism, randomized response.
``ledger``
    :class:`BudgetLedger`: per-dataset (and per-party) budgets, reserve -> commit/release,
    ``BudgetExceeded`` before any data is touched, an auditable history.
``release``
    Count, sum, mean, histogram, quantiles and contingency tables over a DataFrame, with
    bounds, per-customer contribution limits and confidence intervals; DP PSI-cardinality.
``sgd``
    DP-SGD for logistic regression and an MLP (scikit-learn convention).

Importing :mod:`privfin.dp` is cheap: its names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

if TYPE_CHECKING:
    from privfin.dp.accounting import Accountant
    from privfin.dp.ledger import BudgetExceeded, BudgetLedger
    from privfin.dp.mechanisms import (
        DiscreteGaussian,
        DiscreteLaplace,
        ExponentialMechanism,
        GaussianVector,
        GridLaplace,
        PrivacyCost,
        RandomizedResponse,
    )
    from privfin.dp.sgd import DPSGDClassifier

__all__ = [
    "Accountant",
    "BudgetExceeded",
    "BudgetLedger",
    "DPSGDClassifier",
    "DiscreteGaussian",
    "DiscreteLaplace",
    "ExponentialMechanism",
    "GaussianVector",
    "GridLaplace",
    "PrivacyCost",
    "RandomizedResponse",
]

_M = "privfin.dp.mechanisms"
_EXPORTS = {
    "Accountant": "privfin.dp.accounting",
    "BudgetExceeded": "privfin.dp.ledger",
    "BudgetLedger": "privfin.dp.ledger",
    "DPSGDClassifier": "privfin.dp.sgd",
    **{
        n: _M
        for n in (
            "DiscreteGaussian",
            "DiscreteLaplace",
            "ExponentialMechanism",
            "GaussianVector",
            "GridLaplace",
            "PrivacyCost",
            "RandomizedResponse",
        )
    },
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
