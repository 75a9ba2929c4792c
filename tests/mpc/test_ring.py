"""Ring arithmetic and fixed-point encoding: exactness laws (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.mpc.ring import decode_fixed, encode_fixed, limb_matmul, ring_matmul

U64S = st.integers(min_value=0, max_value=2**64 - 1)


@given(st.lists(st.floats(-(2.0**40), 2.0**40, allow_nan=False), min_size=1, max_size=20))
def test_fixed_point_roundtrip_within_half_ulp(values: list[float]) -> None:
    arr = np.array(values)
    back = decode_fixed(encode_fixed(arr, 16), 16)
    assert np.all(np.abs(back - arr) <= 2.0**-17 + 1e-12 * np.abs(arr))


def test_fixed_point_refuses_out_of_range() -> None:
    with pytest.raises(ValueError, match="within"):
        encode_fixed([2.0**48], 16)
    with pytest.raises(ValueError, match="finite"):
        encode_fixed([float("nan")], 16)
    # the largest encodable magnitudes survive
    edge = np.array([-(2.0**47), 2.0**46 - 2.0**-16])
    assert np.array_equal(decode_fixed(encode_fixed(edge, 16), 16), edge)


@settings(max_examples=30)
@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 9),
    st.data(),
)
def test_limb_matmul_is_exact(m: int, k: int, n: int, data: st.DataObject) -> None:
    a = np.array(data.draw(st.lists(U64S, min_size=m * k, max_size=m * k)), np.uint64)
    b = np.array(data.draw(st.lists(U64S, min_size=k * n, max_size=k * n)), np.uint64)
    a, b = a.reshape(m, k), b.reshape(k, n)
    assert np.array_equal(limb_matmul(a, b), a @ b)


def test_limb_matmul_exact_for_long_inner_dimension_and_extremes() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64, (7, 1500), dtype=np.uint64)
    b = rng.integers(0, 2**64, (1500, 5), dtype=np.uint64)
    a[0, :] = 2**64 - 1
    b[:, 0] = 2**64 - 1
    assert np.array_equal(limb_matmul(a, b), a @ b)
    assert np.array_equal(ring_matmul(a, b, method="limbs"), ring_matmul(a, b, method="numpy"))
    v = rng.integers(0, 2**64, 1500, dtype=np.uint64)
    assert np.array_equal(ring_matmul(a, v, method="limbs"), a @ v)


NEAR_BOUND = st.one_of(
    st.floats(2.0**47 - 2.0**10, 2.0**47 + 2.0**10),
    st.floats(-(2.0**47) - 2.0**10, -(2.0**47) + 2.0**10),
    st.floats(2.0**46, 2.0**48),
)


@settings(max_examples=200)
@given(st.lists(NEAR_BOUND, min_size=1, max_size=5))
def test_encoding_near_the_bound_refuses_exactly_what_does_not_fit(values: list[float]) -> None:
    """16 fractional bits: ``round(v * 2**16)`` must lie in ``[-2**63, 2**63)``; anything that
    fits round-trips within half an ulp, anything that does not is refused (never wrapped)."""
    arr = np.array(values)
    scaled = np.rint(arr * 2.0**16)
    fits = bool(np.all((scaled >= -(2.0**63)) & (scaled < 2.0**63)))
    if not fits:
        with pytest.raises(ValueError, match="within"):
            encode_fixed(arr, 16)
        return
    back = decode_fixed(encode_fixed(arr, 16), 16)
    assert np.all(np.abs(back - arr) <= 2.0**-17 + 2.0**-52 * np.abs(arr))
    assert np.all(np.sign(back) == np.sign(arr))  # no wrap-around to the other sign
