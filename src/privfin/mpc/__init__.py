"""Secure multi-party computation (JR/T 0196 roles: data, computing and result parties).

``Session`` / ``SharedTensor``: additive sharing over Z_2^64 with fixed-point encoding;
correlated randomness dealer-free from OT extension (2 computing parties, the production
default) or Paillier, from three-party replicated sharing (3 computing parties, no triples), or
from a dealer (development); ``functions`` (comparison, sigmoid,
reciprocal, …) stays a namespace; components ``mpc_stats`` (secure statistics), ``ss_lr``
(secret-shared logistic regression) and ``exposure`` (cross-lender exposure). See SPEC.md.
"""

from privfin.mpc.lr import ss_lr, train_logistic
from privfin.mpc.roles import MPCRoles
from privfin.mpc.session import RevealDenied, Session
from privfin.mpc.stats import mpc_stats
from privfin.mpc.tensor import SharedTensor

__all__ = [
    "MPCRoles",
    "RevealDenied",
    "Session",
    "SharedTensor",
    "mpc_stats",
    "ss_lr",
    "train_logistic",
]
