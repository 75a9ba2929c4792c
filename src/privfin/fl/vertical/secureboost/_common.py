"""Helpers shared by the roles: randomness adapter, keys, thread pools."""

from __future__ import annotations

from typing import Any

import numpy as np

from privfin.crypto.random import RandomSource
from privfin.errors import DecodeError
from privfin.fl.vertical.secureboost.packing import PublicKeyBase
from privfin.he import ou, paillier

__all__ = ["HeRandom", "load_public_key", "numpy_rng"]

GUEST_ROLE = "guest"
HOST_ROLE = "host"


class HeRandom:
    """Adapts a runtime :class:`RandomSource` to the ``getrandbits`` interface of
    :mod:`privfin.he` (so a seeded run is reproducible end to end)."""

    def __init__(self, source: RandomSource) -> None:
        self._source = source

    def getrandbits(self, k: int, /) -> int:
        if k <= 0:
            return 0
        x = int.from_bytes(self._source.bytes((k + 7) // 8), "little")
        return x & ((1 << k) - 1)


def numpy_rng(source: RandomSource) -> np.random.Generator:
    """A numpy generator seeded from ``source`` (GOSS sampling, feature permutation)."""
    return np.random.default_rng(int.from_bytes(source.bytes(16), "little"))


def load_public_key(
    data: dict[str, Any], scheme: str, rng: HeRandom, allow_small: bool, key_bits: int
) -> PublicKeyBase:
    """The guest's public key as sent in :class:`Setup` (refuses small or malformed keys).

    Paillier: exactly ``key_bits`` (checked first) and a valid proof that ``gcd(n, phi(n)) =
    1`` (:meth:`paillier.PublicKey.from_wire`). OU: no such proof exists; the host refuses a
    peer's OU key in production first (``config.require_peer_ou_allowed``).
    """
    if scheme == "paillier":
        return paillier.PublicKey.from_wire(
            data, rng=rng, insecure_allow_small_keys=allow_small, expect_bits=key_bits
        )
    if scheme == "ou":
        return ou.PublicKey.from_wire(data, rng=rng, insecure_allow_small_keys=allow_small)
    raise DecodeError(f"unknown scheme {scheme!r}")  # pragma: no cover - checked by Setup
