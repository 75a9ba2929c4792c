"""The user-facing secret-shared tensor: numpy-like operators on additive shares.

A :class:`SharedTensor` is a handle on one party's share of a secret array in Z_2^64, with the
array's public shape and its fixed-point scale (``frac_bits``: 0 for integers and bits, the
session's ``f`` for reals). Operators mirror numpy: ``+ - * @``, ``sum``, ``mean``, ``T``,
indexing, ``reshape``. Every operation is run by every party of the job in lockstep; at parties
that hold no share (a data-only, result-only or dealer party) the handle carries ``share=None``
and only tracks the shape.

Security property: no operator reveals anything. Multiplications open only Beaver-masked
values (uniform); truncations open only values masked by a uniform ``r``. Values leave the
computing parties only through :meth:`SharedTensor.reveal`, to result parties.

A tensor runs its interactive steps through its session, which it knows only as a
:class:`TensorSession` (implemented by :class:`privfin.mpc.session.Session`): this module does
not import the session or :mod:`privfin.mpc.functions`, both of which build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from privfin.mpc.ring import U64, encode_fixed, ring_matmul, ring_ops, to_ring

if TYPE_CHECKING:
    from privfin.mpc.protocol import Engine
    from privfin.runtime import Context

__all__ = [
    "PlainTensor",
    "SharedTensor",
    "TensorSession",
    "concatenate",
    "matmul_shape",
    "stack",
]


class TensorSession(Protocol):
    """What a :class:`SharedTensor` (and the functions on tensors) need of its session: the
    party's context, the fixed-point scale, the protocol engine and the interactive steps.
    :class:`privfin.mpc.session.Session` is the implementation; see it for each step's
    rounds and what it opens."""

    @property
    def ctx(self) -> Context: ...

    @property
    def frac_bits(self) -> int: ...

    @property
    def engine(self) -> Engine: ...

    def public(self, value: npt.ArrayLike, *, fixed: bool = True) -> SharedTensor: ...

    def reveal(self, t: SharedTensor, to: str, label: str = "") -> npt.NDArray[Any] | None: ...

    def truncate(self, t: SharedTensor, bits: int) -> SharedTensor: ...

    def mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor: ...

    def matmul(
        self, x: SharedTensor, y: SharedTensor, *, truncate: bool = True
    ) -> SharedTensor: ...

    def divide(self, x: SharedTensor, y: SharedTensor) -> SharedTensor: ...

    def msb(self, x: SharedTensor) -> SharedTensor: ...

    def msb_select(
        self, x: SharedTensor, y: SharedTensor, *, window: int | None = None
    ) -> tuple[SharedTensor, SharedTensor]: ...

    def msb_select_knots(
        self, x: SharedTensor, knots: npt.ArrayLike, y: SharedTensor, *, low: int, inner_low: int
    ) -> tuple[SharedTensor, SharedTensor]: ...

    def msb_mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor: ...


def matmul_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Shape of ``a @ b`` for 1-D and 2-D operands (numpy semantics)."""
    if not (1 <= len(a) <= 2 and 1 <= len(b) <= 2):
        raise ValueError("matmul supports 1-D and 2-D operands")
    k_a = a[-1]
    k_b = b[0]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {tuple(a)} and {tuple(b)} are not aligned")
    return tuple(a[:-1]) + tuple(b[1:])


def _shape_of(shape: Sequence[int], key: Any) -> tuple[int, ...]:
    return tuple(np.broadcast_to(np.zeros((), dtype=bool), tuple(shape))[key].shape)


