"""Secure aggregation (Bonawitz et al., CCS 2017) with dropout recovery; see SPEC.md.

Clients mask their quantised vectors with pairwise masks (X25519 + HKDF + AES-CTR) and a
self-mask, and Shamir-share the self-mask seed and the mask key so that the server can remove
the masks of clients that drop out at any step while learning only the survivors' sum.
"""

from __future__ import annotations

from privfin.fl.horizontal.secagg.client import SecAggClient
from privfin.fl.horizontal.secagg.common import SecAggParams, SecAggThresholdError
from privfin.fl.horizontal.secagg.component import secagg_component
from privfin.fl.horizontal.secagg.quantize import Quantizer
from privfin.fl.horizontal.secagg.server import SecAggResult, SecAggServer

__all__ = [
    "Quantizer",
    "SecAggClient",
    "SecAggParams",
    "SecAggResult",
    "SecAggServer",
    "SecAggThresholdError",
    "secagg_component",
]
