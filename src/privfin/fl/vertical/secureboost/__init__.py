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

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
