"""Horizontal federated learning: same kind of data about different customers (several banks'
transactions). Sub-packages:

- :mod:`privfin.fl.horizontal.secagg` — secure aggregation that survives dropouts.
- :mod:`privfin.fl.horizontal.fedavg` — FedAvg / FedProx over secure aggregation; component
  ``hfl``.

Importing this package imports none of them.
"""

from __future__ import annotations

__all__: list[str] = []
