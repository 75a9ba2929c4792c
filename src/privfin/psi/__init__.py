"""Private set intersection: ECDH-PSI (2- and n-party), PSI-cardinality, KKRT-PSI (OT-based,
two parties), unbalanced OPRF-PSI.

See ``SPEC.md`` in this package for roles, messages, what each party learns and the threat
model. Entry points: :func:`simulate` (in-process parties over the memory transport) and the
job component :func:`psi_component`.
"""

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
