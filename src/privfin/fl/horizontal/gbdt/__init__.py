"""Federated histogram GBDT (horizontal SecureBoost): clients send gradient histograms through
secure aggregation, the server grows the trees from their sum; component ``hfl_gbdt``,
estimator :class:`FedGBDTClassifier`. See SPEC.md."""

from __future__ import annotations

from privfin.fl.horizontal.gbdt.common import GBDTParams
from privfin.fl.horizontal.gbdt.component import hfl_gbdt_component
from privfin.fl.horizontal.gbdt.model import FedGBDTModel

__all__ = ["FedGBDTModel", "GBDTParams", "hfl_gbdt_component"]
