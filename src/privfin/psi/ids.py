"""Identifier preparation: the declared normalisation and duplicate rules.

Every party applies the *same* declared rules (they are job parameters, checked in the
handshake), so equal customers map to equal keys:

``normalize``
    ``"exact"``: the id as given (Python ``str`` equality; what ``set`` intersection does).
    ``"trim"``: Unicode NFC, then leading and trailing whitespace removed.
    ``"trim_casefold"``: ``"trim"``, then Unicode case folding (``"Ab "`` == ``"aB"``).
    Under ``"trim"`` and ``"trim_casefold"`` ids that become empty are dropped.
    Missing values (``None``, NaN) are always dropped.
``duplicates``
    ``"first"``: several rows with the same key keep the first; later rows are dropped and
    counted. ``"error"``: a repeated key is a :class:`~privfin.errors.ConfigError`.

The result keeps, for each distinct key, the row of the input it came from and the original
id string, so outputs can return the party's own rows.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import operator
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError
from privfin.psi import _aes

__all__ = [
    "DUPLICATE_RULES",
    "NORMALIZERS",
    "KeyView",
    "PreparedIds",
    "normalizer",
    "prepare_ids",
]

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
#: Longest keys :meth:`PreparedIds.in_key_order` sorts as fixed-width byte strings.
SORT_WIDTH = 64
#: Ids normalised and deduplicated per step of :meth:`PreparedIds.add`.
ADD_STEP = 1 << 18


def _exact(value: str) -> str:
    return value


def _trim(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def _trim_casefold(value: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).strip().casefold())


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "exact": _exact,
    "trim": _trim,
    "trim_casefold": _trim_casefold,
}
DUPLICATE_RULES = ("first", "error")


def normalizer(rule: str) -> Callable[[str], str]:
    """The normalisation function of a declared rule."""
    try:
        return NORMALIZERS[rule]
    except KeyError:
        raise ConfigError(
            f"unknown id normalisation {rule!r}; use one of {', '.join(NORMALIZERS)}"
        ) from None


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class KeyView(Sequence[str]):
    """Read-only sequence of a :class:`PreparedIds`' keys (decoded from its byte buffer on
    access; a slice gives a list)."""

    __slots__ = ("_p",)

    def __init__(self, prepared: PreparedIds) -> None:
        self._p = prepared

    def __len__(self) -> int:
        return len(self._p)

    @overload
    def __getitem__(self, i: SupportsIndex) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: SupportsIndex | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._p.key(j) for j in range(*i.indices(len(self._p)))]
        return self._p.key(operator.index(i))

    def __iter__(self) -> Iterator[str]:
        p = self._p
        return (p.key(j) for j in range(len(p)))


class OriginalView(KeyView):
    """Read-only sequence of the ids as the input spelled them (aligned with the keys)."""

    __slots__ = ()

    @overload
    def __getitem__(self, i: SupportsIndex) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: SupportsIndex | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._p.original(j) for j in range(*i.indices(len(self._p)))]
        return self._p.original(operator.index(i))

    def __iter__(self) -> Iterator[str]:
        p = self._p
        return (p.original(j) for j in range(len(p)))


#: The dedup hash's public AES key. An encryptor is made per call: a ``cryptography`` cipher
#: context must not be used by two threads at once (parties and pool workers are threads).
_DEDUP_KEY = hashlib.sha256(b"privfin.psi.ids.dedup.v2").digest()[:16]
_DEDUP_DOMAIN = np.uint64(0x6964732E64656475)  # "ids.dedu"
#: ASCII characters ``str.strip()`` removes (``str.isspace``).
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def _hash64(buf: npt.NDArray[np.uint8], starts: I64, ends: I64) -> U64:
    """64-bit hash of each key ``buf[starts[i]:ends[i]]`` (AES Merkle–Damgård under a fixed
    public key, vectorised; a dedup index only: equal hashes are compared in full)."""
    if starts.size == 0:
        return np.empty(0, dtype=np.uint64)
    h = _aes.packed_digests(_aes.ecb(_DEDUP_KEY), buf, starts, ends - starts, _DEDUP_DOMAIN)
    return np.ascontiguousarray(h[:, 0])


def _pack(items: Sequence[bytes]) -> tuple[npt.NDArray[np.uint8], I64, I64]:
    """``items`` as one byte array with start and end offsets."""
    lens = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    ends = np.cumsum(lens)
    buf = np.frombuffer(b"".join(items), dtype=np.uint8)
    return buf, ends - lens, ends


class IdLines(Sequence[str]):
    """A chunk of ids that are lines of a plain CSV file (:mod:`privfin.data.csvlines`):
    ``data`` holds them separated by single newlines, id ``j`` being
    ``data[starts[j]:ends[j]]`` (UTF-8). As a sequence it gives the ``str`` ids the file's
    text split at its newlines gives; :meth:`PreparedIds.add` reads ASCII ones as bytes."""

    def __init__(self, data: bytes, starts: I64, ends: I64) -> None:
        if starts.shape != ends.shape or starts.ndim != 1:
            raise ValueError("one start and one end per line")
        if starts.size and (int(starts.min()) < 0 or int(ends.max()) > len(data)):
            raise ValueError("a line is outside the data")
        self.data, self.starts, self.ends = data, starts, ends
        self._strs: list[str] | None = None

    def strings(self) -> list[str]:
        """The ids as ``str`` (made once, on first use)."""
        if self._strs is None:
            st, en, n = self.starts, self.ends, len(self)
            if n and st[0] == 0 and en[-1] == len(self.data) and (st[1:] == en[:-1] + 1).all():
                self._strs = self.data.decode("utf-8").split("\n")  # the lines, back to back
            else:
                pairs = zip(st.tolist(), en.tolist(), strict=True)
                self._strs = [self.data[a:b].decode("utf-8") for a, b in pairs]
        return self._strs

    def __len__(self) -> int:
        return int(self.starts.size)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        return self.strings()[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.strings())


class PreparedIds:
    """A party's distinct keys, in first-occurrence order, with where each came from.

    Memory: the keys live in one byte buffer (UTF-8, concatenated) with 8-byte end offsets,
    their input rows in an int64 array, and a sorted 64-bit hash index for deduplication (8 +
    8 bytes per key): about ``len(key) + 32`` bytes per distinct key, no Python object per
    item. Ids that normalisation changed keep their original spelling in a dict (none under
    ``"exact"``).

    Attributes
    ----------
    keys:
        Normalised, distinct ids (a read-only sequence of ``str``).
    originals:
        The id as the input spelled it (first occurrence), aligned with ``keys``.
    rows:
        Input row of each key (0-based, ``int64`` array), aligned with ``keys``.
    n_input, n_missing, n_duplicates:
        Input rows, rows dropped as missing/empty, rows dropped as duplicates.
    """

    def __init__(self, normalize: str = "exact", duplicates: str = "first") -> None:
        self.normalize = normalize
        self.duplicates = duplicates
        self.n_input = 0
        self.n_missing = 0
        self.n_duplicates = 0
        self._blob = bytearray()
        self._ends = array("q")
        self._rows = array("q")
        self._orig: dict[int, str] = {}
        # the keys' 64-bit hashes: sorted (for the duplicate check of every chunk) and by
        # position; which position holds a hash (a sort of the latter) is built only when a
        # key is looked up (_positions), rarely: a sort is a tenth of an argsort
        self._hsorted: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self._hall: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self._hindex: tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]] | None = None

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._ends)

    @property
    def keys(self) -> KeyView:
        return KeyView(self)

    @property
    def originals(self) -> OriginalView:
        return OriginalView(self)

    @property
    def rows(self) -> npt.NDArray[np.int64]:
        if not self._rows:
            return np.empty(0, dtype=np.int64)
        return np.frombuffer(self._rows, dtype=np.int64)

    def _span(self, i: int) -> tuple[int, int]:
        n = len(self._ends)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("key index out of range")
        return (self._ends[i - 1] if i else 0), self._ends[i]

    def key_bytes(self, i: int) -> bytes:
        """UTF-8 bytes of key ``i``."""
        a, b = self._span(i)
        return bytes(self._blob[a:b])

    def key(self, i: int) -> str:
        """Key ``i`` as a string."""
        a, b = self._span(i)
        return self._blob[a:b].decode("utf-8", "surrogatepass")

    def original(self, i: int) -> str:
        """The input spelling of key ``i``."""
        got = self._orig.get(i if i >= 0 else i + len(self))
        return self.key(i) if got is None else got

    def spellings(self, positions: Sequence[int], keys: Sequence[str]) -> list[str]:
        """Input spellings of the keys at ``positions`` (``keys`` are those keys: an id that
        normalisation did not change shares its string object with its key)."""
        orig = self._orig
        if not orig:
            return list(keys)
        return [orig.get(i, k) for i, k in zip(positions, keys, strict=True)]

    def packed(
        self, positions: npt.NDArray[np.int64] | None = None, a: int = 0, b: int | None = None
    ) -> tuple[bytes, U64]:
        """Keys at ``positions`` (or keys ``a:b`` in order if None) as one buffer and their
        end offsets in it: the compact form bulk hashing takes (no Python object per key)."""
        ends = np.frombuffer(self._ends, dtype=np.int64) if self._ends else np.empty(0, np.int64)
        if positions is None:
            b = len(ends) if b is None else b
            if b <= a:
                return b"", np.empty(0, dtype=np.uint64)
            lo = int(ends[a - 1]) if a else 0
            data = bytes(self._blob[lo : int(ends[b - 1])])
            return data, (ends[a:b] - lo).astype(np.uint64)
        starts = np.concatenate((np.zeros(1, np.int64), ends[:-1]))[positions]
        stops = ends[positions]
        mv = memoryview(self._blob)
        data = b"".join([mv[x:y] for x, y in zip(starts.tolist(), stops.tolist(), strict=True)])
        return data, np.cumsum(stops - starts).astype(np.uint64)

    def in_key_order(
        self, positions: npt.NDArray[np.int64], *, with_keys: bool = True
    ) -> tuple[I64, list[str]]:
        """``positions`` sorted by their keys' UTF-8 bytes (code point order), and those keys
        (an empty list if not ``with_keys``).

        Vectorised when the keys are at most :data:`SORT_WIDTH` bytes: they are sorted as
        zero-padded fixed-width byte strings with ties broken by length (a key that is another
        plus trailing NUL bytes sorts after it), which is the byte order."""
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size == 0:
            return pos, []
        if not self._ends:
            raise IndexError("key index out of range")
        ends = np.frombuffer(self._ends, dtype=np.int64)
        if int(pos.min()) < 0 or int(pos.max()) >= ends.size:
            raise IndexError("key index out of range")
        stops = ends[pos]
        starts = stops - np.diff(ends, prepend=0)[pos]
        lens = stops - starts
        width = int(lens.max())
        if width > SORT_WIDTH:
            kb = [self.key_bytes(int(i)) for i in pos.tolist()]
            order = sorted(range(pos.size), key=kb.__getitem__)
            out = pos[np.asarray(order, dtype=np.int64)]
            return out, [self.key(int(i)) for i in out.tolist()] if with_keys else []
        blob = np.frombuffer(self._blob, dtype=np.uint8)
        try:
            ext = np.zeros(blob.size + max(width, 1), dtype=np.uint8)
            ext[: blob.size] = blob
        finally:
            del blob  # release the bytearray's buffer (it must stay resizable)
        words = -(-max(width, 1) // 8)
        rows = np.lib.stride_tricks.sliding_window_view(ext, max(width, 1))[starts]
        rows &= np.where(np.arange(max(width, 1)) < lens.reshape(-1, 1), 0xFF, 0).astype(np.uint8)
        # the zero-padded keys as big-endian 64-bit words: comparing them in turn is comparing
        # the bytes (a sort on integers: a quarter of the time of one on byte strings)
        padded = np.zeros((pos.size, 8 * words), np.uint8)
        padded[:, : max(width, 1)] = rows
        be = padded.view(">u8").astype(np.uint64)
        by_key = np.lexsort((lens, *(be[:, k] for k in reversed(range(words)))))
        out = pos[by_key]
        if not with_keys:
            return out, []
        lo, hi = starts[by_key], stops[by_key]
        total = int(lens.sum())
        gather = np.repeat(lo - (np.cumsum(hi - lo) - (hi - lo)), hi - lo)
        data = ext[gather + np.arange(total, dtype=np.int64)].tobytes()
        cut = np.concatenate(([0], np.cumsum(hi - lo))).tolist()
        if data.isascii():  # byte offsets are character offsets
            text = data.decode("ascii")
            keys = [text[a:b] for a, b in itertools.pairwise(cut)]
        else:
            keys = [data[a:b].decode("utf-8", "surrogatepass") for a, b in itertools.pairwise(cut)]
        return out, keys

    def index_of(self, key: str) -> int | None:
        """Position of ``key`` in :attr:`keys`, or None."""
        data = key.encode("utf-8", "surrogatepass")
        return self._find(int(_hash64(*_pack([data]))[0]), data)

    def _positions(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
        """``(sorted hashes, the position of each)``, built on first use after a change."""
        if self._hindex is None:
            pos = np.argsort(self._hall, kind="stable")
            self._hindex = (self._hall[pos], pos)
        return self._hindex

    # ------------------------------------------------------------------ building
    def add(self, values: Iterable[object]) -> None:
        """Add a chunk of raw ids (rows continue from the previous chunk); a long chunk is
        taken :data:`ADD_STEP` ids at a time, so transient Python objects stay bounded."""
        if isinstance(values, IdLines) and self._add_lines(values):
            return
        it = iter(values)
        while True:
            part = list(itertools.islice(it, ADD_STEP))
            if not part:
                return
            self._add(part)

    def _add(self, values: list[object]) -> None:
        if self._add_ascii(values):
            return
        norm = normalizer(self.normalize)
        drop_empty = self.normalize != "exact"
        enc: list[bytes] = []
        rows: list[int] = []
        changed: dict[int, str] = {}
        row = self.n_input
        for value in values:
            row += 1
            if _is_missing(value):
                self.n_missing += 1
                continue
            original = value if isinstance(value, str) else str(value)
            key = norm(original)
            if drop_empty and not key:
                self.n_missing += 1
                continue
            if key is not original and key != original:
                changed[len(enc)] = original
            enc.append(key.encode("utf-8", "surrogatepass"))
            rows.append(row - 1)
        self.n_input = row
        if enc:
            self._append_unique(*_pack(enc), np.asarray(rows, dtype=np.int64), changed)

    def _add_ascii(self, values: list[object]) -> bool:
        """The vectorised path for a chunk of ASCII ``str`` ids (the common case): no Python
        object per id. On ASCII, NFC is the identity, ``strip`` removes the characters of
        :data:`_ASCII_SPACE` and ``casefold`` is ``lower``, so the keys are those of the
        per-id path. Returns False (nothing done) for any other chunk."""
        if not values:
            return False
        strs: list[str] = values  # type: ignore[assignment]
        try:
            joined = "".join(strs)  # refuses anything but str: None, NaN, numbers
        except TypeError:
            return False
        if not joined.isascii():
            return False
        n = len(strs)
        lens = np.fromiter(map(len, strs), dtype=np.int64, count=n)
        if int(lens.sum()) != len(joined):
            return False
        buf = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        del joined
        ends = np.cumsum(lens)
        return self._add_ascii_buf(buf, ends - lens, ends, lens, strs)

    def _add_lines(self, lines: IdLines) -> bool:
        """:meth:`_add_ascii` straight from the bytes of a plain CSV's lines (no ``str`` per
        id: 0.15-0.2 s less per 1M ids); False (nothing done) unless they are ASCII."""
        buf = np.frombuffer(lines.data, dtype=np.uint8)
        if not len(lines) or (buf.size and int(buf.max()) >= 0x80):
            return False
        return self._add_ascii_buf(buf, lines.starts, lines.ends, lines.ends - lines.starts, lines)

    def _add_ascii_buf(
        self,
        buf: npt.NDArray[np.uint8],
        starts: I64,
        ends: I64,
        lens: I64,
        strs: Sequence[str],
    ) -> bool:
        """The ASCII ids ``buf[starts[j]:ends[j]]`` (``strs[j]`` as ``str``)."""
        n = len(strs)
        changed = np.zeros(n, dtype=bool)
        if self.normalize != "exact":
            full = np.flatnonzero(lens)
            edge = full[_ASCII_SPACE[buf[starts[full]]] | _ASCII_SPACE[buf[ends[full] - 1]]]
            if edge.size:  # leading or trailing whitespace (rare): strip those ids in Python
                fixed = list(strs)
                for j in edge.tolist():
                    fixed[j] = strs[j].strip()
                lens = np.fromiter(map(len, fixed), dtype=np.int64, count=n)
                buf = np.frombuffer("".join(fixed).encode("ascii"), dtype=np.uint8)
                ends = np.cumsum(lens)
                starts = ends - lens
                changed[edge] = True
            if self.normalize == "trim_casefold":
                upper = (buf >= 65) & (buf <= 90)
                if upper.any():
                    count = np.concatenate(([0], np.cumsum(upper)))
                    changed |= count[ends] > count[starts]
                    buf = buf + (upper.view(np.uint8) << np.uint8(5))
        rows = np.arange(self.n_input, self.n_input + n, dtype=np.int64)
        self.n_input += n
        if self.normalize != "exact":
            present = lens > 0
            self.n_missing += int(n - present.sum())
            if not present.all():
                starts, ends, rows = starts[present], ends[present], rows[present]
                at = np.flatnonzero(present)
                changed = changed[present]
            else:
                at = np.arange(n)
        else:
            at = np.arange(n)
        orig = {int(j): strs[int(at[j])] for j in np.flatnonzero(changed).tolist()}
        if starts.size:
            self._append_unique(buf, starts, ends, rows, orig)
        return True

    def _append_unique(
        self,
        buf: npt.NDArray[np.uint8],
        starts: I64,
        ends: I64,
        rows: I64,
        changed: dict[int, str],
    ) -> None:
        """Append the keys ``buf[starts[j]:ends[j]]`` (input rows ``rows``; ``changed``: the
        input spelling of those normalisation changed) that are not already present."""
        n = starts.size
        h = _hash64(buf, starts, ends)
        hs = np.sort(h)
        # candidates: a hash seen twice in this chunk, or already in the index
        suspect = hs[1:][hs[1:] == hs[:-1]]
        if self._hsorted.size:
            at = np.minimum(np.searchsorted(self._hsorted, hs), self._hsorted.size - 1)
            suspect = np.concatenate((suspect, hs[self._hsorted[at] == hs]))
        repeat = np.isin(h, suspect) if suspect.size else np.zeros(n, dtype=bool)
        keep = np.ones(n, dtype=bool)
        if repeat.any():

            def key(j: int) -> bytes:
                return buf[starts[j] : ends[j]].tobytes()

            first_in_chunk: dict[int, list[int]] = {}
            for j in np.flatnonzero(repeat).tolist():
                hv = int(h[j])
                kj = key(j)
                earlier = [e for e in first_in_chunk.get(hv, []) if key(e) == kj]
                existing = None if earlier else self._find(hv, kj)
                if earlier or existing is not None:
                    prev_row = int(rows[earlier[0]]) if earlier else int(self._rows[existing or 0])
                    if self.duplicates == "error":
                        raise ConfigError(
                            f"id in row {int(rows[j])} repeats the id of row {prev_row} "
                            "(duplicates='error'); deduplicate the input or use "
                            "duplicates='first'"
                        )
                    keep[j] = False
                    self.n_duplicates += 1
                else:
                    first_in_chunk.setdefault(hv, []).append(j)
        base = len(self._ends)
        end = self._ends[-1] if self._ends else 0
        kept = np.flatnonzero(keep)
        lens = ends[kept] - starts[kept]
        total = int(lens.sum())
        if kept.size == n and n and int(ends[-1] - starts[0]) == total:
            data = buf[int(starts[0]) : int(ends[-1])]  # contiguous: no gather
        else:
            offset = np.cumsum(lens) - lens
            data = buf[np.repeat(starts[kept] - offset, lens) + np.arange(total, dtype=np.int64)]
        self._blob += data.tobytes()
        self._ends.frombytes((end + np.cumsum(lens)).astype(np.int64).tobytes())
        self._rows.frombytes(rows[kept].astype(np.int64).tobytes())
        if changed:
            new_of = np.cumsum(keep) - 1
            for j, original in changed.items():
                if keep[j]:
                    self._orig[base + int(new_of[j])] = original
        hk = hs if kept.size == n else h[keep]
        merged = np.concatenate((self._hsorted, hk))
        merged.sort()
        self._hsorted = merged
        self._hall = np.concatenate((self._hall, h if kept.size == n else hk))
        self._hindex = None

    def _find(self, h: int, data: bytes) -> int | None:
        hashes, positions = self._positions()
        lo = int(np.searchsorted(hashes, np.uint64(h), side="left"))
        hi = int(np.searchsorted(hashes, np.uint64(h), side="right"))
        for j in range(lo, hi):
            pos = int(positions[j])
            if self.key_bytes(pos) == data:
                return pos
        return None

    def subset(self, positions: Iterable[int]) -> PreparedIds:
        """A new :class:`PreparedIds` holding the keys at ``positions`` (in that order), with
        their rows and spellings; counters are carried over."""
        fresh = PreparedIds(self.normalize, self.duplicates)
        enc: list[bytes] = []
        rows: list[int] = []
        changed: dict[int, str] = {}
        for i in positions:
            if i in self._orig:
                changed[len(enc)] = self._orig[i]
            enc.append(self.key_bytes(i))
            rows.append(int(self._rows[i]))
        if enc:
            fresh._append_unique(*_pack(enc), np.asarray(rows, dtype=np.int64), changed)
        fresh.n_input, fresh.n_missing = self.n_input, self.n_missing
        fresh.n_duplicates = self.n_duplicates
        return fresh

    def __repr__(self) -> str:
        return (
            f"PreparedIds(n={len(self)}, normalize={self.normalize!r}, "
            f"duplicates={self.duplicates!r}, n_input={self.n_input})"
        )


def prepare_ids(
    values: Iterable[object] | Iterable[Iterable[object]],
    normalize: str = "exact",
    duplicates: str = "first",
    *,
    chunked: bool = False,
) -> PreparedIds:
    """Apply the declared rules to ``values`` (or to an iterable of chunks if ``chunked``)."""
    normalizer(normalize)
    if duplicates not in DUPLICATE_RULES:
        raise ConfigError(
            f"unknown duplicate rule {duplicates!r}; use one of {', '.join(DUPLICATE_RULES)}"
        )
    prepared = PreparedIds(normalize=normalize, duplicates=duplicates)
    if chunked:
        for chunk in values:
            prepared.add(chunk)  # type: ignore[arg-type]
    else:
        prepared.add(values)
    return prepared
