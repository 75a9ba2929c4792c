"""Typed messages of the PSI protocols (wire names ``psi.*``). See SPEC.md.

Every message checks its own shape in ``__post_init__`` (a violation decodes to
:class:`~privfin.errors.DecodeError`); ristretto255 points are additionally checked to be
canonical, non-identity group elements before any use (``InvalidPointError`` ->
:class:`~privfin.errors.ProtocolAbort`).
"""

from __future__ import annotations

import numpy as np

from privfin.crypto.ristretto import POINT_BYTES
from privfin.federation.codec import Message, wire_message

__all__ = [
    "CHUNK_ROWS",
    "CURVES",
    "FINGERPRINT_BYTES",
    "MAX_SET_SIZE",
    "PROTOCOL_VERSION",
    "RR22_BASE_OTS",
    "RR22_MAX_DEPTH",
    "RR22_MAX_OTS",
    "RR22_MAX_TREES",
    "Chunk",
    "Count",
    "FilterHave",
    "FilterUpdate",
    "Hello",
    "Indices",
    "KeyShare",
    "KkrtExtend",
    "KkrtReply",
    "KkrtSetup",
    "KkrtValues",
    "Masked",
    "RevealedKeys",
    "Rr22Extend",
    "Rr22Reply",
    "Rr22Setup",
    "Rr22Table",
    "Rr22Values",
    "Rr22Vole",
]

PROTOCOL_VERSION = 1
#: Groups of ECDH-PSI (job parameter ``curve``): X25519 with an Elligator 2 hash (default for
#: new jobs) and ristretto255 (the original suite; jobs that name it run as before).
CURVES = ("x25519", "ristretto255")
#: Rows per streamed chunk (1 MiB of points): bounds message size and memory per message.
CHUNK_ROWS = 32768
#: Bytes of a double-blinded point compared for equality (128 bits: no false match in practice).
FINGERPRINT_BYTES = 16
#: Largest set a party may announce (2**32 - 1 rows).
MAX_SET_SIZE = 2**32 - 1

#: Row widths a chunk may have: points, fingerprints, 64-bit filter entries.
_WIDTHS = (POINT_BYTES, FINGERPRINT_BYTES, 8)


@wire_message("psi.Hello")
class Hello(Message, frozen=True, kw_only=True):
    """Round 0, every party -> every peer: the parameters it runs with and its set size.

    The set size is revealed by design; the parameters must agree, else the job aborts.
    """

    protocol: str
    version: int
    params: str
    count: int

    def __post_init__(self) -> None:
        if len(self.protocol) > 64 or len(self.params) > 1024:
            raise ValueError("hello: protocol or parameters too long")
        if not 0 <= self.count <= MAX_SET_SIZE:
            raise ValueError("hello: set size out of range")


@wire_message("psi.Chunk")
class Chunk(Message, frozen=True, kw_only=True):
    """One chunk of a streamed array: rows ``offset .. offset + len(rows)`` of points (32-byte
    rows) or fingerprints (16-byte rows)."""

    offset: int
    rows: np.ndarray

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= MAX_SET_SIZE:
            raise ValueError("chunk: offset out of range")
        r = self.rows
        if r.dtype != np.uint8 or r.ndim != 2 or r.shape[1] not in _WIDTHS:
            raise ValueError("chunk: rows must be an (n, 32), (n, 16) or (n, 8) uint8 array")
        if r.shape[0] > CHUNK_ROWS:
            raise ValueError(f"chunk: more than {CHUNK_ROWS} rows")


@wire_message("psi.Indices")
class Indices(Message, frozen=True, kw_only=True):
    """Positions (strictly increasing) in an array the receiver sent earlier."""

    values: np.ndarray

    def __post_init__(self) -> None:
        v = self.values
        if v.dtype != np.int64 or v.ndim != 1:
            raise ValueError("indices must be a 1-D int64 array")
        if v.size and (v[0] < 0 or np.any(np.diff(v) <= 0)):
            raise ValueError("indices must be non-negative and strictly increasing")


