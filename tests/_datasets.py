"""Public data for the tests, from the repository alone (see tests/data/README.md).

``breast_hetero()`` rebuilds FATE's breast cancer vertical split exactly (value for value, row
for row) from scikit-learn's bundled copy of the UCI data; ``fate_hetero(name)`` reads the small
subsamples of FATE's other vertical splits shipped under ``tests/data/fate``. Tests import this
module as ``_datasets`` (pytest puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FATE = Path(__file__).resolve().parent / "data" / "fate"

#: The shipped subsamples: name -> rows of FATE's file kept (the first ones; FATE's files are
#: already shuffled).
SHIPPED = {"default_credit": 3000, "vehicle_scale": 846, "student": 395}


def breast_hetero() -> tuple[pd.DataFrame, pd.DataFrame]:
    """FATE's ``breast_hetero_guest.csv`` and ``breast_hetero_host.csv``, identical values.

    FATE's split is scikit-learn's ``load_breast_cancer`` standardised per column (population
    standard deviation) and rounded to 6 decimals; ``id`` is the row of the original data,
    ``y`` its target (1 = benign); the guest holds the last 10 columns (``x0..x9``), the host
    the first 20 (``x0..x19``); rows in FATE's order (``breast_hetero_ids.txt``).
    """
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    z = np.round((x - x.mean(axis=0)) / x.std(axis=0), 6)
    ids = np.loadtxt(FATE / "breast_hetero_ids.txt", dtype=np.int64)
    guest = pd.DataFrame(z[ids, 20:], columns=[f"x{j}" for j in range(10)])
    guest.insert(0, "y", y[ids])
    guest.insert(0, "id", ids)
    host = pd.DataFrame(z[ids, :20], columns=[f"x{j}" for j in range(20)])
    host.insert(0, "id", ids)
    return guest, host


def fate_hetero(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Guest and host tables of FATE's vertical split ``name`` (the rows in :data:`SHIPPED`)."""
    if name == "breast":
        return breast_hetero()
    if name not in SHIPPED:
        raise KeyError(f"no shipped FATE split {name!r}; have breast, {', '.join(SHIPPED)}")
    return tuple(  # type: ignore[return-value]
        pd.read_csv(FATE / f"{name}_hetero_{role}.csv.gz") for role in ("guest", "host")
    )
