"""Two-party KKRT PSI: batched OPRF from a wide IKNP OT extension (SPEC.md §8).

Kolesnikov–Kumaresan–Rosulek–Trieu (CCS 2016), semi-honest. The receiver puts its items in a
cuckoo table (3 hash functions, a stash); one 1-out-of-n OT per bin (IKNP with
:data:`~privfin.psi.messages.KKRT_CODE_BITS` columns and a pseudorandom code ``C`` built from
AES) gives the sender a PRF key per bin and the receiver the PRF value of the item in that
bin; the sender sends the truncated PRF values of each of its items at its 3 bins and at the
stash bins, in a random order; the receiver matches.

All bulk work is vectorised over whole batches: AES through ``cryptography`` over large
buffers (ids hashed by an AES-based Merkle–Damgård chain, grouped by length), bit-matrix
transposes from :mod:`privfin.crypto.ot`, matching by sorted 64-bit prefixes; no Python
loop per item.

This module holds what both roles share; each role is its own module
(:mod:`privfin.psi.kkrt_receiver`, :mod:`privfin.psi.kkrt_sender`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto import ot as otm
from privfin.errors import PrivfinError
from privfin.psi import _aes
from privfin.psi.common import (
    U8,
    rows_in,
    sortable,
    unique_sorted,
)
from privfin.psi.ids import U64, PreparedIds
from privfin.psi.messages import (
    KKRT_CODE_BITS,
)

__all__ = [
    "HASHES",
    "STASH",
    "STAT",
    "CuckooFailure",
    "Matcher",
    "cuckoo",
    "table_size",
    "value_bytes",
]

#: Cuckoo hash functions.
HASHES = 3
#: Stash bins after the table (public, fixed).
STASH = 1
#: Statistical security parameter: cuckoo failure and false positives are each <= 2**-STAT.
STAT = 40
#: Bytes of one code word / one row of the wide extension matrix.
CODE_BYTES = KKRT_CODE_BITS // 8
#: Class of a stash entry in the code input (the hash functions are classes 0..2).
_STASH_CLASS = HASHES
#: Vectorised random-walk rounds before the homeless items go to the stash.
_WALK_ROUNDS = 2000
_PROTOCOL = "kkrt"


class CuckooFailure(PrivfinError):
    """More items than stash bins stayed homeless (probability <= 2**-40 by SPEC.md §8)."""


# ----------------------------------------------------------------------------- parameters


def table_size(n: int, stat: int = STAT) -> int:
    """Cuckoo bins for ``n`` items (3 hash functions), from the stash-less failure fit of
    Pinkas–Schneider–Weinert–Wieder (Eurocrypt 2018, §5): ``stat = a·e + b`` with
    ``a ≈ 123.5``, ``b ≈ −130 − log2 n`` for large ``n`` and smaller slopes (a normal-CDF
    interpolation) for small ``n``; ``e`` = bins / items. At least 64 bins."""
    nn = math.log2(max(n, 1))
    a = 123.5 / 2 * (1 + math.erf((nn - 6.3) / (2.3 * math.sqrt(2))))
    b = -130 / 2 * (1 + math.erf((nn - 6.45) / (2.18 * math.sqrt(2)))) - nn
    e = (stat - b) / a
    return max(64, math.ceil(e * n))


def value_bytes(n_r: int, n_s: int, stat: int = STAT) -> int:
    """Bytes of a truncated OPRF value: the receiver compares each of its ``n_r`` values with
    ``n_s`` pseudorandom ones, so ``n_r·n_s·2^(−8·bytes) <= 2^−stat``. Between 8 and 16."""
    bits = stat + math.log2(max(n_r, 1)) + math.log2(max(n_s, 1))
    return min(16, max(8, math.ceil(bits / 8)))


def n_bins(n_r: int) -> int:
    """Bins of the extension: table plus stash, padded to whole 64-bin words."""
    return otm.pad_count(table_size(n_r) + STASH)


# ----------------------------------------------------------------------------- AES helpers


_ecb = _aes.ecb
_perm = _aes.perm
_md_mmo = _aes.md_mmo


@dataclass(frozen=True)
class _Keys:
    """Public AES keys both parties derive from their two shares (fixed after the inputs)."""

    ids: bytes
    bins: bytes
    code: bytes
    hash: bytes

    @classmethod
    def derive(cls, dst: bytes, share_r: bytes, share_s: bytes) -> _Keys:
        def one(label: bytes) -> bytes:
            h = hashlib.sha256(b"privfin.psi.kkrt.v1/" + label + b"/" + share_r + share_s + dst)
            return h.digest()[:16]

        return cls(ids=one(b"ids"), bins=one(b"bins"), code=one(b"code"), hash=one(b"hash"))


_DIGEST_DOMAIN = np.uint64(0x6B6B72742E696473)  # "kkrt.ids"


def digests(prepared: PreparedIds, key: bytes) -> U8:
    """128-bit digest of every key (``(n, 16)``): its UTF-8 bytes zero-padded to whole
    16-byte blocks, hashed by Merkle–Damgård with the Matyas–Meyer–Oseas compression from
    the IV ``(length, domain)`` with AES under ``key`` (derived from both parties' shares
    after the inputs were fixed, so the inputs cannot be chosen to collide; distinct keys
    collide with probability about ``n_r·n_s / 2^128``). Vectorised
    (:func:`privfin.psi._aes.packed_digests`)."""
    data, ends_u = prepared.packed()
    ends = ends_u.astype(np.int64)
    lengths = np.diff(ends, prepend=0)
    buf = np.frombuffer(data, dtype=np.uint8)
    h = _aes.packed_digests(_ecb(key), buf, ends - lengths, lengths, _DIGEST_DOMAIN)
    return h.view(np.uint8).reshape(len(prepared), 16)


def bin_positions(d: U8, key: bytes, m: int) -> npt.NDArray[np.int64]:
    """``(n, 3)`` bins of each digest: AES under the public bin key, 64-bit words mod ``m``
    (bias below ``m / 2^64``)."""
    n = d.shape[0]
    x = np.empty((n, 2, 16), dtype=np.uint8)
    x[:, 0] = d
    x[:, 1] = d
    x[:, 1, 0] ^= 1
    words = _perm(_ecb(key), x).view(np.uint64).reshape(n, 4)
    return (words[:, :HASHES] % np.uint64(m)).astype(np.int64)


def codes(enc: Any, d: U8, cls: npt.NDArray[np.int64] | int) -> U8:
    """Pseudorandom code words ``C(d, class)`` (``(n, CODE_BYTES)``): AES under the public
    code key of ``d`` with ``4·class + block`` xored into its first word."""
    n = d.shape[0]
    blocks = CODE_BYTES // 16
    x = np.empty((n, blocks, 2), dtype=np.uint64)
    x[...] = np.ascontiguousarray(d).view(np.uint64).reshape(n, 1, 2)
    c = np.asarray(cls, dtype=np.uint64).reshape(-1, 1)
    x[:, :, 0] ^= c * np.uint64(blocks) + np.arange(blocks, dtype=np.uint64).reshape(1, -1)
    return _perm(enc, x).view(np.uint8).reshape(n, CODE_BYTES)


_HASH_DOMAIN = np.uint64(0x6B6B72742E6F7574)  # "kkrt.out"


def out_hash(enc: Any, rows: U8, bins: npt.NDArray[np.int64], nbytes: int) -> U8:
    """The OPRF output ``H(row, bin)`` truncated to ``nbytes``: Merkle–Damgård over the
    row's 16-byte blocks with the Matyas–Meyer–Oseas compression ``x -> π(x) ⊕ x``
    (π: AES under the public hash key), started from the compressed tweak ``(bin, domain)``."""
    n = rows.shape[0]
    v = np.ascontiguousarray(rows).view(np.uint64).reshape(n, -1, 2)
    iv = np.empty((n, 2), dtype=np.uint64)
    iv[:, 0] = np.asarray(bins, dtype=np.uint64)
    iv[:, 1] = _HASH_DOMAIN
    h = _md_mmo(enc, iv, v)
    return np.ascontiguousarray(h.view(np.uint8)[:, :nbytes])


# ----------------------------------------------------------------------------- cuckoo


def _first_claims(
    b: npt.NDArray[np.int64], m: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``np.unique(b, return_index=True)`` for bins ``b`` below ``m``: each distinct bin,
    ascending, and the index of its first claimant. A minimum scattered over a table of ``m``
    (10x faster than the sort at 1M claims) unless the claims are few for the table."""
    if b.size * 16 < m:
        ub, first = np.unique(b, return_index=True)
        return ub.astype(np.int64), first.astype(np.int64)
    claim = np.full(m, b.size, dtype=np.int64)
    np.minimum.at(claim, b, np.arange(b.size, dtype=np.int64))
    ub = np.flatnonzero(claim < b.size)
    return ub, claim[ub]


