"""FedAvg / FedProx for horizontal FL, aggregating through secure aggregation.

Component :func:`hfl_component` (roles ``server`` and ``client``); models in numpy
(:mod:`privfin.fl.horizontal.fedavg.models`: logistic regression and a one-hidden-layer MLP).
"""

from __future__ import annotations

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
