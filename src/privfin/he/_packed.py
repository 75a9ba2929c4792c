"""Packed encrypted vectors: many signed fixed-width slots in each ciphertext.

:class:`PackedEncryptedVector` holds one row of ``cols`` slots per ciphertext and tracks a
per-slot bound, so decryption refuses (:class:`~privfin.he.errors.OverflowDetected`) once a slot
could have carried into its neighbour. Built by ``PublicKeyBase.encrypt_packed`` or
:meth:`privfin.he._vector.EncryptedVector.pack`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any, Self

import gmpy2
import numpy as np

from privfin.errors import ConfigError, DecodeError
from privfin.he._encoding import ceil_log2, decode_values, flatten, to_fixed
from privfin.he._raw import (
    RawPrivateKey,
    RawPublicKey,
    check_header,
    join_ciphertexts,
    split_ciphertexts,
)
from privfin.he._util import RandomSource
from privfin.he._wire import MAX_WIRE_BITS, MAX_WIRE_CIPHERTEXTS, WIRE_VERSION, small_int
from privfin.he.errors import OverflowDetected

__all__ = ["Layout", "PackedEncryptedVector", "UnpackedVector", "rows_of"]


class UnpackedVector:
    """Base class of :class:`~privfin.he._vector.EncryptedVector` (one value per ciphertext): lets
    a packed vector recognise one without importing its module, which builds on this one."""

    __slots__ = ()


def _scalar_or_values(other: object) -> bool:
    """Whether ``other`` is a plaintext scalar (a number or a 0-d array)."""
    return isinstance(other, (bool, int, float, np.integer, np.floating)) or (
        isinstance(other, np.ndarray) and other.ndim == 0
    )


class Layout:
    """Slot layout: ``slots`` signed slots of ``slot_bits`` bits in one plaintext."""

    __slots__ = ("slot_bits", "slots")

    def __init__(self, slot_bits: int, slots: int) -> None:
        self.slot_bits = slot_bits
        self.slots = slots

    @classmethod
    def make(cls, pk: RawPublicKey, slot_bits: int, slots: int | None) -> Layout:
        if not 2 <= slot_bits <= pk.capacity_bits:
            raise ConfigError(f"slot_bits must be in [2, {pk.capacity_bits}], got {slot_bits}")
        most = pk.capacity_bits // slot_bits
        if slots is None:
            slots = most
        if not 1 <= slots <= most:
            raise ConfigError(
                f"at most {most} slots of {slot_bits} bits fit this key, got slots={slots}"
            )
        return cls(slot_bits, slots)

    def pack(self, row: Sequence[int]) -> int:
        acc = 0
        w = self.slot_bits
        for v in reversed(row):
            acc = (acc << w) + v
        return acc

    def unpack(self, m: int, cols: int, bound_bits: int) -> list[int]:
        w = self.slot_bits
        mask = (1 << w) - 1
        half = 1 << (w - 1)
        limit = 1 << bound_bits
        out = []
        for _ in range(cols):
            s = m & mask
            if s >= half:
                s -= 1 << w
            if not -limit < s < limit:
                raise OverflowDetected("a packed slot lies outside its bound (overflow or tamper)")
            out.append(s)
            m = (m - s) >> w
        if m != 0:
            raise OverflowDetected("packed plaintext has data beyond its slots (tampered?)")
        return out


def rows_of(values: object, slots: int) -> tuple[np.ndarray[Any, Any], int | None, str]:
    if isinstance(values, np.ndarray) and values.ndim == 2:
        if values.shape[1] > slots:
            raise ConfigError(f"rows of {values.shape[1]} values exceed the {slots} slots")
        arr = values
        flat: int | None = None
        container = "ndarray"
    else:
        nums_container = "ndarray" if isinstance(values, np.ndarray) else "list"
        nums, is_float, _ = flatten(values)
        flat = len(nums)
        rows = max(1, -(-flat // slots))
        cols = min(slots, max(flat, 1))
        arr = np.zeros((rows, cols), dtype=np.float64 if is_float else object)
        arr.reshape(-1)[:flat] = nums
        container = nums_container
    if arr.dtype.kind in "biu" or arr.dtype == object:
        arr = arr.astype(object)
        if any(isinstance(v, float) for v in arr.reshape(-1).tolist()):
            arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise ConfigError(f"cannot pack values of dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ConfigError("cannot encrypt NaN or infinite values")
    return arr, flat, container


class PackedEncryptedVector:
    """Ciphertexts each holding one row of ``cols`` signed fixed-width slots.

    Supports ``+`` (same layout, or plaintext of the same shape), ``*`` by a plaintext scalar,
    :meth:`sum` over rows (column sums in one ciphertext), row indexing and the wire format.
    Each operation updates the per-slot bound; decryption refuses with
    :class:`OverflowDetected` once a slot could have carried into its neighbour.
    """

    __slots__ = (
        "_cts", "bound_bits", "cols", "container", "flat_length", "frac_bits", "fresh",
        "is_float", "layout", "public_key",
    )  # fmt: skip
    __array_ufunc__ = None

    def __init__(
        self,
        public_key: RawPublicKey,
        ciphertexts: Sequence[Any],
        *,
        layout: Layout,
        cols: int,
        frac_bits: int,
        bound_bits: int,
        is_float: bool,
        flat_length: int | None,
        container: str,
        fresh: bool = False,
    ) -> None:
        self.public_key = public_key
        self._cts: list[Any] = list(ciphertexts)
        self.layout = layout
        self.cols = cols
        self.frac_bits = frac_bits
        self.bound_bits = bound_bits
        self.is_float = is_float
        self.flat_length = flat_length
        self.container = container
        self.fresh = fresh

    def __len__(self) -> int:
        return len(self._cts)

    @property
    def slot_bits(self) -> int:
        """Width of each signed slot."""
        return self.layout.slot_bits

    @property
    def ciphertexts(self) -> list[int]:
        """The ciphertexts as Python ints."""
        return [int(c) for c in self._cts]

    def __repr__(self) -> str:
        return (
            f"<PackedEncryptedVector {self.public_key.scheme} rows={len(self)} cols={self.cols} "
            f"slot_bits={self.slot_bits} bound=2**{self.bound_bits}>"
        )

    def _like(self, cts: Sequence[Any], **changes: Any) -> PackedEncryptedVector:
        fields: dict[str, Any] = {
            "layout": self.layout, "cols": self.cols, "frac_bits": self.frac_bits,
            "bound_bits": self.bound_bits, "is_float": self.is_float,
            "flat_length": self.flat_length, "container": self.container, "fresh": False,
        }  # fmt: skip
        fields.update(changes)
        return PackedEncryptedVector(self.public_key, cts, **fields)

    def _same_layout(self, other: PackedEncryptedVector) -> None:
        self.public_key.check_same_key(other.public_key)
        if (
            other.slot_bits != self.slot_bits
            or other.cols != self.cols
            or len(other) != len(self)
            or other.frac_bits != self.frac_bits
        ):
            raise ConfigError("packed vectors differ in layout, shape or frac_bits")

    def __add__(self, other: object) -> PackedEncryptedVector:
        pk = self.public_key
        if isinstance(other, PackedEncryptedVector):
            self._same_layout(other)
            return self._like(
                pk.raw_add(self._cts, other._cts),
                bound_bits=max(self.bound_bits, other.bound_bits) + 1,
                is_float=self.is_float or other.is_float,
            )
        if isinstance(other, UnpackedVector):
            raise ConfigError("cannot add a packed and an unpacked vector; pack() it first")
        arr, _, _ = rows_of(other, self.layout.slots)
        if arr.shape[1] != self.cols and not (
            self.flat_length is not None and arr.shape[0] * arr.shape[1] >= self.flat_length
        ):
            raise ConfigError("plaintext shape does not match the packed vector")
        if arr.shape[0] != len(self):
            raise ConfigError("plaintext shape does not match the packed vector")
        if arr.dtype.kind == "f" and not self.is_float:
            raise ConfigError("add floats to a packed vector encrypted from floats")
        rows = [to_fixed(r, self.frac_bits) for r in arr.tolist()]
        largest = max((abs(m) for row in rows for m in row), default=0)
        bits = max(self.bound_bits, largest.bit_length()) + 1
        packed = [self.layout.pack(r) for r in rows]
        return self._like(pk.raw_add_plain(self._cts, packed), bound_bits=bits)

    __radd__ = __add__

    def __mul__(self, other: object) -> PackedEncryptedVector:
        """Multiply every slot by a plaintext scalar (int, or float for float vectors).

        The bound grows by the exact bit length of the encoded scalar: that length is public.
        """
        if not _scalar_or_values(other):
            raise ConfigError("packed vectors can only be multiplied by a plaintext scalar")
        if isinstance(other, (float, np.floating)):
            if not self.is_float:
                raise ConfigError("multiply an integer packed vector by integers only")
            k = to_fixed([float(other)], self.frac_bits)[0]
            f = 2 * self.frac_bits
        else:
            k = int(other)  # type: ignore[call-overload]
            f = self.frac_bits
        cts = self.public_key.raw_mul(self._cts, [k] * len(self))
        return self._like(cts, bound_bits=self.bound_bits + abs(k).bit_length(), frac_bits=f)

    __rmul__ = __mul__

    def sum(self) -> PackedEncryptedVector:
        """Column sums: one ciphertext whose slots are the sums of the rows' slots."""
        total = self.public_key.raw_sum(self._cts)
        return self._like(
            [gmpy2.mpz(total)],
            bound_bits=self.bound_bits + ceil_log2(len(self)),
            flat_length=self.cols,
        )

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray[Any, Any]) -> Self:
        if isinstance(index, (int, np.integer)):
            cts = [self._cts[int(index)]]
        elif isinstance(index, slice):
            cts = self._cts[index]
        else:
            idx = np.asarray(index)
            if idx.dtype.kind == "b":
                idx = np.flatnonzero(idx)
            cts = [self._cts[int(i)] for i in idx.tolist()]
        return self._like(cts, flat_length=None, container="ndarray", fresh=self.fresh)  # type: ignore[return-value]

    def obfuscate(
        self,
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
        for_owner: bool = False,
    ) -> PackedEncryptedVector:
        """Re-randomise every ciphertext (see :meth:`EncryptedVector.obfuscate`)."""
        obf = self.public_key.raw_obfuscate_for_owner if for_owner else None
        obf = obf or self.public_key.raw_obfuscate
        cts = obf(self._cts, rng=rng, executor=executor, n_jobs=n_jobs)
        return self._like(cts, fresh=True)

    def _decrypt_with(
        self, sk: RawPrivateKey, *, executor: Executor | None, n_jobs: int | None
    ) -> Any:
        if self.bound_bits > self.slot_bits - 1:
            raise OverflowDetected(
                f"slot headroom exhausted: values are bounded by 2**{self.bound_bits} but "
                f"slots hold {self.slot_bits - 1} bits plus sign; decrypt earlier or use wider "
                "slots"
            )
        # |P| = |sum v_j 2**(w j)| < 2**(w (cols - 1) + bound_bits + 1) for in-bound slots.
        plain_bits = self.slot_bits * (self.cols - 1) + self.bound_bits + 1
        ints = sk.decrypt_ints(self._cts, executor=executor, n_jobs=n_jobs, plain_bits=plain_bits)
        rows = [self.layout.unpack(m, self.cols, self.bound_bits) for m in ints]
        if self.flat_length is not None:
            flat = [v for row in rows for v in row][: self.flat_length]
            return decode_values(flat, self.is_float, self.frac_bits, self.container)
        decoded = [decode_values(r, self.is_float, self.frac_bits, "list") for r in rows]
        return np.array(decoded, dtype=np.float64 if self.is_float else object)

    def to_wire(
        self, *, obfuscate: bool = True, rng: RandomSource | None = None, for_owner: bool = False
    ) -> dict[str, Any]:
        """Plain-Python form for the codec; non-fresh vectors are re-randomised first."""
        if for_owner:  # going back to the key's owner: always uniform randomness
            vec = self.obfuscate(rng=rng, for_owner=True)
        else:
            vec = self.obfuscate(rng=rng) if obfuscate and not self.fresh else self
        pk = self.public_key
        return {
            "kind": "PackedEncryptedVector",
            "v": WIRE_VERSION,
            "scheme": pk.scheme,
            "key": bytes.fromhex(pk.fingerprint),
            "count": len(vec),
            "ct": join_ciphertexts(vec._cts, pk.ciphertext_bytes),
            "slot_bits": vec.slot_bits,
            "slots": vec.layout.slots,
            "cols": vec.cols,
            "frac_bits": vec.frac_bits,
            "bound_bits": vec.bound_bits,
            "is_float": vec.is_float,
            "flat_length": -1 if vec.flat_length is None else vec.flat_length,
            "container": vec.container,
        }

    @classmethod
    def from_wire(cls, public_key: RawPublicKey, data: object) -> PackedEncryptedVector:
        """Inverse of :meth:`to_wire`; validates everything (raises :class:`DecodeError`)."""
        d = check_header(public_key, data, "PackedEncryptedVector")
        count = small_int(d, "count", MAX_WIRE_CIPHERTEXTS)
        cts = split_ciphertexts(public_key, d.get("ct"), count)
        try:
            layout = Layout.make(
                public_key,
                small_int(d, "slot_bits", MAX_WIRE_BITS),
                small_int(d, "slots", MAX_WIRE_BITS),
            )
        except ConfigError as exc:
            raise DecodeError(f"bad packing layout: {exc}") from None
        cols = small_int(d, "cols", layout.slots)
        flat_raw = d.get("flat_length")
        if isinstance(flat_raw, bool) or not isinstance(flat_raw, int):
            raise DecodeError("field 'flat_length' must be an int")
        flat = None if flat_raw == -1 else flat_raw
        if flat is not None and not 0 <= flat <= count * cols:
            raise DecodeError("field 'flat_length' is out of range")
        is_float = d.get("is_float")
        container = d.get("container")
        if not isinstance(is_float, bool) or container not in ("list", "ndarray"):
            raise DecodeError("fields 'is_float'/'container' are invalid")
        return cls(
            public_key, cts, layout=layout, cols=cols,
            frac_bits=small_int(d, "frac_bits", MAX_WIRE_BITS),
            bound_bits=small_int(d, "bound_bits", MAX_WIRE_BITS), is_float=is_float,
            flat_length=flat, container=str(container), fresh=False,
        )  # fmt: skip
