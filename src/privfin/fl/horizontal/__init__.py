"""Horizontal federated learning: same kind of data about different customers (several banks'
transactions). Sub-packages:

- :mod:`privfin.fl.horizontal.secagg` — secure aggregation that survives dropouts.
- :mod:`privfin.fl.horizontal.ckksagg` — CKKS aggregation, the alternative (weaker trust).
- :mod:`privfin.fl.horizontal.aggregation` — either of the two behind one interface.
- :mod:`privfin.fl.horizontal.fedavg` — FedAvg / FedProx / FedAdam for LR and an MLP; component
  ``hfl``, estimator ``FedAvgClassifier``.
- :mod:`privfin.fl.horizontal.gbdt` — federated histogram GBDT (horizontal SecureBoost);
  component ``hfl_gbdt``, estimator ``FedGBDTClassifier``.

Importing this package imports none of them.
"""

from __future__ import annotations

__all__: list[str] = []