class SharedTensor:
    """One party's handle on a secret-shared array.

    Attributes
    ----------
    share:
        This party's share (uint64), or ``None`` at a party that is not a computing party.
    shape:
        The public shape.
    frac_bits:
        Fixed-point scale of the encoded values (0 for integers and 0/1 bits).
    """

    __slots__ = ("frac_bits", "session", "shape", "share")
    __array_priority__ = 1000  # make ``ndarray * SharedTensor`` call our reflected operators

    def __init__(
        self, session: TensorSession, share: U64 | None, shape: Sequence[int], frac_bits: int
    ) -> None:
        self.session = session
        self.share = None if share is None else np.asarray(share, dtype=np.uint64)
        self.shape = tuple(int(d) for d in shape)
        self.frac_bits = frac_bits

    # ------------------------------------------------------------------------- metadata

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        kind = "bits/int" if self.frac_bits == 0 else f"fixed<{self.frac_bits}>"
        return f"SharedTensor(shape={self.shape}, {kind}, party={self.session.ctx.party!r})"

    def _new(self, share: U64 | None, shape: Sequence[int], frac_bits: int) -> SharedTensor:
        return SharedTensor(self.session, share, shape, frac_bits)

    def _lift(self, other: Any) -> SharedTensor:
        if isinstance(other, SharedTensor):
            return other
        return self.session.public(other, fixed=self.frac_bits > 0)

    @ring_ops
    def rescale(self, frac_bits: int) -> SharedTensor:
        """The same values at a higher scale (local: multiply by ``2**(frac_bits - f)``)."""
        if frac_bits == self.frac_bits:
            return self
        if frac_bits < self.frac_bits:
            return self.session.truncate(self, self.frac_bits - frac_bits)
        factor = np.uint64(1) << np.uint64(frac_bits - self.frac_bits)
        share = None if self.share is None else self.share * factor
        return self._new(share, self.shape, frac_bits)

    # ------------------------------------------------------------------------ linear ops

    @ring_ops
    def __add__(self, other: Any) -> SharedTensor:
        o = self._lift(other)
        f = max(self.frac_bits, o.frac_bits)
        a, b = self.rescale(f), o.rescale(f)
        shape = np.broadcast_shapes(a.shape, b.shape)
        share = None if a.share is None or b.share is None else a.share + b.share
        return self._new(share, shape, f)

    __radd__ = __add__

    @ring_ops
    def __neg__(self) -> SharedTensor:
        return self._new(None if self.share is None else -self.share, self.shape, self.frac_bits)

    def __sub__(self, other: Any) -> SharedTensor:
        return self + (-self._lift(other))

    def __rsub__(self, other: Any) -> SharedTensor:
        return (-self).__add__(other)

    # -------------------------------------------------------------------- multiplication

    @ring_ops
    def __mul__(self, other: Any) -> SharedTensor:
        s = self.session
        if isinstance(other, SharedTensor):
            return s.mul(self, other)
        value = np.asarray(other)
        if np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_:
            shape = np.broadcast_shapes(self.shape, value.shape)
            share = None if self.share is None else self.share * to_ring(value)
            return self._new(share, shape, self.frac_bits)
        # A public scalar |c| < 1 is encoded with up to f extra bits (the product's magnitude
        # bound stays that of x * 1), so e.g. a mean's 1/n keeps full relative precision.
        bits = s.frac_bits
        if value.ndim == 0 and 0 < abs(float(value)) < 1:
            bits += min(s.frac_bits, int(-np.floor(np.log2(abs(float(value))))))
        enc = encode_fixed(value, bits)
        shape = np.broadcast_shapes(self.shape, value.shape)
        share = None if self.share is None else self.share * enc
        raw = self._new(share, shape, self.frac_bits + bits)
        if self.frac_bits > 0:
            return s.truncate(raw, bits)
        return s.truncate(raw, bits - s.frac_bits) if bits > s.frac_bits else raw

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> SharedTensor:
        if isinstance(other, SharedTensor):
            return self.session.divide(self, other)
        return self * (1.0 / np.asarray(other, dtype=np.float64))

    @ring_ops
    def __matmul__(self, other: Any) -> SharedTensor:
        s = self.session
        if isinstance(other, SharedTensor):
            return s.matmul(self, other)
        enc = encode_fixed(np.asarray(other, dtype=np.float64), s.frac_bits)
        shape = matmul_shape(self.shape, enc.shape)
        share = None if self.share is None else ring_matmul(self.share, enc)
        raw = self._new(share, shape, self.frac_bits + s.frac_bits)
        return s.truncate(raw, s.frac_bits) if self.frac_bits > 0 else raw

    def __rmatmul__(self, other: Any) -> SharedTensor:
        return (self.T @ np.asarray(other, dtype=np.float64).T).T

    def square(self) -> SharedTensor:
        """``self * self``."""
        return self.session.mul(self, self)

    # ---------------------------------------------------------------------- reductions

    @ring_ops
    def sum(self, axis: int | None = None) -> SharedTensor:
        """Sum over ``axis`` (all elements if ``None``): local, exact."""
        shape = np.zeros(self.shape, dtype=bool).sum(axis=axis).shape
        share = None if self.share is None else self.share.sum(axis=axis, dtype=np.uint64)
        return self._new(None if share is None else np.asarray(share), shape, self.frac_bits)

    def mean(self, axis: int | None = None) -> SharedTensor:
        """Mean over ``axis``: the sum times the public ``1/n`` (one truncation)."""
        n = self.size if axis is None else self.shape[axis]
        total = self.sum(axis)
        if total.frac_bits == 0:
            total = total.rescale(self.session.frac_bits)
        return total * (1.0 / n)

    # ------------------------------------------------------------------------- reshaping

    @property
    def T(self) -> SharedTensor:
        share = None if self.share is None else np.ascontiguousarray(self.share.T)
        return self._new(share, self.shape[::-1], self.frac_bits)

    def reshape(self, *shape: int) -> SharedTensor:
        new = np.zeros(self.shape, dtype=bool).reshape(*shape).shape
        share = None if self.share is None else self.share.reshape(new)
        return self._new(share, new, self.frac_bits)

    def ravel(self) -> SharedTensor:
        return self.reshape(-1)

    def __getitem__(self, key: Any) -> SharedTensor:
        shape = _shape_of(self.shape, key)
        share = None if self.share is None else np.asarray(self.share[key])
        return self._new(share, shape, self.frac_bits)

    @ring_ops
    def broadcast_to(self, shape: Sequence[int]) -> SharedTensor:
        share = None if self.share is None else np.broadcast_to(self.share, tuple(shape)).copy()
        return self._new(share, tuple(shape), self.frac_bits)

    # --------------------------------------------------------------------------- output

    def reveal(self, to: str, label: str = "") -> npt.NDArray[Any] | None:
        """Reconstruct at result party ``to`` (float64 if fixed-point, int64 otherwise); every
        other party gets ``None``. Raises :class:`~privfin.mpc.roles.RevealDenied` if ``to``
        is not a result party."""
        return self.session.reveal(self, to, label=label)