def cuckoo(
    pos: npt.NDArray[np.int64], m: int, stash: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8], npt.NDArray[np.int64]]:
    """Place every item in one of its bins ``pos[i]`` (``(n, 3)``) of a table of ``m`` bins.

    Greedy passes into free bins, then a random walk run on all homeless items at once
    (each claims a bin, evicting its occupant, which moves to another of its bins). Items
    still homeless after the walk go to the stash.

    Returns ``(table, which, stashed)``: the item in each bin (−1: empty), the hash function
    that put it there, and the stashed items.

    Raises
    ------
    CuckooFailure
        If more than ``stash`` items are homeless.
    """
    n = pos.shape[0]
    table = np.full(m, -1, dtype=np.int64)
    which = np.full(m, -1, dtype=np.int8)
    pending = np.arange(n, dtype=np.int64)
    for _ in range(2):
        for i in range(HASHES):
            if pending.size == 0:
                break
            b = pos[pending, i]
            free = np.flatnonzero(table[b] < 0)
            ub, first = _first_claims(b[free], m)
            table[ub] = pending[free[first]]
            which[ub] = i
            keep = np.ones(pending.size, dtype=bool)
            keep[free[first]] = False
            pending = pending[keep]
    choice = np.asarray(rng.integers(0, HASHES, size=n), dtype=np.int64)
    for _ in range(_WALK_ROUNDS):
        if pending.size == 0:
            break
        c = choice[pending]
        b = pos[pending, c]
        ub, first = _first_claims(b, m)
        old = table[ub]
        old_which = which[ub].astype(np.int64)
        table[ub] = pending[first]
        which[ub] = c[first]
        lose = np.ones(pending.size, dtype=bool)
        lose[first] = False
        losers = pending[lose]
        choice[losers] = (c[lose] + 1 + rng.integers(0, HASHES - 1, size=losers.size)) % HASHES
        moved = old >= 0
        evicted = old[moved]
        choice[evicted] = (
            old_which[moved] + 1 + rng.integers(0, HASHES - 1, size=evicted.size)
        ) % HASHES
        pending = np.concatenate((losers, evicted))
    if pending.size > stash:
        raise CuckooFailure(
            f"cuckoo hashing left {pending.size} items homeless with a stash of {stash} "
            f"(probability <= 2^-{STAT}); rerun the job (fresh hash keys)"
        )
    return table, which, np.sort(pending)


