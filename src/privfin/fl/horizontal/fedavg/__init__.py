"""FedAvg / FedProx for horizontal FL, aggregating through secure aggregation.

Component :func:`hfl_component` (roles ``server`` and ``client``); models in numpy
(:mod:`privfin.fl.horizontal.fedavg.models`: logistic regression and a one-hidden-layer MLP;
:mod:`privfin.fl.horizontal.fedavg.torch_model`: a PyTorch module behind the extra
``privfin[torch]``); estimator :class:`FedAvgClassifier`.

Importing this package imports none of its modules: the names below are imported on first use
(a node running the ``hfl`` component does not import scikit-learn for the estimator).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from privfin.fl.horizontal.fedavg.common import HFLParams
    from privfin.fl.horizontal.fedavg.component import hfl_component
    from privfin.fl.horizontal.fedavg.estimator import FedAvgClassifier
    from privfin.fl.horizontal.fedavg.models import (
        MLP,
        LocalOptimiser,
        LogisticRegressionModel,
        local_train,
        make_model,
    )

__all__ = [
    "MLP",
    "FedAvgClassifier",
    "HFLParams",
    "LocalOptimiser",
    "LogisticRegressionModel",
    "hfl_component",
    "local_train",
    "make_model",
]

_MODELS = "privfin.fl.horizontal.fedavg.models"
_EXPORTS = {
    "MLP": _MODELS,
    "FedAvgClassifier": "privfin.fl.horizontal.fedavg.estimator",
    "HFLParams": "privfin.fl.horizontal.fedavg.common",
    "LocalOptimiser": _MODELS,
    "LogisticRegressionModel": _MODELS,
    "hfl_component": "privfin.fl.horizontal.fedavg.component",
    "local_train": _MODELS,
    "make_model": _MODELS,
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
