"""Encrypted vectors: one fixed-point value per ciphertext, with overflow tracking.

:class:`EncryptedVector` adds, subtracts, multiplies by plaintexts, sums and packs ciphertexts of
one :class:`~privfin.he._raw.RawPublicKey`, tracking the public bound of every value so that
decryption never returns a wrapped result. Built by ``PublicKeyBase.encrypt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any, Self

import gmpy2
import numpy as np

from privfin.errors import ConfigError, DecodeError
from privfin.he._encoding import Encoded, ceil_log2, encode_values, flatten
from privfin.he._packed import Layout, PackedEncryptedVector, UnpackedVector
from privfin.he._raw import RawPublicKey, check_header, join_ciphertexts, split_ciphertexts
from privfin.he._util import RandomSource, parallel_map
from privfin.he._wire import MAX_WIRE_BITS, MAX_WIRE_CIPHERTEXTS, WIRE_VERSION, small_int
from privfin.he.errors import OverflowDetected

__all__ = ["EncryptedVector"]


class EncryptedVector(UnpackedVector):
    """A vector of ciphertexts under one public key, with fixed-point metadata.

    Supports ``+``/``-`` with another vector or plaintext (scalar broadcast), ``*`` by a
    plaintext scalar or vector, :meth:`sum`, :meth:`dot`, indexing, :meth:`obfuscate`,
    :meth:`pack`, and :meth:`to_wire` / :meth:`from_wire`.

    Public metadata (visible to anyone holding it): length, ``frac_bits``, ``bound_bits``
    (all ``|encoded value| < 2**bound_bits``), whether it holds floats. Results of operations
    are not re-randomised (``fresh`` is False); :meth:`to_wire` re-randomises them by default
    so their randomness reveals nothing about how they were computed.
    """

    __slots__ = ("_cts", "bound_bits", "container", "frac_bits", "fresh", "is_float", "public_key")
    #: Make ``ndarray + vec`` and ``ndarray * vec`` defer to this class.
    __array_ufunc__ = None

    def __init__(
        self,
        public_key: RawPublicKey,
        ciphertexts: Sequence[Any],
        *,
        frac_bits: int,
        bound_bits: int,
        is_float: bool,
        container: str = "list",
        fresh: bool = False,
    ) -> None:
        self.public_key = public_key
        self._cts: list[Any] = list(ciphertexts)
        self.frac_bits = frac_bits
        self.bound_bits = bound_bits
        self.is_float = is_float
        self.container = container
        self.fresh = fresh

    # ------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._cts)

    def __repr__(self) -> str:
        kind = "float" if self.is_float else "int"
        return (
            f"<EncryptedVector {self.public_key.scheme} len={len(self)} {kind} "
            f"frac_bits={self.frac_bits} bound=2**{self.bound_bits}>"
        )

    @property
    def ciphertexts(self) -> list[int]:
        """The ciphertexts as Python ints."""
        return [int(c) for c in self._cts]

    @property
    def ciphertexts_raw(self) -> list[Any]:
        """The ciphertexts as stored (gmpy2 mpz), no copy of the values."""
        return self._cts

    def _like(
        self,
        cts: Sequence[Any],
        *,
        frac_bits: int | None = None,
        bound_bits: int | None = None,
        is_float: bool | None = None,
        container: str | None = None,
        fresh: bool = False,
    ) -> EncryptedVector:
        return EncryptedVector(
            self.public_key,
            cts,
            frac_bits=self.frac_bits if frac_bits is None else frac_bits,
            bound_bits=self.bound_bits if bound_bits is None else bound_bits,
            is_float=self.is_float if is_float is None else is_float,
            container=self.container if container is None else container,
            fresh=fresh,
        )

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray[Any, Any]) -> Self:
        if isinstance(index, (int, np.integer)):
            return self._like([self._cts[int(index)]], container="scalar", fresh=self.fresh)  # type: ignore[return-value]
        if isinstance(index, slice):
            return self._like(self._cts[index], fresh=self.fresh)  # type: ignore[return-value]
        idx = np.asarray(index)
        if idx.dtype.kind == "b":
            idx = np.flatnonzero(idx)
        return self._like([self._cts[int(i)] for i in idx.tolist()], fresh=self.fresh)  # type: ignore[return-value]

    def rescale(self, frac_bits: int, *, n_jobs: int | None = None) -> EncryptedVector:
        """The same values with more fractional bits (multiplies by ``2**delta``)."""
        delta = frac_bits - self.frac_bits
        if delta < 0:
            raise ConfigError("cannot lower frac_bits of a ciphertext homomorphically")
        if delta == 0:
            return self
        pk = self.public_key
        cts = pk.raw_mul(self._cts, [1 << delta] * len(self), n_jobs=n_jobs)
        return self._like(
            cts, frac_bits=frac_bits, bound_bits=self.bound_bits + delta, is_float=True
        )

    # ------------------------------------------------------------ addition
    def add(self, other: object, *, n_jobs: int | None = None) -> EncryptedVector:
        """``self + other`` for another vector (same key) or plaintext values/scalar."""
        pk = self.public_key
        if isinstance(other, EncryptedVector):
            pk.check_same_key(other.public_key)
            if len(other) != len(self):
                raise ConfigError(f"length mismatch: {len(self)} vs {len(other)}")
            f = max(self.frac_bits, other.frac_bits)
            a = self.rescale(f, n_jobs=n_jobs)
            b = other.rescale(f, n_jobs=n_jobs)
            return self._like(
                pk.raw_add(a._cts, b._cts),
                frac_bits=f,
                bound_bits=max(a.bound_bits, b.bound_bits) + 1,
                is_float=self.is_float or other.is_float,
            )
        if isinstance(other, PackedEncryptedVector):
            raise ConfigError("cannot add a packed and an unpacked vector; pack() it first")
        plain = encode_values(other, self.frac_bits if self.is_float else None)
        f = max(self.frac_bits, plain.frac_bits)
        base = self.rescale(f, n_jobs=n_jobs)
        shift = f - plain.frac_bits
        ints = [m << shift for m in self._broadcast(plain)]
        return base._like(
            pk.raw_add_plain(base._cts, ints),
            bound_bits=max(base.bound_bits, plain.bound_bits + shift) + 1,
            is_float=base.is_float or plain.is_float,
        )

    def _broadcast(self, plain: Encoded) -> list[int]:
        if plain.container == "scalar":
            return plain.ints * len(self)
        if len(plain.ints) != len(self):
            raise ConfigError(f"length mismatch: {len(self)} vs {len(plain.ints)}")
        return plain.ints

    def __add__(self, other: object) -> EncryptedVector:
        return self.add(other)

    def __radd__(self, other: object) -> EncryptedVector:
        return self.add(other)

    def __neg__(self) -> EncryptedVector:
        mod = self.public_key._mod
        return self._like([gmpy2.invert(c, mod) for c in self._cts])

    def __sub__(self, other: object) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self.add(-other)
        return self.add(_negated(other))

    def __rsub__(self, other: object) -> EncryptedVector:
        return (-self).add(other)

    # ------------------------------------------------------------ multiplication
    def mul(
        self,
        other: object,
        *,
        frac_bits: int | None = None,
        value_bits: int | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> EncryptedVector:
        """``self * other`` for a plaintext scalar or vector (element-wise).

        A float multiplier is encoded with ``frac_bits`` (default 32) and the result carries
        ``self.frac_bits + frac_bits`` fractional bits.
        """
        if isinstance(other, (EncryptedVector, PackedEncryptedVector)):
            raise ConfigError(
                "additively homomorphic ciphertexts can only be multiplied by plaintexts"
            )
        plain = encode_values(other, frac_bits, value_bits)
        ints = self._broadcast(plain)
        cts = self.public_key.raw_mul(self._cts, ints, executor=executor, n_jobs=n_jobs)
        return self._like(
            cts,
            frac_bits=self.frac_bits + plain.frac_bits,
            bound_bits=self.bound_bits + plain.bound_bits,
            is_float=self.is_float or plain.is_float,
        )

    def __mul__(self, other: object) -> EncryptedVector:
        return self.mul(other)

    def __rmul__(self, other: object) -> EncryptedVector:
        return self.mul(other)

    # ------------------------------------------------------------ reductions
    def sum(self) -> EncryptedVector:
        """Encrypted sum of all elements (a scalar-container vector of length 1)."""
        total = self.public_key.raw_sum(self._cts)
        return self._like(
            [gmpy2.mpz(total)],
            bound_bits=self.bound_bits + ceil_log2(len(self)),
            container="scalar",
        )

    def dot(
        self,
        plain: object,
        *,
        frac_bits: int | None = None,
        value_bits: int | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> EncryptedVector:
        """Encrypted inner product with a plaintext vector."""
        return self.mul(
            plain, frac_bits=frac_bits, value_bits=value_bits, executor=executor, n_jobs=n_jobs
        ).sum()

    def __matmul__(self, other: object) -> EncryptedVector:
        return self.dot(other)

    def concat(self, other: EncryptedVector) -> EncryptedVector:
        """Concatenation of two vectors of the same key and encoding."""
        self.public_key.check_same_key(other.public_key)
        f = max(self.frac_bits, other.frac_bits)
        a, b = self.rescale(f), other.rescale(f)
        return self._like(
            a._cts + b._cts,
            frac_bits=f,
            bound_bits=max(a.bound_bits, b.bound_bits),
            is_float=self.is_float or other.is_float,
            container="ndarray" if self.container == "ndarray" else "list",
            fresh=self.fresh and other.fresh and f == self.frac_bits == other.frac_bits,
        )

    # ------------------------------------------------------------ randomness and packing
    def obfuscate(
        self,
        *,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
        for_owner: bool = False,
    ) -> EncryptedVector:
        """Re-randomise every ciphertext (same plaintexts, fresh randomness).

        Do this before a ciphertext computed from another party's ciphertexts leaves its
        owner: otherwise its randomness links it to the inputs (e.g. reveals which ones were
        summed). :meth:`to_wire` does it automatically for non-fresh vectors. ``for_owner``:
        the ciphertexts go back to the key's owner — uniform randomness
        (:meth:`~privfin.he._raw.RawPublicKey.raw_obfuscate_for_owner`), fresh or not.
        """
        obf = self.public_key.raw_obfuscate_for_owner if for_owner else None
        obf = obf or self.public_key.raw_obfuscate
        cts = obf(self._cts, rng=rng, executor=executor, n_jobs=n_jobs)
        return self._like(cts, fresh=True)

    def pack(
        self,
        *,
        slot_bits: int | None = None,
        slots: int | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> PackedEncryptedVector:
        """Homomorphically pack ``slots`` ciphertexts into one (``prod c_j ** 2**(slot_bits*j)``).

        Costs about one full-size exponentiation per packed ciphertext, and lets the key holder
        decrypt ``slots`` values at the price of one. ``slot_bits`` defaults to
        ``bound_bits + 1`` (the narrowest slot that holds the tracked bound and a sign).
        """
        pk = self.public_key
        if slot_bits is None:
            slot_bits = self.bound_bits + 1
        layout = Layout.make(pk, slot_bits, slots)
        if self.bound_bits > slot_bits - 1:
            raise OverflowDetected(
                f"values bounded by 2**{self.bound_bits} do not fit {slot_bits}-bit signed "
                "slots; increase slot_bits"
            )
        k = layout.slots
        groups = [self._cts[i : i + k] for i in range(0, len(self), k)]
        mod = pk._mod
        shift = gmpy2.mpz(1) << slot_bits

        def work(chunk: Sequence[list[Any]]) -> list[Any]:
            out = []
            for group in chunk:
                acc = group[-1]
                for c in reversed(group[:-1]):
                    acc = gmpy2.powmod(acc, shift, mod) * c % mod
                out.append(acc)
            return out

        cts = parallel_map(work, groups, executor=executor, n_jobs=n_jobs)
        return PackedEncryptedVector(
            pk, cts, layout=layout, cols=min(k, len(self)), frac_bits=self.frac_bits,
            bound_bits=self.bound_bits, is_float=self.is_float, flat_length=len(self),
            container="list" if self.container == "scalar" else self.container,
        )  # fmt: skip

    # ------------------------------------------------------------ wire
    def to_wire(
        self, *, obfuscate: bool = True, rng: RandomSource | None = None, for_owner: bool = False
    ) -> dict[str, Any]:
        """Plain-Python form for :mod:`privfin.federation.codec` (ints, bytes, str, bools).

        Non-fresh vectors are re-randomised first unless ``obfuscate=False``.
        """
        if for_owner:  # going back to the key's owner: always uniform randomness
            vec = self.obfuscate(rng=rng, for_owner=True)
        else:
            vec = self.obfuscate(rng=rng) if obfuscate and not self.fresh else self
        pk = self.public_key
        return {
            "kind": "EncryptedVector",
            "v": WIRE_VERSION,
            "scheme": pk.scheme,
            "key": bytes.fromhex(pk.fingerprint),
            "count": len(vec),
            "ct": join_ciphertexts(vec._cts, pk.ciphertext_bytes),
            "frac_bits": vec.frac_bits,
            "bound_bits": vec.bound_bits,
            "is_float": vec.is_float,
            "container": vec.container,
        }

    @classmethod
    def from_wire(cls, public_key: RawPublicKey, data: object) -> EncryptedVector:
        """Inverse of :meth:`to_wire`; validates everything.

        Raises
        ------
        DecodeError
            Wrong shape, wrong key fingerprint, or a ciphertext outside Z*_M.
        """
        d = check_header(public_key, data, "EncryptedVector")
        count = small_int(d, "count", MAX_WIRE_CIPHERTEXTS)
        cts = split_ciphertexts(public_key, d.get("ct"), count)
        container = d.get("container")
        if container not in ("list", "ndarray", "scalar") or (container == "scalar" and count != 1):
            raise DecodeError("field 'container' is invalid")
        is_float = d.get("is_float")
        if not isinstance(is_float, bool):
            raise DecodeError("field 'is_float' must be a bool")
        frac_bits = small_int(d, "frac_bits", MAX_WIRE_BITS)
        if not is_float and frac_bits:
            raise DecodeError("integer vectors have frac_bits = 0")
        return cls(
            public_key, cts, frac_bits=frac_bits,
            bound_bits=small_int(d, "bound_bits", MAX_WIRE_BITS), is_float=is_float,
            container=str(container), fresh=False,
        )  # fmt: skip


def _negated(values: object) -> object:
    nums, _, container = flatten(values)
    neg = [-x for x in nums]
    if container == "scalar":
        return neg[0]
    return np.array(neg) if container == "ndarray" else neg