# ----------------------------------------------------------------------------- matching


class Matcher:
    """The receiver's matching, fed the sender's values chunk by chunk as they arrive (the
    whole ``n_s``-row block is never held): finds the sender rows whose value of class ``c``
    (columns ``c·width …``) equals this party's value of a bin of class ``c`` holding an
    item (``item >= 0``).

    This party's values are sorted once by their first 8 bytes, with a bucket index on their
    top bits; each class column of a chunk is looked up there (one offset and a few adjacent
    prefixes per value); candidates are checked on the full value and the class. A value is
    thus compared only with values of its own class, as the false-positive bound of
    :func:`value_bytes` counts.
    The stash class (a few bins) is compared with its bins directly. Falls back to a
    per-class full comparison if two of this party's values share their first 8 bytes
    (probability about ``n_r^2 / 2^65``)."""

    def __init__(
        self, own: U8, item: npt.NDArray[np.int64], cls: npt.NDArray[np.int64], width: int
    ) -> None:
        self.own, self.item, self.cls, self.width = own, item, cls, width
        self.bins = np.flatnonzero(item >= 0)
        mine = np.ascontiguousarray(own[self.bins, :8]).view(np.uint64).reshape(-1)
        self.order = np.argsort(mine)
        self.ms = mine[self.order]
        self.unique_prefix = not bool((self.ms[1:] == self.ms[:-1]).any())
        # bucket index over the sorted prefixes (top ``bits`` bits, ≈ 4 prefixes a bucket):
        # a lookup reads one offset and a few adjacent prefixes instead of binary-searching
        # the whole array (which misses the cache at every step once it outgrows it)
        self.bits = max(1, min(30, int(self.ms.size).bit_length() - 2))
        self.shift = np.uint64(64 - self.bits)
        edges = np.arange(1 << self.bits, dtype=np.uint64) << self.shift
        self.start = np.append(np.searchsorted(self.ms, edges), self.ms.size).astype(np.int64)
        self.stash = {c: self.bins[cls[self.bins] == c] for c in range(HASHES, HASHES + STASH)}
        self._items: list[npt.NDArray[np.int64]] = []
        self._rows: list[npt.NDArray[np.int64]] = []

    def add(self, theirs: U8, offset: int) -> None:
        """Match a chunk of the sender's values (its rows ``offset …``)."""
        own, cls, bins, width = self.own, self.cls, self.bins, self.width
        if bins.size == 0 or theirs.shape[0] == 0:
            return
        for c in range(theirs.shape[1] // width):
            col = theirs[:, c * width : (c + 1) * width]
            few = self.stash.get(c)
            if few is not None and few.size <= 8:  # the stash: compare with its bins directly
                pairs = [(np.flatnonzero((col == own[x]).all(axis=1)), x) for x in few.tolist()]
                rows = np.concatenate([r for r, _ in pairs] + [np.empty(0, np.int64)])
                b = np.concatenate([np.full(r.size, x) for r, x in pairs] + [np.empty(0, np.int64)])
            elif self.unique_prefix:
                q = np.ascontiguousarray(col[:, :8]).view(np.uint64).reshape(-1)
                rows, at = self._lookup(q)
                b = bins[self.order[at]]
            else:
                sel = bins[cls[bins] == c]
                rows = np.flatnonzero(rows_in(col, own[sel]))
                if rows.size == 0:
                    continue
                key = sortable(own[sel])
                srt = np.argsort(key)
                b = sel[srt[np.searchsorted(key[srt], sortable(col[rows]))]]
            ok = (cls[b] == c) & (own[b] == col[rows]).all(axis=1)
            self._items.append(self.item[b[ok]])
            self._rows.append(rows[ok].astype(np.int64) + offset)

    def _lookup(self, q: U64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(i, j)``: the needles ``q[i]`` equal to the sorted prefix ``ms[j]``."""
        ms = self.ms
        bucket = (q >> self.shift).astype(np.int64)
        pos = self.start[bucket]
        end = self.start[bucket + 1]
        active = np.flatnonzero(pos < end)
        pos = pos[active]
        got_i: list[npt.NDArray[np.int64]] = []
        got_j: list[npt.NDArray[np.int64]] = []
        while active.size:
            here = ms[pos]
            want = q[active]
            eq = here == want
            got_i.append(active[eq])
            got_j.append(pos[eq])
            pos = pos + 1
            go_on = (here < want) & (pos < end[active])  # sorted: past ``want`` means absent
            active = active[go_on]
            pos = pos[go_on]
        if not got_i:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(got_i), np.concatenate(got_j)

    def result(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(items, sender rows)`` matched so far, each sorted and distinct."""
        if not self._items:
            none = np.empty(0, dtype=np.int64)
            return none, none
        items = unique_sorted(np.concatenate(self._items))
        return items, unique_sorted(np.concatenate(self._rows))
