"""Two-party RR22-class PSI: silent VOLE + OKVS (SPEC.md §8b).

Raghuraman–Rindal (CCS 2022), semi-honest, over GF(2^128). The receiver R encodes
``P = Encode({(x, H1(x))})`` in a random-band OKVS (:mod:`privfin.crypto.okvs`) of ``m``
slots and sends ``A' = A + P``, where ``(A, C)`` is its share of a random VOLE of length ``m``
(:mod:`privfin.crypto.vole`) and the sender S holds ``(Δ, B)`` with ``C = B + A·Δ``. S
computes ``K = B + Δ·A' = C + Δ·P`` and sends, in a random order, ``H2(Decode(K, y) + Δ·H1(y))``
truncated to ℓ bytes for each of its items; since decoding is linear and ``Decode(P, x) =
H1(x)``, the value of a common item equals R's ``H2(Decode(C, x))``. R matches.

Ids are hashed to 16-byte digests (KKRT's AES Merkle–Damgård, under a key both parties fix
after their inputs); ``H1``, ``H2`` are ``π_k(v) ⊕ v`` with fixed-key AES under two more such
keys. Everything is vectorised (AES over whole buffers, the OKVS and VOLE kernels).

This module holds what both roles share; each role is its own module
(:mod:`privfin.psi.rr22_receiver`, :mod:`privfin.psi.rr22_sender`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from privfin.crypto import okvs
from privfin.crypto.vole import VoleParams
from privfin.psi import _aes
from privfin.psi.common import U8

__all__ = ["OKVS_PARAMS", "slots", "vole_params"]

_PROTOCOL = "rr22"
#: The OKVS of R's set (band 128 bits, m = ⌈1.25·n⌉ + 128; failure rate in crypto/SPEC.md).
OKVS_PARAMS = okvs.DEFAULT_PARAMS


@dataclass(frozen=True)
class _Keys:
    """Public keys both parties derive from their two shares (fixed after the inputs)."""

    ids: bytes
    value: bytes
    out: bytes
    ot_hash: bytes
    code: bytes

    @classmethod
    def derive(cls, dst: bytes, share_r: bytes, share_s: bytes) -> _Keys:
        def one(label: bytes) -> bytes:
            h = hashlib.sha256(b"privfin.psi.rr22.v1/" + label + b"/" + share_r + share_s + dst)
            return h.digest()[:16]

        return cls(*(one(x) for x in (b"ids", b"value", b"out", b"ot-hash", b"code")))


def slots(n_r: int) -> int:
    """OKVS slots (= VOLE length) for a receiver set of ``n_r`` items."""
    return OKVS_PARAMS.slots(n_r)


def vole_params(n_r: int, code_seed: bytes) -> VoleParams:
    return VoleParams.for_outputs(slots(n_r), code_seed)


def _h(key: bytes, rows: U8) -> U8:
    """``π_key(v) ⊕ v`` for every 16-byte row."""
    enc = _aes.ecb(key)
    return np.asarray(_aes.perm(enc, rows) ^ rows, dtype=np.uint8)
