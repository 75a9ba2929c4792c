"""Private set intersection: ECDH-PSI (2- and n-party), PSI-cardinality, KKRT-PSI (OT-based,
two parties), unbalanced OPRF-PSI.

See ``SPEC.md`` in this package for roles, messages, what each party learns and the threat
model. Entry points: :func:`simulate` (in-process parties over the memory transport) and the
job component :func:`psi_component`.

Importing :mod:`privfin.psi` is cheap: its names are imported on first use (``privfin psi``
starts its nodes without loading the protocols).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

if TYPE_CHECKING:
    from privfin.psi.api import simulate
    from privfin.psi.component import PsiParams, aligned_output, psi_component
    from privfin.psi.ids import NORMALIZERS, PreparedIds, prepare_ids

__all__ = [
    "NORMALIZERS",
    "PreparedIds",
    "PsiParams",
    "aligned_output",
    "prepare_ids",
    "psi_component",
    "simulate",
]

_EXPORTS = {
    "simulate": "privfin.psi.api",
    "PsiParams": "privfin.psi.component",
    "aligned_output": "privfin.psi.component",
    "psi_component": "privfin.psi.component",
    "NORMALIZERS": "privfin.psi.ids",
    "PreparedIds": "privfin.psi.ids",
    "prepare_ids": "privfin.psi.ids",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
