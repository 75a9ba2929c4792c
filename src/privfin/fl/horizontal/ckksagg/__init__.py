"""CKKS aggregation: an alternative to masking secure aggregation. Clients encrypt their
vectors under a CKKS key they share and the server does not hold; the server adds the
ciphertexts and the clients decrypt and release the sum. See SPEC.md for its (weaker) trust
model."""

from __future__ import annotations

from privfin.fl.horizontal.ckksagg.client import CKKSAggClient, CKKSClientKey, client_setup
from privfin.fl.horizontal.ckksagg.common import CKKSAggParams, CKKSThresholdError
from privfin.fl.horizontal.ckksagg.server import CKKSAggServer, server_setup

__all__ = [
    "CKKSAggClient",
    "CKKSAggParams",
    "CKKSAggServer",
    "CKKSClientKey",
    "CKKSThresholdError",
    "client_setup",
    "server_setup",
]
