"""Typed messages of the shared-tensor protocols (wire names ``mpc.*``).

Every array that crosses a party boundary is a flat or shaped ``uint64`` array of ring
elements; decoders refuse any other dtype, and receivers check shapes against what the
lockstep program expects (a mismatch is a :class:`~privfin.errors.ProtocolAbort`).
"""

from __future__ import annotations

import msgspec
import numpy as np

from privfin.federation.codec import Message, wire_message

__all__ = [
    "MAX_DIMS",
    "Correction",
    "InputHeader",
    "InputShare",
    "Opening",
    "OtBaseReply",
    "OtBaseSetup",
    "OtCorrections",
    "OtExtend",
    "PaillierCiphertexts",
    "PaillierPublicKey",
    "RevealShare",
    "Seed",
]

MAX_DIMS = 8
SEED_BYTES = 32


def _check_ring(values: np.ndarray, what: str) -> None:
    if not isinstance(values, np.ndarray) or values.dtype != np.uint64:
        raise ValueError(f"{what} must be a uint64 array of ring elements")
    if values.ndim > MAX_DIMS:
        raise ValueError(f"{what} has more than {MAX_DIMS} dimensions")


def _check_shape(shape: list[int]) -> None:
    if len(shape) > MAX_DIMS or any(d < 0 or d > 2**40 for d in shape):
        raise ValueError(f"shape must have at most {MAX_DIMS} dimensions in [0, 2**40]")


