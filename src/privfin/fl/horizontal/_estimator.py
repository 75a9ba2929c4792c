"""What the horizontal estimators share: one simulated client per group of rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError, InputError
from privfin.federation.transport import validate_name

__all__ = ["clients_from_groups"]


def clients_from_groups(
    X: npt.ArrayLike, y: npt.ArrayLike, groups: npt.ArrayLike, *, allow_missing: bool = True
) -> tuple[dict[str, dict[str, Any]], npt.NDArray[Any], npt.NDArray[np.float64]]:
    """Split rows into clients by ``groups`` (one client per distinct value, named after it
    when the value is a valid party name, else ``client_<i>``).

    Returns ``(inputs, classes, x)``: every client's ``{"X", "y"}`` with ``y`` as 0/1 (1 =
    ``classes[1]``), the two classes, and ``X`` as a float matrix.
    """
    x = np.asarray(X, dtype=np.float64)
    yy = np.asarray(y).ravel()
    g = np.asarray(groups).ravel()
    if x.ndim != 2 or len(x) != len(yy) or len(g) != len(yy):
        raise InputError("X (2-D), y and groups need the same number of rows")
    if not allow_missing and np.any(np.isnan(x)):
        raise InputError("X has missing values (NaN)")
    classes = np.unique(yy)
    if len(classes) != 2:
        raise InputError(f"a binary target is needed, got {len(classes)} classes")
    y01 = (yy == classes[1]).astype(np.float64)
    names: dict[Any, str] = {}
    for v in np.unique(g):
        s = str(v)
        try:
            names[v] = validate_name("party", s) if s != "server" else f"client_{s}"
        except ConfigError:
            names[v] = validate_name("party", f"client_{len(names)}")
    if len(names) < 2:
        raise InputError("groups must name at least two clients")
    inputs = {names[v]: {"X": x[g == v], "y": y01[g == v]} for v in names}
    return inputs, classes, x
