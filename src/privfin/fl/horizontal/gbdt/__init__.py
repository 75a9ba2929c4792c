"""Federated histogram GBDT (horizontal SecureBoost): clients send gradient histograms through
secure aggregation, the server grows the trees from their sum. See ``SPEC.md``.

Modules: :mod:`.common` (parameters, the sketch, histogram layout and checks),
:mod:`.messages` (typed wire messages), :mod:`.model` (the model every party ends with),
:mod:`.client` and :mod:`.server` (one module per role), :mod:`.component` (job component
``hfl_gbdt``), :mod:`.estimator` (:class:`FedGBDTClassifier`). The plaintext tree arithmetic
lives in :mod:`privfin.ml.trees`.

Importing this package imports none of its modules: the names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from privfin.fl.horizontal.gbdt.common import GBDTParams
    from privfin.fl.horizontal.gbdt.component import hfl_gbdt_component
    from privfin.fl.horizontal.gbdt.estimator import FedGBDTClassifier
    from privfin.fl.horizontal.gbdt.model import FedGBDTModel

__all__ = ["FedGBDTClassifier", "FedGBDTModel", "GBDTParams", "hfl_gbdt_component"]

_EXPORTS = {
    "FedGBDTClassifier": "privfin.fl.horizontal.gbdt.estimator",
    "FedGBDTModel": "privfin.fl.horizontal.gbdt.model",
    "GBDTParams": "privfin.fl.horizontal.gbdt.common",
    "hfl_gbdt_component": "privfin.fl.horizontal.gbdt.component",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
