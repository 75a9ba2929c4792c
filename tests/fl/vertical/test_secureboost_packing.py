"""Packing laws of SecureBoost's gradient encoding (plaintext and under a small test key)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.errors import ProtocolAbort
from privfin.fl.vertical.secureboost.packing import GradientLayout, compress
from privfin.he import paillier

BOUNDS = (-1.0, 1.0, 0.0, 0.25)


@settings(max_examples=60)
@given(
    n=st.integers(1, 200),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    precision=st.integers(8, 40),
)
def test_sum_of_packed_rows_decodes_to_sums(n: int, k: int, seed: int, precision: int) -> None:
    rng = np.random.default_rng(seed)
    g = rng.uniform(-1, 1, size=(n, k))
    h = rng.uniform(0, 0.25, size=(n, k))
    layout = GradientLayout.make(g, h, n, precision, BOUNDS)
    packed = layout.encode(g, h)
    rows = rng.random(n) < 0.5
    total = sum(m for m, keep in zip(packed, rows, strict=True) if keep)
    gs, hs, cnt = layout.decode([total], 1, 1, party="host")
    assert cnt[0] == rows.sum()
    tol = rows.sum() * 2.0**-precision + 1e-9
    np.testing.assert_allclose(gs[0], g[rows].sum(axis=0), atol=tol)
    np.testing.assert_allclose(hs[0], h[rows].sum(axis=0), atol=tol)


def test_data_dependent_bounds_for_regression() -> None:
    rng = np.random.default_rng(1)
    g = rng.normal(scale=50, size=(100, 1))
    h = np.ones((100, 1))
    layout = GradientLayout.make(g, h, 100, 24, None)
    gs, hs, cnt = layout.decode([sum(layout.encode(g, h))], 1, 1, party="host")
    assert cnt[0] == 100
    assert gs[0, 0] == pytest.approx(g.sum(), abs=1e-4) and hs[0, 0] == pytest.approx(100)


def test_compressed_ciphertexts_decrypt_to_packed_bins_and_overflow_is_caught() -> None:
    pk, sk = paillier.generate_keypair(512, insecure_allow_small_keys=True)
    rng = np.random.default_rng(2)
    g, h = rng.uniform(-1, 1, size=(30, 1)), rng.uniform(0, 0.25, size=(30, 1))
    layout = GradientLayout.make(g, h, 30, 16, BOUNDS)
    cts = pk.raw_encrypt(layout.encode(g, h))
    per_ct = pk.capacity_bits // layout.width
    packed = compress(cts, pk, layout.width, per_ct)
    assert len(packed) == -(-30 // per_ct)
    gs, _, cnt = layout.decode(sk.raw_decrypt(packed), per_ct, 30, party="host")
    np.testing.assert_allclose(gs[:, 0], g[:, 0], atol=2.0**-16)
    assert cnt.tolist() == [1] * 30
    bad = pk.raw_add(packed[:1], pk.raw_encrypt([1 << (per_ct * layout.width)]))
    with pytest.raises(ProtocolAbort, match="tampered"):
        layout.decode(sk.raw_decrypt(bad), per_ct, per_ct, party="host")
