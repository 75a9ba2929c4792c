"""Random-band OKVS: every encoded key decodes to its value (sizes 0 to 100k), other keys
decode to uniform-looking values, decoding is linear, the compiled kernel and the pure path
give the same tables and the same failures, and encoding fails loudly (retry with a new
seed, bounded; duplicate keys refused)."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.crypto import okvs
from privfin.crypto.random import SeededRandom

KERNELS = [False, True] if okvs.KERNEL else [False]


def _kv(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    return keys, rng.integers(0, 256, (n, 16), dtype=np.uint8)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n", [0, 1, 2, 100, 2_000])
def test_encoded_keys_decode_to_their_values(kernel: bool, n: int) -> None:
    keys, vals = _kv(n, n)
    store = okvs.encode(keys, vals, SeededRandom(n), kernel=kernel)
    assert store.table.shape == (okvs.DEFAULT_PARAMS.slots(n), 16)
    assert np.array_equal(store.decode(keys, kernel=kernel), vals)
    assert np.array_equal(store.decode(keys, kernel=not kernel and okvs.KERNEL), vals)


@pytest.mark.skipif(not okvs.KERNEL, reason="the OKVS kernel is not built here")
def test_100k_keys() -> None:
    keys, vals = _kv(100_000, 7)
    store = okvs.encode(keys, vals, SeededRandom(7))
    assert store.table.shape[0] == okvs.DEFAULT_PARAMS.slots(100_000) == 125_128
    assert np.array_equal(store.decode(keys), vals)
    assert np.array_equal(store.decode(keys[:3000], kernel=False), vals[:3000])


@pytest.mark.skipif(not okvs.KERNEL, reason="the OKVS kernel is not built here")
@pytest.mark.parametrize(
    ("n", "params"),
    [
        (1, okvs.OkvsParams(1, 0.0)),
        (700, okvs.OkvsParams(1, 0.1)),
        (2_500, okvs.DEFAULT_PARAMS),
        (1_500, okvs.OkvsParams(3, 0.05)),
        (900, okvs.OkvsParams(8, 0.5)),
    ],
)
def test_kernel_and_pure_path_give_the_same_table(n: int, params: okvs.OkvsParams) -> None:
    keys, vals = _kv(n, n + params.band_words)
    a = okvs.encode(keys, vals, SeededRandom(n), params=params, kernel=True)
    b = okvs.encode(keys, vals, SeededRandom(n), params=params, kernel=False)
    assert (a.seed, a.attempts) == (b.seed, b.attempts)
    assert np.array_equal(a.table, b.table)
    assert np.array_equal(b.decode(keys, kernel=False), vals)
    other, _ = _kv(300, 99)
    assert np.array_equal(a.decode(other, kernel=True), a.decode(other, kernel=False))


def test_other_keys_decode_to_uniform_looking_values() -> None:
    keys, vals = _kv(3_000, 1)
    store = okvs.encode(keys, vals, SeededRandom(1))
    other, _ = _kv(4_000, 2)
    got = store.decode(other)
    bits = np.unpackbits(got, axis=1).astype(np.float64)
    # each of the 128 bit positions is set in half the values: 4000 samples, sd = 31.6
    assert np.all(np.abs(bits.sum(axis=0) - 2_000) < 6 * 31.7)
    assert len({r.tobytes() for r in got}) == 4_000
    # the same pairs under other randomness: another table, the same decoding of the keys
    again = okvs.encode(keys, vals, SeededRandom(2))
    assert not np.array_equal(again.table, store.table)
    assert np.array_equal(again.decode(keys), vals)


def test_decoding_is_linear() -> None:
    keys, vals = _kv(500, 3)
    _, vals2 = _kv(500, 4)
    p = okvs.encode(keys, vals, SeededRandom(3))
    q = okvs.encode(keys, vals2, SeededRandom(3))  # the same seed: the same bands
    assert p.seed == q.seed
    both = okvs.decode(p.table ^ q.table, p.seed, keys, p.params.band_words)
    assert np.array_equal(both, vals ^ vals2)


def test_hashing_ranges_and_seeds() -> None:
    keys, _ = _kv(5_000, 5)
    m = 6_000
    starts, bands = okvs.hash_keys(bytes(16), keys, m, 2)
    assert starts.min() >= 0 and starts.max() <= m - 128
    assert np.all(bands[:, 0] & np.uint64(1) == 1)
    s2, b2 = okvs.hash_keys(bytes(16), keys, m, 2)
    assert np.array_equal(starts, s2) and np.array_equal(bands, b2)
    s3, _ = okvs.hash_keys(bytes([1]) + bytes(15), keys, m, 2)
    assert np.mean(starts == s3) < 0.01
    with pytest.raises(ValueError):
        okvs.hash_keys(bytes(8), keys, m, 2)
    with pytest.raises(ValueError):
        okvs.hash_keys(bytes(16), keys, 100, 2)


def test_duplicate_keys_are_refused() -> None:
    keys, vals = _kv(200, 8)
    keys[150] = keys[20]
    for kernel in KERNELS:
        with pytest.raises(ValueError, match="distinct"):
            okvs.encode(keys, vals, SeededRandom(8), kernel=kernel)


def _first_failing_seed(n: int, params: okvs.OkvsParams, kernel: bool) -> int:
    keys, vals = _kv(n, 11)
    for seed in range(200):
        try:
            okvs.encode(
                keys, vals, SeededRandom(seed), params=params, max_attempts=1, kernel=kernel
            )
        except okvs.OkvsEncodingError:
            return seed
    raise AssertionError("no failing seed found")


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_singular_band_matrix_is_retried_with_a_new_seed_then_refused(kernel: bool) -> None:
    # w = 64 with no expansion: most matrices of 1,500 rows are singular (≈ 20% succeed)
    params = okvs.OkvsParams(1, 0.0)
    n = 1_500
    keys, vals = _kv(n, 11)
    seed = _first_failing_seed(n, params, kernel)
    with pytest.raises(okvs.OkvsEncodingError, match="failed for 1 seeds"):
        okvs.encode(keys, vals, SeededRandom(seed), params=params, max_attempts=1, kernel=kernel)
    store = okvs.encode(
        keys, vals, SeededRandom(seed), params=params, max_attempts=60, kernel=kernel
    )
    assert store.attempts > 1
    assert np.array_equal(store.decode(keys), vals)


@pytest.mark.skipif(not okvs.KERNEL, reason="the OKVS kernel is not built here")
def test_kernel_and_pure_path_report_the_same_failing_row() -> None:
    rng = np.random.default_rng(12)
    failures = 0
    for _ in range(30):
        n, m = 455, 464  # almost square: singular about half the time
        starts = np.sort(rng.integers(0, m - 63, n)).astype(np.int64)
        bands = rng.integers(0, 2**64, (n, 1), dtype=np.uint64)
        bands[:, 0] |= np.uint64(1)
        vals = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        t1 = rng.integers(0, 256, (m, 16), dtype=np.uint8)
        t2 = t1.copy()
        r1 = okvs._KERNEL.okvs_solve(starts, bands, vals, m, 1, t1)
        r2 = okvs._solve_pure(starts, bands, vals, m, t2)
        assert r1 == r2
        failures += r1 >= 0
        if r1 < 0:
            assert np.array_equal(t1, t2)
    assert 0 < failures < 30


@pytest.mark.skipif(not okvs.KERNEL, reason="the OKVS kernel is not built here")
def test_kernel_checks_sizes_and_ranges() -> None:
    k = okvs._KERNEL
    st = np.array([0, 70], np.int64)
    bd = np.ones((2, 1), np.uint64)
    vl = np.zeros((2, 16), np.uint8)
    with pytest.raises(ValueError, match="out of range"):
        k.okvs_solve(st, bd, vl, 128, 1, np.zeros((128, 16), np.uint8))
    with pytest.raises(ValueError, match="sizes"):
        k.okvs_solve(st, bd, vl, 128, 2, np.zeros((128, 16), np.uint8))
    with pytest.raises(ValueError, match="out of range"):
        k.okvs_decode(st, bd, np.zeros((128, 16), np.uint8), 1, np.zeros((2, 16), np.uint8))
    with pytest.raises(ValueError, match="sizes"):
        k.okvs_decode(st, bd, np.zeros((134, 16), np.uint8), 1, np.zeros((3, 16), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        okvs.decode(np.zeros((128, 8), np.uint8), bytes(16), vl, 1)


@pytest.mark.parametrize("m", [1, 2, 130, 1 << 20, 1 << 40, 1 << 62])
def test_stable_order_is_the_stable_argsort(m: int) -> None:
    """[16] the encoder's row order (one sort of start·2^b + index) is numpy's stable
    argsort of the start columns: ties in index order, and the argsort where keys would
    not fit in 63 bits."""
    rng = np.random.default_rng(m % 1000)
    for n in (0, 1, 2, 1_000, 70_001):
        starts = rng.integers(0, min(m, 50) if n > 100 else m, n).astype(np.int64)
        got = okvs._stable_order(starts, m)
        assert got.dtype == np.int64
        assert np.array_equal(got, np.argsort(starts, kind="stable"))


@pytest.mark.parametrize("kernel", KERNELS)
def test_decoding_the_encoded_keys_reuses_their_hashes(kernel: bool) -> None:
    """[16] ``decode_encoded`` (the receiver's decoding of its own keys in another table)
    gives the bytes of ``decode`` with the keys hashed again."""
    rng = np.random.default_rng(7)
    for n in (0, 1, 5_000):
        keys = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        vals = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        store = okvs.encode(keys, vals, SeededRandom(n), kernel=kernel)
        other = rng.integers(0, 256, store.table.shape, dtype=np.uint8)
        want = okvs.decode(other, store.seed, keys, store.params.band_words, kernel=kernel)
        assert np.array_equal(store.decode_encoded(other, kernel=kernel), want)
        assert np.array_equal(store.decode_encoded(store.table, kernel=kernel), vals)
    with pytest.raises(ValueError, match="shape"):
        store.decode_encoded(other[:-1])
    with pytest.raises(ValueError, match="keep"):
        okvs.Okvs(store.seed, store.params, store.table, 1).decode_encoded(other)


@pytest.mark.skipif(not okvs.KERNEL, reason="the OKVS kernel is not built here")
def test_kernel_decoding_in_any_row_order_gives_the_same_bytes() -> None:
    """[16] the kernel's band sums visited by increasing start (what ``decode`` does), in a
    random order and in the keys' order all equal the pure path's; an order entry out of
    range or of the wrong length is refused."""
    rng = np.random.default_rng(11)
    n, w = 20_000, 2
    m = okvs.DEFAULT_PARAMS.slots(n)
    keys = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    table = rng.integers(0, 256, (m, 16), dtype=np.uint8)
    starts, bands = okvs.hash_keys(bytes(range(16)), keys, m, w)
    want = okvs._band_sums(table, starts, bands, w, False)
    for order in (okvs._stable_order(starts, m), rng.permutation(n).astype(np.int64), None):
        out = np.zeros((n, 16), np.uint8)
        args = () if order is None else (order,)
        okvs._KERNEL.okvs_decode(starts, bands, table, w, out, *args)
        assert np.array_equal(out, want)
    assert np.array_equal(okvs.decode(table, bytes(range(16)), keys, w, kernel=True), want)
    out = np.zeros((n, 16), np.uint8)
    bad = np.arange(n, dtype=np.int64)
    bad[5] = n
    with pytest.raises(ValueError, match="order entry"):
        okvs._KERNEL.okvs_decode(starts, bands, table, w, out, bad)
    bad[5] = -1
    with pytest.raises(ValueError, match="order entry"):
        okvs._KERNEL.okvs_decode(starts, bands, table, w, out, bad)
    with pytest.raises(ValueError, match="sizes"):
        okvs._KERNEL.okvs_decode(starts, bands, table, w, out, bad[:-1])


def test_rows_gathers_rows_verbatim() -> None:
    """[16] the encoder's gather of rows (as void items) is fancy indexing, bytes for bytes,
    for uint8 values and uint64 bands of one to eight words."""
    rng = np.random.default_rng(3)
    for n in (0, 1, 3_001):
        idx = rng.permutation(n).astype(np.int64)
        v = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        got_v = okvs.take_rows(v, idx)
        assert got_v.dtype == np.uint8 and np.array_equal(got_v, v[idx])
        for words in (1, 2, 8):
            b = rng.integers(0, 2**63, (n, words), dtype=np.uint64)
            got_b = okvs.take_rows(b, idx)
            assert got_b.dtype == np.uint64 and np.array_equal(got_b, b[idx])
    with pytest.raises(ValueError, match="2-D"):
        okvs.take_rows(np.zeros(4, np.uint64), np.arange(4))
