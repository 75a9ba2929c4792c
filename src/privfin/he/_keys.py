"""The keys every scheme derives from: the raw operations plus the encoded API.

:class:`PublicKeyBase` encrypts numbers, lists and arrays to :class:`EncryptedVector` or
:class:`PackedEncryptedVector`; :class:`PrivateKeyBase` decrypts them to the container they came
from, refusing any value outside its tracked bound. ``privfin.he.paillier`` and ``privfin.he.ou``
subclass both.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from privfin.errors import ConfigError
from privfin.he._encoding import DEFAULT_FRAC_BITS, decode_values, encode_values, to_fixed
from privfin.he._packed import Layout, PackedEncryptedVector, rows_of
from privfin.he._raw import RawPrivateKey, RawPublicKey
from privfin.he._util import RandomSource
from privfin.he._vector import EncryptedVector
from privfin.he.errors import OverflowDetected

__all__ = ["PrivateKeyBase", "PublicKeyBase"]


class PublicKeyBase(RawPublicKey):
    """Public key of an additively homomorphic scheme, with the encoded API.

    See :class:`~privfin.he._raw.RawPublicKey` for what a scheme implements, key identity,
    randomness and parallelism.
    """

    def encrypt(
        self,
        values: object,
        *,
        frac_bits: int | None = None,
        value_bits: int | None = None,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> EncryptedVector:
        """Encrypt a number, a list or a 1-D numpy array of ints or floats.

        Parameters
        ----------
        values:
            Ints stay ints; floats are rounded to ``frac_bits`` fractional bits (default 32).
        value_bits:
            Declared public bound ``|x| < 2**value_bits``; default: 64-bit granular (see SPEC).
        rng, executor, n_jobs:
            Randomness source (default: the key's, normally the OS CSPRNG) and parallelism.

        Returns
        -------
        EncryptedVector
            Fresh ciphertexts, IND-CPA under the scheme's assumptions. The vector's length,
            frac_bits and bound are public.
        """
        enc = encode_values(values, frac_bits, value_bits)
        self._check_capacity(enc.bound_bits)
        cts = self.raw_encrypt(enc.ints, rng=rng, executor=executor, n_jobs=n_jobs)
        return EncryptedVector(
            self, cts, frac_bits=enc.frac_bits, bound_bits=enc.bound_bits,
            is_float=enc.is_float, container=enc.container, fresh=True,
        )  # fmt: skip

    def encrypt_packed(
        self,
        values: object,
        *,
        slot_bits: int = 64,
        frac_bits: int | None = None,
        headroom_bits: int = 16,
        value_bits: int | None = None,
        slots: int | None = None,
        rng: RandomSource | None = None,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> PackedEncryptedVector:
        """Encrypt many values per ciphertext in signed slots of ``slot_bits`` bits.

        A 1-D input is cut into rows of ``slots`` values (default: as many as fit); a 2-D numpy
        array is packed one row per ciphertext. Each value must satisfy
        ``|x * 2**f| < 2**(slot_bits - 1 - headroom_bits)`` (or ``|x| < 2**value_bits`` if
        given), which leaves room for ``2**headroom_bits`` additions before decryption refuses
        with :class:`OverflowDetected`.
        """
        layout = Layout.make(self, slot_bits, slots)
        arr2d, flat_len, container = rows_of(values, layout.slots)
        is_float = bool(arr2d.dtype.kind == "f")
        f = (DEFAULT_FRAC_BITS if frac_bits is None else frac_bits) if is_float else 0
        if value_bits is None:
            bits = slot_bits - 1 - headroom_bits
            if bits < 1 + f:
                raise ConfigError(
                    f"slot_bits={slot_bits} leaves no room for values with {f} fractional bits "
                    f"and headroom_bits={headroom_bits}; increase slot_bits"
                )
        else:
            bits = value_bits + f
        rows = [to_fixed(row, f) for row in arr2d.tolist()]
        largest = max((abs(m) for row in rows for m in row), default=0)
        if largest >= 1 << bits or bits > slot_bits - 1:
            raise OverflowDetected(
                f"a value does not fit its slot: |x * 2**{f}| must be below 2**{bits}; "
                "increase slot_bits or lower headroom_bits"
            )
        packed = [layout.pack(row) for row in rows]
        cts = self.raw_encrypt(packed, rng=rng, executor=executor, n_jobs=n_jobs)
        return PackedEncryptedVector(
            self, cts, layout=layout, cols=arr2d.shape[1], frac_bits=f, bound_bits=bits,
            is_float=is_float, flat_length=flat_len, container=container, fresh=True,
        )  # fmt: skip

    def _check_capacity(self, bits: int) -> None:
        if bits > self.capacity_bits:
            raise OverflowDetected(
                f"values need {bits} bits but this key holds at most {self.capacity_bits}"
            )


class PrivateKeyBase(RawPrivateKey):
    """Private key: holds the secret factors. Never serialised by this package."""

    public_key: PublicKeyBase

    def __init__(self, public_key: PublicKeyBase) -> None:
        super().__init__(public_key)

    def decrypt(
        self,
        vec: EncryptedVector | PackedEncryptedVector,
        *,
        executor: Executor | None = None,
        n_jobs: int | None = None,
    ) -> Any:
        """Decrypt a vector to the same shape of container it was encrypted from.

        Raises
        ------
        KeyMismatchError
            If ``vec`` was encrypted under another key.
        OverflowDetected
            If the tracked bound exceeds the key capacity (or slot width), or a decrypted value
            lies outside its bound: a wrapped or tampered ciphertext is never returned.
        """
        self.public_key.check_same_key(vec.public_key)
        if isinstance(vec, PackedEncryptedVector):
            return vec._decrypt_with(self, executor=executor, n_jobs=n_jobs)
        if vec.bound_bits > self.public_key.capacity_bits:
            raise OverflowDetected(
                f"the result may have wrapped: its bound is 2**{vec.bound_bits} but the key "
                f"holds {self.public_key.capacity_bits} bits; use a larger key or fewer "
                "multiplications"
            )
        ints = self.decrypt_ints(
            vec.ciphertexts_raw, executor=executor, n_jobs=n_jobs, plain_bits=vec.bound_bits
        )
        limit = 1 << vec.bound_bits
        for m in ints:
            if not -limit < m < limit:
                raise OverflowDetected(
                    "a decrypted value lies outside its declared bound (wrapped or tampered)"
                )
        return decode_values(ints, vec.is_float, vec.frac_bits, vec.container)
