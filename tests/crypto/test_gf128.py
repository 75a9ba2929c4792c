"""GF(2^128): the field laws on the reference multiplication (hypothesis), the reference
against an independent bit-serial definition, and the vector product (numpy tables and the
PCLMUL kernel) against the reference, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.crypto import gf128

elements = st.integers(0, 2**128 - 1)
nonzero = st.integers(1, 2**128 - 1)


def _bit_serial(a: int, b: int) -> int:
    """Multiply by x one step at a time, reducing at every step (a second definition)."""
    r = 0
    for j in range(128):
        if b >> j & 1:
            r ^= a
        a <<= 1
        if a >> 128:
            a ^= gf128.MODULUS
    return r


@settings(max_examples=200, deadline=None)
@given(elements, elements, elements)
def test_field_laws(a: int, b: int, c: int) -> None:
    m = gf128.mul
    assert m(a, b) == m(b, a)
    assert m(m(a, b), c) == m(a, m(b, c))
    assert m(a, b ^ c) == m(a, b) ^ m(a, c)
    assert m(a, 1) == a
    assert m(a, 0) == 0
    assert m(a, b) == _bit_serial(a, b)


@settings(max_examples=25, deadline=None)
@given(nonzero)
def test_inverse(a: int) -> None:
    assert gf128.mul(a, gf128.inv(a)) == 1


def test_reduction_and_errors() -> None:
    # x^127 · x = x^128 = x^7 + x^2 + x + 1
    assert gf128.mul(1 << 127, 2) == 0x87
    assert gf128.mul(1 << 64, 1 << 64) == 0x87
    assert gf128.add(5, 3) == 6
    with pytest.raises(ZeroDivisionError):
        gf128.inv(0)
    with pytest.raises(ValueError):
        gf128.mul(1 << 128, 1)
    with pytest.raises(ValueError):
        gf128.power(2, -1)
    with pytest.raises(ValueError, match="uint8"):
        gf128.mul_scalar(np.zeros((2, 8), np.uint8), 3, kernel=False)


def _reference(vec: np.ndarray, s: int) -> np.ndarray:
    rows = [gf128.mul(gf128.to_int(v), s).to_bytes(16, "little") for v in vec]
    return np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 16)


@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_numpy_vector_product_matches_the_reference(n: int) -> None:
    rng = np.random.default_rng(n)
    vec = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    s = int.from_bytes(rng.bytes(16), "little")
    got = gf128.mul_scalar(vec, s, kernel=False)
    assert got.shape == (n, 16)
    assert np.array_equal(got, _reference(vec, s))


@pytest.mark.skipif(not gf128.KERNEL, reason="the PCLMUL kernel is not built here")
@settings(max_examples=20, deadline=None)
@given(st.integers(0, 70_000), elements, st.integers(0, 2**32 - 1))
def test_kernel_and_numpy_vector_products_give_the_same_bytes(n: int, s: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vec = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    got = gf128.mul_scalar(vec, s, kernel=True)
    assert np.array_equal(got, gf128.mul_scalar(vec, s, kernel=False))
    assert np.array_equal(got[:5], _reference(vec[:5], s))


def test_kernel_refuses_when_absent() -> None:
    if not gf128.KERNEL:
        with pytest.raises(RuntimeError):
            gf128.mul_scalar(np.zeros((1, 16), np.uint8), 1, kernel=True)
        return
    from privfin.crypto import _vole_kernel  # type: ignore[attr-defined]

    out = np.zeros((2, 16), np.uint8)
    with pytest.raises(ValueError, match="sizes"):
        _vole_kernel.gf128_mul_scalar(np.zeros((2, 16), np.uint8), bytes(8), out)
    with pytest.raises(ValueError, match="sizes"):
        _vole_kernel.gf128_mul_scalar(np.zeros((3, 16), np.uint8), bytes(16), out)
