"""What client and server share: parameters, tags, key derivation, masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privfin.crypto.kex import derive_seed
from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError, ProtocolAbort
from privfin.fl.horizontal.secagg.messages import MAX_DIM
from privfin.fl.horizontal.secagg.quantize import Quantizer

__all__ = [
    "SecAggParams",
    "SecAggThresholdError",
    "Stage",
    "decrypt_shares",
    "encrypt_shares",
    "mask_seed",
    "pairwise_mask",
    "self_mask",
    "tag",
]

#: The four stages of a round; a client can drop out after any of them.
Stage = str
STAGES: tuple[Stage, ...] = ("advertise", "share", "masked", "unmask")


class SecAggThresholdError(ProtocolAbort):
    """Fewer than ``threshold`` clients are left at some stage: the round cannot complete
    without weakening its privacy guarantee, so it fails (nothing is revealed)."""


@dataclass(frozen=True)
class SecAggParams:
    """Agreed by server and clients before the round (clients check the server keeps them).

    Attributes
    ----------
    dim:
        Length of every client's vector.
    threshold:
        ``t``: shares needed to recover a secret, and fewest clients at every stage. Must be
        more than half of the clients that start (``2t > n``) so that the server cannot get a
        client's self-mask seed and its mask key at once from two disjoint groups.
    quantizer:
        Fixed-point encoding (bound and fractional bits; its error bound is the sum's).
    stage_timeout:
        Seconds the server waits for the clients at each stage; later clients are dropped.
    client_timeout:
        Seconds a client waits for the server.
    """

    dim: int
    threshold: int
    quantizer: Quantizer = field(default_factory=Quantizer)
    stage_timeout: float = 30.0
    client_timeout: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.dim <= MAX_DIM:
            raise ConfigError(f"dim must be in [1, {MAX_DIM}]")
        if self.threshold < 2:
            raise ConfigError("threshold must be at least 2")
        if self.stage_timeout <= 0 or self.client_timeout <= 0:
            raise ConfigError("timeouts must be positive")

    def check_clients(self, n: int) -> None:
        """Raise :class:`ConfigError` unless ``n`` starting clients fit the threshold rule."""
        if n < self.threshold:
            raise ConfigError(f"{n} clients cannot reach the threshold {self.threshold}")
        if 2 * self.threshold <= n:
            raise ConfigError(
                f"threshold {self.threshold} must exceed half of the {n} clients "
                f"(at least {n // 2 + 1})"
            )
        self.quantizer.check(n)


def tag(prefix: str, round_id: int, step: str) -> str:
    """Message tag of one step of one round (each round has its own tags, so a late message of
    an earlier round is never read in a later one)."""
    return f"{prefix}.{round_id}.{step}"


def _context(domain: str, round_id: int, *parts: str) -> bytes:
    return "/".join(["privfin.hfl.secagg", domain, str(round_id), *parts]).encode()


def mask_seed(shared: bytes, scope: str, round_id: int, a: str, b: str) -> bytes:
    """Seed of the pairwise mask of clients ``a`` and ``b`` (order-free)."""
    lo, hi = sorted((a, b))
    return derive_seed(shared, _context("mask", round_id, scope, lo, hi))


def pairwise_mask(seed: bytes, dim: int, me: str, other: str) -> np.ndarray:
    """``+PRG(seed)`` for the smaller name of the pair, ``-PRG(seed)`` for the larger one."""
    m = expand_uint64(seed, dim)
    return m if me < other else (-m.view(np.int64)).view(np.uint64)


def self_mask(seed: bytes, dim: int) -> np.ndarray:
    return expand_uint64(seed, dim, stream=1)


def _share_key(shared: bytes, scope: str, round_id: int, sender: str, receiver: str) -> bytes:
    return derive_seed(shared, _context("share", round_id, scope, sender, receiver))


def encrypt_shares(
    shared: bytes,
    scope: str,
    round_id: int,
    sender: str,
    receiver: str,
    payload: bytes,
    nonce: bytes,
) -> bytes:
    """AES-256-GCM of ``payload`` under a key for this direction, pair, round and job; the
    names are authenticated too, so the server cannot redirect a ciphertext."""
    key = _share_key(shared, scope, round_id, sender, receiver)
    aad = _context("aad", round_id, scope, sender, receiver)
    return nonce + AESGCM(key).encrypt(nonce, payload, aad)


def decrypt_shares(
    shared: bytes, scope: str, round_id: int, sender: str, receiver: str, ct: bytes
) -> bytes:
    """Inverse of :func:`encrypt_shares`; :class:`ProtocolAbort` if it does not authenticate."""
    from cryptography.exceptions import InvalidTag

    key = _share_key(shared, scope, round_id, sender, receiver)
    aad = _context("aad", round_id, scope, sender, receiver)
    try:
        return AESGCM(key).decrypt(ct[:12], ct[12:], aad)
    except InvalidTag:
        raise ProtocolAbort(
            f"shares from {sender!r} do not authenticate (tampered or redirected)", party=sender
        ) from None
