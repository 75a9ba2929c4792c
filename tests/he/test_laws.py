"""Algebraic laws of the additive schemes (Paillier and OU), checked against plain Python."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.he.errors import OverflowDetected

small_ints = st.integers(min_value=-(2**62), max_value=2**62)
int_lists = st.lists(small_ints, min_size=1, max_size=6)
floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
float_lists = st.lists(floats, min_size=1, max_size=6)
FAST = settings(max_examples=25, deadline=None)
TOL = 2.0**-30  # a few ulps of the default 32 fractional bits, scaled by magnitude below


@FAST
@given(a=int_lists, data=st.data())
def test_add_ciphertexts(keys: Any, a: list[int], data: st.DataObject) -> None:
    pk, sk = keys
    b = data.draw(st.lists(small_ints, min_size=len(a), max_size=len(a)))
    assert sk.decrypt(pk.encrypt(a) + pk.encrypt(b)) == [x + y for x, y in zip(a, b, strict=True)]


@FAST
@given(a=int_lists, k=small_ints)
def test_scalar_mul_and_plain_add(keys: Any, a: list[int], k: int) -> None:
    pk, sk = keys
    enc = pk.encrypt(a)
    assert sk.decrypt(enc * k) == [x * k for x in a]
    assert sk.decrypt(k * enc) == [x * k for x in a]
    assert sk.decrypt(enc + k) == [x + k for x in a]
    assert sk.decrypt(enc - k) == [x - k for x in a]
    assert sk.decrypt(k - enc) == [k - x for x in a]
    assert sk.decrypt(-enc) == [-x for x in a]


@FAST
@given(a=int_lists, data=st.data())
def test_vector_mul_sum_dot(keys: Any, a: list[int], data: st.DataObject) -> None:
    pk, sk = keys
    w = data.draw(st.lists(st.integers(-1000, 1000), min_size=len(a), max_size=len(a)))
    enc = pk.encrypt(a)
    assert sk.decrypt(enc * w) == [x * y for x, y in zip(a, w, strict=True)]
    assert sk.decrypt(enc.sum()) == sum(a)
    assert sk.decrypt(enc.dot(w)) == sum(x * y for x, y in zip(a, w, strict=True))
    assert sk.decrypt(enc @ w) == sk.decrypt(enc.dot(w))


@FAST
@given(a=float_lists, k=floats)
def test_floats_within_precision(keys: Any, a: list[float], k: float) -> None:
    pk, sk = keys
    enc = pk.encrypt(np.array(a))
    np.testing.assert_allclose(sk.decrypt(enc), a, rtol=0, atol=2.0**-32)
    np.testing.assert_allclose(sk.decrypt(enc + enc), np.add(a, a), rtol=0, atol=2.0**-31)
    prod = sk.decrypt(enc * k)
    atol = (abs(k) + max(abs(x) for x in a) + 1) * 2.0**-32
    np.testing.assert_allclose(prod, np.multiply(a, k), rtol=0, atol=atol)
    np.testing.assert_allclose(sk.decrypt(enc + 0.5), np.add(a, 0.5), rtol=0, atol=2.0**-32)


@FAST
@given(a=int_lists, b=float_lists)
def test_mixed_int_float(keys: Any, a: list[int], b: list[float]) -> None:
    pk, sk = keys
    n = min(len(a), len(b))
    a, b = [x % 2**40 for x in a[:n]], b[:n]
    out = sk.decrypt(pk.encrypt(a) + pk.encrypt(b))
    assert all(isinstance(v, float) for v in out)
    np.testing.assert_allclose(out, np.add(a, b), rtol=1e-12, atol=2.0**-31)


@FAST
@given(
    values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=40),
    slot_bits=st.sampled_from([48, 64, 96]),
    reps=st.integers(1, 5),
)
def test_packing_round_trip(keys: Any, values: list[int], slot_bits: int, reps: int) -> None:
    pk, sk = keys
    packed = pk.encrypt_packed(values, slot_bits=slot_bits, value_bits=41)
    assert sk.decrypt(packed) == values
    total = packed
    for _ in range(reps - 1):
        total = total + packed
    assert sk.decrypt(total) == [v * reps for v in values]
    assert sk.decrypt(packed * -3) == [-3 * v for v in values]


def test_packed_floats_and_column_sums(keys: Any) -> None:
    pk, sk = keys
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(50, 2))  # (g, h) per sample: one ciphertext each
    enc = pk.encrypt_packed(grads, slot_bits=80, frac_bits=24)
    assert enc.cols == 2 and len(enc) == 50
    bins = np.arange(50) % 3 == 0
    hist = sk.decrypt(enc[bins].sum())
    np.testing.assert_allclose(hist, grads[bins].sum(axis=0), atol=50 * 2.0**-24)
    np.testing.assert_allclose(sk.decrypt(enc), grads, atol=2.0**-24)


def test_pack_existing_ciphertexts(keys: Any) -> None:
    pk, sk = keys
    values = list(range(-20, 20))
    enc = pk.encrypt(values, value_bits=8)
    packed = (enc + enc).pack()
    assert len(packed) < len(values)
    assert sk.decrypt(packed) == [2 * v for v in values]


def test_overflow_raises_never_wraps(keys: Any) -> None:
    pk, sk = keys
    top = (1 << pk.capacity_bits) - 1
    with pytest.raises(OverflowDetected):
        pk.encrypt([top + 1])
    enc = pk.encrypt([top], value_bits=pk.capacity_bits)
    assert sk.decrypt(enc) == [top]
    with pytest.raises(OverflowDetected):
        sk.decrypt(enc + enc)  # would wrap modulo the plaintext modulus
    with pytest.raises(OverflowDetected):
        sk.decrypt(enc * 4)


def test_packed_headroom_exhaustion_raises(keys: Any) -> None:
    pk, sk = keys
    enc = pk.encrypt_packed([1, -1, 2], slot_bits=16, headroom_bits=2)  # values < 2**13
    with pytest.raises(OverflowDetected):
        pk.encrypt_packed([2**13], slot_bits=16, headroom_bits=2)
    total = enc
    for _ in range(3):
        total = total + total  # bound 2**13 -> 2**16 > slot
    with pytest.raises(OverflowDetected):
        sk.decrypt(total)
    assert sk.decrypt(enc + enc + enc) == [3, -3, 6]


def test_containers_preserved(keys: Any) -> None:
    pk, sk = keys
    out = sk.decrypt(pk.encrypt(np.array([1, 2, 3], dtype=np.int32)))
    assert isinstance(out, np.ndarray) and out.dtype == np.int64
    assert sk.decrypt(pk.encrypt(5)) == 5
    assert isinstance(sk.decrypt(pk.encrypt([1, 2])), list)
    assert sk.decrypt(pk.encrypt(np.array([1.25]))).dtype == np.float64
    assert sk.decrypt(pk.encrypt([2**100, -(2**100)])) == [2**100, -(2**100)]
    enc = pk.encrypt([1, 2])
    assert sk.decrypt(np.array([3, 4]) + enc) == [4, 6]
    assert sk.decrypt(np.array([3, 4]) * enc) == [3, 8]
