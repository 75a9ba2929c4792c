"""What clients and server of CKKS aggregation share: parameters, tags, the rounding of
released sums and their error bound (SPEC.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privfin.crypto.kex import derive_seed
from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError
from privfin.fl.horizontal.secagg.common import SecAggThresholdError
from privfin.he.ckks import CKKSParams

__all__ = [
    "CKKS",
    "CKKSAggParams",
    "CKKSThresholdError",
    "ckks_error_bound",
    "n_chunks",
    "release",
    "tag",
]

#: Only additions: one data level of 40 bits (plus a 60-bit base prime and the special prime),
#: scale 2**40; values up to 2**59 in magnitude fit without wrap-around. 128-bit secure
#: (120 of at most 218 bits of coefficient modulus at N = 8192).
CKKS = CKKSParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 60), scale_bits=40)
#: Measured largest decryption error of a fresh ciphertext at these parameters is about
#: 1e-8 (2**-27); per summed ciphertext this module allows 2**-24 (8 times that).
FRESH_ERROR = 2.0**-24
#: Largest magnitude of a released coordinate (far below the 2**59 that fits).
MAX_VALUE = 2.0**40


class CKKSThresholdError(SecAggThresholdError):
    """Fewer than ``min_clients`` inputs (or no decryption) in time: the round fails, nothing
    is decrypted."""


@dataclass(frozen=True)
class CKKSAggParams:
    """Agreed before the round.

    Attributes
    ----------
    dim:
        Length of every client's vector.
    min_clients:
        Fewest inputs the server may sum, and fewest a decrypting client accepts: a "sum" of
        fewer would show the server too few clients' vectors.
    precision_bits:
        Released sums are flooded with shared pseudo-random noise of ``2**-precision_bits``
        and rounded to that grid (limits what decryption noise reveals, SPEC.md).
    stage_timeout:
        Seconds the server waits for inputs, then for decryptions.
    client_timeout:
        Seconds a client waits for the server.
    """

    dim: int
    min_clients: int = 2
    precision_bits: int = 20
    stage_timeout: float = 30.0
    client_timeout: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.dim <= 1 << 24:
            raise ConfigError("dim must be in [1, 2**24]")
        if self.min_clients < 2:
            raise ConfigError("min_clients must be at least 2")
        if not 8 <= self.precision_bits <= 26:
            raise ConfigError("precision_bits must be in [8, 26] (CKKS noise is about 2**-27)")
        if self.stage_timeout <= 0 or self.client_timeout <= 0:
            raise ConfigError("timeouts must be positive")

    @property
    def chunks(self) -> int:
        return n_chunks(self.dim)


def n_chunks(dim: int) -> int:
    """Ciphertexts per vector (``slots = N/2`` values each)."""
    return -(-dim // CKKS.slots)


def tag(prefix: str, round_id: int, step: str) -> str:
    return f"{prefix}.{round_id}.{step}"


def release(
    values: np.ndarray, flood_seed: bytes, round_id: int, precision_bits: int
) -> np.ndarray:
    """What a decrypting client releases: the decryption plus uniform noise in
    ``[-u/2, u/2)`` (``u = 2**-precision_bits``) drawn from the seed every decrypting client
    shares, rounded to multiples of ``u``. Every honest decryptor releases the same vector;
    the server cannot remove the noise."""
    u = 2.0**-precision_bits
    seed = derive_seed(flood_seed, f"privfin.hfl.ckks/flood/{round_id}".encode())
    raw = expand_uint64(seed, values.size)
    noise = (raw >> np.uint64(11)).astype(np.float64) / 2.0**53 - 0.5
    return np.asarray(np.rint((values + noise * u) / u) * u, dtype=np.float64)


def ckks_error_bound(n: int, precision_bits: int, total: np.ndarray | None = None) -> float:
    """Largest difference per coordinate between a released sum of ``n`` vectors and the
    exact sum: CKKS noise (``n · 2**-24``), flooding and rounding (``2**-precision_bits``)
    and float64 conversion."""
    peak = float(np.max(np.abs(total))) if total is not None and total.size else 0.0
    return n * FRESH_ERROR + 2.0**-precision_bits + peak * 2.0**-52
