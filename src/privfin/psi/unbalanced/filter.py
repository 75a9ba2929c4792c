"""The server's filter: a sorted array of truncated OPRF outputs.

Each server item ``y`` contributes ``F_k(y)``: the top ``bits`` bits of
``SHA-512(tag || len(y) || y || k·H(y))`` (2HashDH OPRF). The filter is a sorted ``uint64``
array: membership is a binary search, so a client query of ``q`` items costs ``O(q log n)``.
False-positive rate per queried item ≈ ``n / 2**bits`` (64 bits, 10M items: 5e-13). Size:
8 bytes per server item (a Bloom filter at the same false-positive rate needs ~5.4 bytes and
answers with that error; the sorted array is exact up to truncation and supports removal).

Security: the filter reveals nothing about the server's items to anyone without the OPRF key
(outputs are pseudorandom); a client learns ``F_k`` only for items it queried through the
server, which rate-limits and audits queries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from privfin.crypto.ristretto import POINT_BYTES

__all__ = ["OPRF_OUTPUT_TAG", "FilterCache", "OprfFilter", "oprf_outputs"]

OPRF_OUTPUT_TAG = b"privfin/psi/oprf/v1/output"

U64 = npt.NDArray[np.uint64]


def oprf_outputs(items: Sequence[bytes], evaluated: npt.NDArray[np.uint8], bits: int) -> U64:
    """Truncated 2HashDH outputs ``H2(y, k·H(y))`` for aligned items and evaluated points."""
    if evaluated.shape != (len(items), POINT_BYTES):
        raise ValueError("one evaluated point per item is required")
    out = np.empty(len(items), dtype=np.uint64)
    sha = hashlib.sha512
    shift = 64 - bits
    raw = evaluated.tobytes()
    for i, item in enumerate(items):
        h = sha(OPRF_OUTPUT_TAG + len(item).to_bytes(4, "big") + item)
        h.update(raw[POINT_BYTES * i : POINT_BYTES * (i + 1)])
        out[i] = int.from_bytes(h.digest()[:8], "big") >> shift
    return out


@dataclass
class OprfFilter:
    """Sorted truncated OPRF outputs of the server's set.

    Attributes
    ----------
    filter_id:
        16 bytes naming the OPRF key (and hash domain) the outputs were computed under.
    version:
        Incremented on each refresh of the set.
    bits:
        Width of each output (32-64).
    values:
        Sorted, distinct ``uint64`` outputs.
    """

    filter_id: bytes
    version: int
    bits: int
    values: U64 = field(default_factory=lambda: np.empty(0, dtype=np.uint64))

    def contains(self, outputs: U64) -> npt.NDArray[np.bool_]:
        """Membership of each output (``O(len(outputs) · log n)``)."""
        v = self.values
        if v.size == 0:
            return np.zeros(outputs.shape, dtype=bool)
        pos = np.searchsorted(v, outputs)
        pos[pos == v.size] = 0
        return np.asarray(v[pos] == outputs)

    def false_positive_rate(self) -> float:
        """Probability that an item outside the set is reported as a member."""
        return float(self.values.size) / float(2**self.bits)

    def to_rows(self) -> npt.NDArray[np.uint8]:
        """The values as big-endian 8-byte rows (wire form)."""
        return self.values.astype(">u8").view(np.uint8).reshape(-1, 8)

    @classmethod
    def from_rows(
        cls, filter_id: bytes, version: int, bits: int, rows: npt.NDArray[np.uint8]
    ) -> OprfFilter:
        """Rebuild from wire rows; ``ValueError`` unless sorted, distinct and in range."""
        values = rows.reshape(-1, 8).copy().view(">u8").reshape(-1).astype(np.uint64)
        if values.size > 1 and not np.all(values[1:] > values[:-1]):
            raise ValueError("filter values must be strictly increasing")
        if bits < 64 and values.size and int(values[-1]) >= 2**bits:
            raise ValueError("filter value wider than the declared bits")
        return cls(filter_id=filter_id, version=version, bits=bits, values=values)


@dataclass
class FilterCache:
    """A client's cached copy of a server's filter (reused until the server's version moves)."""

    filter: OprfFilter | None = None

    @property
    def have(self) -> tuple[bytes, int]:
        if self.filter is None:
            return bytes(16), 0
        return self.filter.filter_id, self.filter.version