@wire_message("psi.Count")
class Count(Message, frozen=True, kw_only=True):
    """An intersection size."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value <= MAX_SET_SIZE:
            raise ValueError("count out of range")


@wire_message("psi.KeyShare")
class KeyShare(Message, frozen=True, kw_only=True):
    """n-party: an ephemeral X25519 public key between two members (pairwise masks), and an
    optional seed for the members' common permutation (cardinality mode), sent member->member
    only."""

    key: bytes
    seed: bytes = b""

    def __post_init__(self) -> None:
        if len(self.key) != 32 or len(self.seed) not in (0, 32):
            raise ValueError("key share: key must be 32 bytes, seed empty or 32 bytes")


@wire_message("psi.Masked")
class Masked(Message, frozen=True, kw_only=True):
    """n-party, member -> leader: masked non-membership values in Z_2^64, one per leader item."""

    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.dtype != np.uint64 or self.values.ndim != 1:
            raise ValueError("masked values must be a 1-D uint64 array")


@wire_message("psi.RevealedKeys")
class RevealedKeys(Message, frozen=True, kw_only=True):
    """The intersection (normalised keys, agreed order), sent to parties entitled to it."""

    keys: list[str]

    def __post_init__(self) -> None:
        if len(self.keys) > MAX_SET_SIZE:
            raise ValueError("too many keys")


@wire_message("psi.FilterUpdate")
class FilterUpdate(Message, frozen=True, kw_only=True):
    """Unbalanced PSI, server -> client: the server filter's identity and whether the client's
    cached copy is current; if not, the sorted fingerprints follow as chunks."""

    filter_id: bytes
    version: int
    count: int
    bits: int
    current: bool

    def __post_init__(self) -> None:
        if len(self.filter_id) != 16 or not 0 <= self.version < 2**63:
            raise ValueError("filter update: bad id or version")
        if not 0 <= self.count <= MAX_SET_SIZE or not 32 <= self.bits <= 64:
            raise ValueError("filter update: bad count or fingerprint width")


@wire_message("psi.FilterHave")
class FilterHave(Message, frozen=True, kw_only=True):
    """Unbalanced PSI, client -> server: the filter the client has cached (zeros: none)."""

    filter_id: bytes
    version: int

    def __post_init__(self) -> None:
        if len(self.filter_id) != 16 or not 0 <= self.version < 2**63:
            raise ValueError("filter have: bad id or version")


# ------------------------------------------------------------------------------------ KKRT

#: KKRT code width in bits (columns of the wide IKNP matrix; SPEC.md §8).
KKRT_CODE_BITS = 512
#: Most bins in one ``KkrtExtend`` (4 MiB of ``u`` at 512 columns).
KKRT_BATCH_BINS = 1 << 16


@wire_message("psi.KkrtSetup")
class KkrtSetup(Message, frozen=True, kw_only=True):
    """KKRT, receiver -> sender: the base-OT point ``A`` and the receiver's key share."""

    point: bytes
    share: bytes

    def __post_init__(self) -> None:
        if len(self.point) != POINT_BYTES or len(self.share) != 16:
            raise ValueError("kkrt setup: point must be 32 bytes, share 16")


@wire_message("psi.KkrtReply")
class KkrtReply(Message, frozen=True, kw_only=True):
    """KKRT, sender -> receiver: one base-OT point ``B_i`` per code bit, the sender's share."""

    points: bytes
    share: bytes

    def __post_init__(self) -> None:
        if len(self.points) != KKRT_CODE_BITS * POINT_BYTES or len(self.share) != 16:
            raise ValueError(f"kkrt reply: {KKRT_CODE_BITS} points of 32 bytes and a 16-byte share")


@wire_message("psi.KkrtExtend")
class KkrtExtend(Message, frozen=True, kw_only=True):
    """KKRT, receiver -> sender: the wide IKNP matrix ``u`` for bins ``offset .. offset +
    8·cols`` (``KKRT_CODE_BITS`` rows of ``cols`` bytes)."""

    offset: int
    cols: int
    u: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= 2 * MAX_SET_SIZE or self.offset % 64:
            raise ValueError("kkrt extend: offset out of range or not a multiple of 64")
        if not 0 < self.cols <= KKRT_BATCH_BINS // 8 or self.cols % 8:
            raise ValueError("kkrt extend: cols must be a positive multiple of 8 within a batch")
        if len(self.u) != KKRT_CODE_BITS * self.cols:
            raise ValueError("kkrt extend: u has the wrong length")


@wire_message("psi.KkrtValues")
class KkrtValues(Message, frozen=True, kw_only=True):
    """KKRT, sender -> receiver: truncated OPRF values of the sender's items ``offset ..
    offset + len(rows)`` (in its random order); a row holds one value per hash function and
    per stash slot."""

    offset: int
    rows: np.ndarray

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= MAX_SET_SIZE:
            raise ValueError("kkrt values: offset out of range")
        r = self.rows
        if r.dtype != np.uint8 or r.ndim != 2 or not 8 <= r.shape[1] <= 16 * 64:
            raise ValueError("kkrt values: rows must be an (n, w) uint8 array, 8 <= w <= 1024")
        if not 0 < r.shape[0] <= CHUNK_ROWS:
            raise ValueError(f"kkrt values: 1 to {CHUNK_ROWS} rows")