@wire_message("mpc.Seed")
class Seed(Message, frozen=True, kw_only=True):
    """Setup, dealer -> computing party: a 32-byte PRG seed for that party's correlated
    randomness (confidential: the transport is mutually authenticated and encrypted)."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise ValueError(f"seed must be {SEED_BYTES} bytes")


@wire_message("mpc.Correction")
class Correction(Message, frozen=True, kw_only=True):
    """Dealer -> the correction party: its share of the derived components of one item of
    correlated randomness (e.g. ``c - sum of the other parties' PRG shares``), flattened."""

    counter: int
    values: np.ndarray

    def __post_init__(self) -> None:
        _check_ring(self.values, "correction")
        if self.values.ndim != 1 or self.counter < 0:
            raise ValueError("correction must be flat with a non-negative counter")


@wire_message("mpc.InputHeader")
class InputHeader(Message, frozen=True, kw_only=True):
    """Data party -> parties that hold no share: the public shape of a shared input; for a
    plaintext matrix whose bits choose reused OTs, also its bit count ``bits`` (every
    element ``|x| < 2**(bits − 1)`` in fixed point)."""

    shape: list[int]
    bits: int | None = None

    def __post_init__(self) -> None:
        _check_shape(self.shape)
        if self.bits is not None and not 2 <= self.bits <= 63:
            raise ValueError("a plaintext matrix has 2 to 63 bits")


@wire_message("mpc.InputShare")
class InputShare(Message, frozen=True, kw_only=True):
    """Data party -> computing party: its share of an input, either as a PRG seed (expanded
    to the share) or as explicit ring elements; exactly one of the two is set."""

    shape: list[int]
    seed: bytes | None = None
    values: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_shape(self.shape)
        if (self.seed is None) == (self.values is None):
            raise ValueError("an input share carries exactly one of seed and values")
        if self.seed is not None and len(self.seed) != SEED_BYTES:
            raise ValueError(f"seed must be {SEED_BYTES} bytes")
        if self.values is not None:
            _check_ring(self.values, "input share")
            if list(self.values.shape) != list(self.shape):
                raise ValueError("input share values do not match the announced shape")


@wire_message("mpc.Opening")
class Opening(Message, frozen=True, kw_only=True):
    """Computing party -> computing party: its share of masked values being opened (Beaver
    ``x - a``, ``y - b``; comparison ``x + r``), flattened. Uniformly masked: reveals nothing."""

    values: np.ndarray

    def __post_init__(self) -> None:
        _check_ring(self.values, "opening")
        if self.values.ndim != 1:
            raise ValueError("opening must be a flat array")


@wire_message("mpc.RevealShare")
class RevealShare(Message, frozen=True, kw_only=True):
    """Computing party -> result party: its share of a value the job names as an output."""

    label: str
    values: np.ndarray

    def __post_init__(self) -> None:
        _check_ring(self.values, "revealed share")
        if len(self.label) > 128:
            raise ValueError("label too long")


@wire_message("mpc.PaillierPublicKey")
class PaillierPublicKey(Message, frozen=True, kw_only=True):
    """Dealer-free triples, party 0 -> party 1: the Paillier modulus ``n`` and the proof that
    ``gcd(n, phi(n)) = 1`` (``PublicKey.to_wire()["proof"]``: ten ``n``-th roots, checked by
    :func:`privfin.he.paillier.verify_modulus`)."""

    n: int
    proof: list[bytes] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n <= 0 or self.n % 2 == 0 or self.n.bit_length() < 512:
            raise ValueError("Paillier modulus must be odd and at least 512 bits")
        if len(self.proof) > 64:
            raise ValueError("a Paillier modulus proof has at most 64 values")


@wire_message("mpc.PaillierCiphertexts")
class PaillierCiphertexts(Message, frozen=True, kw_only=True):
    """Dealer-free triples: Paillier ciphertexts as fixed-width big-endian integers, each of
    ``width`` bytes (``width = ceil(bits(n**2) / 8)``). Range checks against ``n**2`` are
    done by the receiver, which knows ``n``."""

    width: int
    count: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 < self.width <= 2048 or self.count < 0:
            raise ValueError("bad ciphertext width or count")
        if len(self.data) != self.width * self.count:
            raise ValueError("ciphertext data does not match width * count")


# ------------------------------------------------------------------ OT extension (mpc.ot.*)

#: Bytes of an encoded ristretto255 point and of a base-OT batch (KAPPA = 128 points).
OT_POINT_BYTES = 32
OT_KAPPA = 128
#: Largest OT batch in one message (2**22 OTs: u is 64 MiB).
OT_MAX_BATCH = 1 << 22


@wire_message("mpc.OtBaseSetup")
class OtBaseSetup(Message, frozen=True, kw_only=True):
    """Setup, each computing party -> the other: its base-OT sender point ``A`` and its half
    of the public key of the correlation-robust hash."""

    point: bytes
    hash_key: bytes

    def __post_init__(self) -> None:
        if len(self.point) != OT_POINT_BYTES or len(self.hash_key) != 16:
            raise ValueError("base-OT setup: a 32-byte point and a 16-byte hash-key share")


@wire_message("mpc.OtBaseReply")
class OtBaseReply(Message, frozen=True, kw_only=True):
    """Setup: the base-OT receiver's ``KAPPA`` points ``B_i`` (32 bytes each, concatenated);
    the sender checks each one (canonical, not the identity, not ``A``)."""

    points: bytes

    def __post_init__(self) -> None:
        if len(self.points) != OT_KAPPA * OT_POINT_BYTES:
            raise ValueError(f"base-OT reply must hold {OT_KAPPA} points of 32 bytes")


@wire_message("mpc.OtExtend")
class OtExtend(Message, frozen=True, kw_only=True):
    """IKNP, extension receiver -> sender: ``u`` (``KAPPA`` rows of ``8 * cols`` bits) for
    batch ``counter``."""

    counter: int
    cols: int
    u: bytes

    def __post_init__(self) -> None:
        if self.counter < 0 or not 0 <= self.cols <= OT_MAX_BATCH // 8 or self.cols % 8:
            raise ValueError("bad OT batch counter or width")
        if len(self.u) != OT_KAPPA * self.cols:
            raise ValueError("OT extension matrix does not match its width")


@wire_message("mpc.OtCorrections")
class OtCorrections(Message, frozen=True, kw_only=True):
    """Correlated OT, sender -> receiver: the corrections ``d_j`` of batch ``counter``, each
    trimmed to the bytes the receiver uses (the sizes are public; the receiver checks them)."""

    counter: int
    data: bytes

    def __post_init__(self) -> None:
        if self.counter < 0:
            raise ValueError("bad OT batch counter")
