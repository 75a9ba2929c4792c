"""Hetero SecureBoost: gradient-boosted trees over vertically partitioned data.

Modules: :mod:`.params` (hyper-parameters), :mod:`.messages` (typed wire messages),
:mod:`.packing` (fixed-point gradient packing), :mod:`.model` (each party's model),
:mod:`.guest` and :mod:`.host` (one module per role), :mod:`.component` (job components
``secureboost`` and ``secureboost_predict``), :mod:`.estimator` (:class:`HeteroSecureBoost`).
The plaintext tree arithmetic lives in :mod:`privfin.ml.trees`. See ``SPEC.md`` for roles,
message flow, what each party learns, and the threat model.

Importing this package imports none of its modules: the names below are imported on first
use (module ``__getattr__``): ``from privfin.fl.vertical.secureboost import HeteroSecureBoost``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from privfin.fl.vertical.secureboost.component import (
        secureboost_component,
        secureboost_predict_component,
    )
    from privfin.fl.vertical.secureboost.estimator import HeteroSecureBoost
    from privfin.fl.vertical.secureboost.model import GuestModel, HostModel
    from privfin.fl.vertical.secureboost.params import BoostParams

__all__ = [
    "BoostParams",
    "GuestModel",
    "HeteroSecureBoost",
    "HostModel",
    "secureboost_component",
    "secureboost_predict_component",
]

_EXPORTS = {
    "BoostParams": "privfin.fl.vertical.secureboost.params",
    "GuestModel": "privfin.fl.vertical.secureboost.model",
    "HeteroSecureBoost": "privfin.fl.vertical.secureboost.estimator",
    "HostModel": "privfin.fl.vertical.secureboost.model",
    "secureboost_component": "privfin.fl.vertical.secureboost.component",
    "secureboost_predict_component": "privfin.fl.vertical.secureboost.component",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