# ------------------------------------------------------------------------------------ RR22

#: Base OTs of the RR22 run's IKNP extension (the VOLE's Δ has 128 bits).
RR22_BASE_OTS = 128
#: Upper bounds on the VOLE shape a party accepts (SPEC.md §8b; far above what any set size
#: up to ``MAX_SET_SIZE`` needs): trees, tree depth, correlated OTs.
RR22_MAX_TREES = 1 << 14
RR22_MAX_DEPTH = 30
RR22_MAX_OTS = 1 << 24


@wire_message("psi.Rr22Setup")
class Rr22Setup(Message, frozen=True, kw_only=True):
    """RR22, receiver -> sender: the base-OT point ``A`` and the receiver's key share."""

    point: bytes
    share: bytes

    def __post_init__(self) -> None:
        if len(self.point) != POINT_BYTES or len(self.share) != 16:
            raise ValueError("rr22 setup: point must be 32 bytes, share 16")


@wire_message("psi.Rr22Reply")
class Rr22Reply(Message, frozen=True, kw_only=True):
    """RR22, sender -> receiver: 128 base-OT points ``B_i`` (the bits of ``Δ``), its share."""

    points: bytes
    share: bytes

    def __post_init__(self) -> None:
        if len(self.points) != RR22_BASE_OTS * POINT_BYTES or len(self.share) != 16:
            raise ValueError(f"rr22 reply: {RR22_BASE_OTS} points of 32 bytes, a 16-byte share")


@wire_message("psi.Rr22Extend")
class Rr22Extend(Message, frozen=True, kw_only=True):
    """RR22, receiver -> sender: the IKNP matrix ``u`` of all the VOLE's correlated OTs
    (``128`` rows of ``ots / 8`` bytes)."""

    ots: int
    u: bytes

    def __post_init__(self) -> None:
        if not 0 < self.ots <= RR22_MAX_OTS or self.ots % 128:
            raise ValueError("rr22 extend: ots must be a positive multiple of 128 within bounds")
        if len(self.u) != RR22_BASE_OTS * self.ots // 8:
            raise ValueError("rr22 extend: u has the wrong length")


@wire_message("psi.Rr22Vole")
class Rr22Vole(Message, frozen=True, kw_only=True):
    """RR22, sender -> receiver: the VOLE's GGM corrections (``trees × depth × 2`` masked
    16-byte sums) and the per-tree sums (``trees × 16`` bytes)."""

    trees: int
    depth: int
    masked: bytes
    sums: bytes

    def __post_init__(self) -> None:
        if not 0 < self.trees <= RR22_MAX_TREES or not 0 < self.depth <= RR22_MAX_DEPTH:
            raise ValueError("rr22 vole: trees or depth out of range")
        if len(self.masked) != self.trees * self.depth * 32 or len(self.sums) != self.trees * 16:
            raise ValueError("rr22 vole: corrections have the wrong length")


@wire_message("psi.Rr22Table")
class Rr22Table(Message, frozen=True, kw_only=True):
    """RR22, receiver -> sender: the OKVS seed and slot count; the masked table
    ``A + P`` follows as ``slots`` 16-byte rows in ``Chunk`` messages."""

    seed: bytes
    slots: int

    def __post_init__(self) -> None:
        if len(self.seed) != 16 or not 0 < self.slots <= 2 * MAX_SET_SIZE:
            raise ValueError("rr22 table: 16-byte seed and a slot count in range")


@wire_message("psi.Rr22Values")
class Rr22Values(Message, frozen=True, kw_only=True):
    """RR22, sender -> receiver: truncated values of the sender's items ``offset …`` (in its
    random order)."""

    offset: int
    rows: np.ndarray

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= MAX_SET_SIZE:
            raise ValueError("rr22 values: offset out of range")
        r = self.rows
        if r.dtype != np.uint8 or r.ndim != 2 or not 8 <= r.shape[1] <= 16:
            raise ValueError("rr22 values: rows must be an (n, w) uint8 array, 8 <= w <= 16")
        if not 0 < r.shape[0] <= CHUNK_ROWS:
            raise ValueError(f"rr22 values: 1 to {CHUNK_ROWS} rows")
