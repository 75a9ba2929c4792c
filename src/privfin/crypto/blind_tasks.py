"""Picklable batch tasks of commutative blinding (ECDH-PSI) for a compute backend.

They live here, not in :mod:`privfin.psi`, so that a process-pool worker imports only the
group arithmetic (numpy, libsodium or ``cryptography`` and gmpy2), not the PSI package with its
table and I/O dependencies: workers start faster, which shows at 100k-item jobs and on a busy
machine. Pure math, no I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from privfin.crypto import ristretto, x25519

__all__ = ["blind_task", "hash_blind_task"]

U8 = npt.NDArray[np.uint8]


def hash_blind_task(task: tuple[bool, bytes, bytes, bytes, npt.NDArray[np.uint64]]) -> U8:
    """``(is_x25519, scalar, dst, data, ends)`` -> ``k·H(m)`` for the packed messages."""
    is_x25519, scalar, dst, data, ends = task
    if is_x25519:
        return x25519.hash_blind_packed(scalar, data, ends, dst)
    return ristretto.hash_blind_packed(scalar, data, ends, dst)


def blind_task(task: tuple[bool, bytes, U8]) -> U8:
    """``(is_x25519, scalar, points)`` -> ``k·P`` for every row (invalid points raise the
    group's ``InvalidPointError``)."""
    is_x25519, scalar, points = task
    if is_x25519:
        return x25519.scalarmult_batch(scalar, points)
    return ristretto.scalarmult_batch(scalar, points)
