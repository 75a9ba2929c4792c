"""Hetero (vertical) logistic regression over Paillier; see ``SPEC.md`` in this folder.

Entry points: the estimator :class:`HeteroLogisticRegression` (``fit`` / ``predict_proba`` over
the runtime) and the job component :func:`hetero_lr_component` (registered as ``hetero_lr``).
Two modes: ``"arbiter"`` (a third party holds the key, as FATE's coordinated LR) and
``"guest"`` (no third party). Security: semi-honest parties; no label, feature, residual or
other party's gradient leaves its owner in clear (SPEC.md lists exactly what each party learns).

Each name is imported on first use (module ``__getattr__``): importing the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from privfin.fl.vertical.hetero_lr.common import LRParams, plaintext_reference
    from privfin.fl.vertical.hetero_lr.component import MODEL_ARTIFACT, hetero_lr_component
    from privfin.fl.vertical.hetero_lr.estimator import HeteroLogisticRegression

__all__ = [
    "MODEL_ARTIFACT",
    "HeteroLogisticRegression",
    "LRParams",
    "hetero_lr_component",
    "plaintext_reference",
]

_EXPORTS = {
    "MODEL_ARTIFACT": "privfin.fl.vertical.hetero_lr.component",
    "HeteroLogisticRegression": "privfin.fl.vertical.hetero_lr.estimator",
    "LRParams": "privfin.fl.vertical.hetero_lr.common",
    "hetero_lr_component": "privfin.fl.vertical.hetero_lr.component",
    "plaintext_reference": "privfin.fl.vertical.hetero_lr.common",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
