"""Packing laws of SecureBoost's gradient encoding (plaintext and under a small test key)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.fl.vertical.secureboost.packing import (
    GradientLayout,
    add_plaintexts,
    ciphertexts_from_bytes,
    ciphertexts_to_bytes,
    compress,
)
from privfin.he import ou, paillier

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


@pytest.mark.parametrize("scheme", [paillier, ou])
def test_add_plaintexts_equals_raw_add_plain(scheme: Any) -> None:
    pk, _ = scheme.generate_keypair(512, rng=random.Random(3), insecure_allow_small_keys=True)
    rand = pk.raw_randomizers(40, rng=random.Random(4), n_jobs=1)
    plain = [(i % 5) * 2**40 + 7 for i in range(40)]  # few distinct values, as gradients
    assert add_plaintexts(pk, rand, plain) == pk.raw_add_plain(rand, plain)
    with pytest.raises(ConfigError):
        add_plaintexts(pk, rand, plain[:-1])


@pytest.mark.parametrize("scheme", [paillier, ou])
def test_batched_ciphertext_check_is_exact(scheme: Any) -> None:
    pk, sk = scheme.generate_keypair(512, rng=random.Random(5), insecure_allow_small_keys=True)
    cts = pk.raw_encrypt(list(range(3000)), rng=random.Random(6), n_jobs=1)
    blob = ciphertexts_to_bytes(cts, pk)
    with ThreadPoolExecutor(2) as pool:
        for executor in (None, pool):
            assert ciphertexts_from_bytes(blob, pk, len(cts), executor=executor) == cts
            # One value sharing a factor with n (a multiple of the secret p), zero, or >= M.
            p = int(sk._p)
            for bad in (p * 12345 % pk.ciphertext_modulus, 0, pk.ciphertext_modulus):
                tampered = ciphertexts_to_bytes([*cts[:1500], bad, *cts[1501:]], pk)
                with pytest.raises(DecodeError):
                    ciphertexts_from_bytes(tampered, pk, len(cts), executor=executor)
    with pytest.raises(DecodeError):
        ciphertexts_from_bytes(blob[:-1], pk)


def test_left_out_thresholds_are_restored_exactly() -> None:
    """A host sends cumulative sums only after non-empty bins; the guest's slot map rebuilds
    the full (thresholds + missing) layout: a left-out threshold repeats the previous sum."""
    from types import SimpleNamespace

    from privfin.fl.vertical.secureboost.guest import _Guest
    from privfin.fl.vertical.secureboost.messages import HostInfo

    nb = 6
    bins = np.array([[0, 6], [2, 6], [2, 1], [5, 1]])  # feature 0 uses bins 0, 2, 5; 1: 1, miss
    keep = np.stack([np.bincount(bins[:, j], minlength=nb + 1)[: nb - 1] > 0 for j in range(2)])
    info = HostInfo(n_features=2, thresholds=np.packbits(keep).tobytes())
    fake = SimpleNamespace(p=SimpleNamespace(n_bins=nb))
    src = _Guest._slot_sources(fake, "host", info)  # type: ignore[arg-type]
    g = np.array([1.0, 2.0, 4.0, 8.0])
    full = np.zeros((2, nb))
    for j in range(2):
        for t in range(nb - 1):
            full[j, t] = g[(bins[:, j] <= t)].sum()
        full[j, nb - 1] = g[bins[:, j] == nb].sum()
    sent = [full[j, t] for j in range(2) for t in range(nb - 1) if keep[j, t]]
    values: list[float] = []
    for j in range(2):
        values += [full[j, t] for t in range(nb - 1) if keep[j, t]] + [full[j, nb - 1]]
    assert len(values) == len(sent) + 2 == int(src.max()) + 1
    restored = np.append(np.array(values), 0.0)[src]
    np.testing.assert_array_equal(restored, full)
    wrong = HostInfo(n_features=4, thresholds=info.thresholds)
    with pytest.raises(ProtocolAbort):
        _Guest._slot_sources(fake, "host", wrong)  # type: ignore[arg-type]