def concatenate(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Concatenate shared tensors (local). Scales are aligned to the largest."""
    if not tensors:
        raise ValueError("nothing to concatenate")
    f = max(t.frac_bits for t in tensors)
    ts = [t.rescale(f) for t in tensors]
    shape = np.concatenate([np.zeros(t.shape, dtype=bool) for t in ts], axis=axis).shape
    shares = [t.share for t in ts if t.share is not None]
    share: U64 | None = None
    if len(shares) == len(ts):
        share = np.concatenate(shares, axis=axis)
    return SharedTensor(ts[0].session, share, shape, f)


def stack(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Stack shared tensors along a new axis (local)."""
    return concatenate([t.reshape(1, *t.shape) if axis == 0 else t for t in tensors], axis=axis)


class PlainTensor:
    """A 2-D fixed-point matrix one computing party (``owner``) holds in plaintext and never
    shares: ``value`` (ring-encoded) at the owner, ``None`` elsewhere; the shape is public.
    Products with shared operands go through
    :meth:`privfin.mpc.session.Session.plain_matmul` (OT-based, two computing parties)."""

    __slots__ = ("bits", "frac_bits", "owner", "shape", "value")

    def __init__(
        self,
        owner: str,
        value: U64 | None,
        shape: Sequence[int],
        frac_bits: int,
        bits: int | None = None,
    ) -> None:
        self.owner = owner
        self.value = None if value is None else np.asarray(value, dtype=np.uint64)
        self.shape = tuple(int(d) for d in shape)
        self.frac_bits = frac_bits
        #: announced bound ``|x| < 2**(bits − 1)`` of every element (fixed point), if any
        self.bits = bits
        if len(self.shape) != 2 or (self.value is not None and self.value.shape != self.shape):
            raise ValueError(f"a plaintext matrix is 2-D of its declared shape {self.shape}")

    def __getitem__(self, rows: Any) -> PlainTensor:
        """A selection of rows (a slice or an index array)."""
        shape = (_shape_of(self.shape[:1], rows)[0], self.shape[1])
        value = None if self.value is None else np.ascontiguousarray(self.value[rows])
        return PlainTensor(self.owner, value, shape, self.frac_bits, self.bits)

    @property
    def T(self) -> PlainTensor:
        value = None if self.value is None else np.ascontiguousarray(self.value.T)
        return PlainTensor(self.owner, value, self.shape[::-1], self.frac_bits, self.bits)
