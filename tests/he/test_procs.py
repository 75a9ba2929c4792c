"""Process-pool encryption, fixed-base windows and the fast decryption paths.

The process path must give bit-for-bit the ciphertexts of the single-process path under a
seeded source (all randomness is drawn by the caller), close its pool, and raise no warnings.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import random
import signal
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import gmpy2
import numpy as np
import pytest

from privfin.errors import ConfigError
from privfin.he import ou, paillier
from privfin.he._engine import engine_from_spec
from privfin.he._util import FixedBaseTable
from privfin.he.errors import OverflowDetected

VALUES = [random.Random(11).randrange(-(2**40), 2**40) for _ in range(150)]


def _fresh(keys: Any, **kw: Any) -> Any:
    """A new public-key object for the fixture's key (its own pool, tables and threshold)."""
    pk = keys[0]
    if isinstance(pk, paillier.PublicKey):
        return paillier.PublicKey(pk.n, insecure_allow_small_keys=True, **kw)
    return ou.PublicKey(pk.n, pk.g, pk.h, insecure_allow_small_keys=True, **kw)


@pytest.fixture
def pooled(keys: Any) -> Iterator[Any]:
    """A public key that uses its own process pool from 8 items on; closed afterwards."""
    pk = _fresh(keys)
    pk.process_threshold = 8
    yield pk
    pk.close()


def test_process_path_matches_single_process(keys: Any, pooled: Any) -> None:
    sk = keys[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        in_procs = pooled.encrypt(VALUES, rng=random.Random(3), n_jobs=2)
        assert pooled._pool is not None  # the auto path was taken
        inline = pooled.encrypt(VALUES, rng=random.Random(3), n_jobs=1)
        with ThreadPoolExecutor(2) as tpool:
            threads = pooled.encrypt(VALUES, rng=random.Random(3), executor=tpool)
    assert in_procs.ciphertexts == inline.ciphertexts == threads.ciphertexts
    assert sk.decrypt(in_procs) == VALUES
    # Encryptions of zero and re-randomisation take the same path.
    zeros = pooled.raw_randomizers(40, rng=random.Random(4), n_jobs=2)
    assert zeros == pooled.raw_randomizers(40, rng=random.Random(4), n_jobs=1)
    obf = in_procs.obfuscate(rng=random.Random(5), n_jobs=2)
    assert obf.ciphertexts == inline.obfuscate(rng=random.Random(5), n_jobs=1).ciphertexts
    assert sk.decrypt(obf) == VALUES
    # Packed plaintexts (large OU exponents for g) go through the workers too.
    rows = [[v % 1000 for v in VALUES[i : i + 3]] for i in range(0, 60, 3)]
    arr = np.array(rows, dtype=object)
    packed = pooled.encrypt_packed(arr, slot_bits=48, rng=random.Random(6), n_jobs=2)
    same = pooled.encrypt_packed(arr, slot_bits=48, rng=random.Random(6), n_jobs=1)
    assert packed.ciphertexts == same.ciphertexts
    assert sk.decrypt(packed).tolist() == rows


def test_below_threshold_and_single_job_stay_in_process(keys: Any, pooled: Any) -> None:
    pooled.encrypt(VALUES[:7], n_jobs=2)
    pooled.encrypt(VALUES, n_jobs=1)
    assert pooled._pool is None
    default = _fresh(keys)
    assert default.process_threshold is None  # small test keys never start processes
    default.encrypt(VALUES, n_jobs=2)
    assert default._pool is None


def test_daemonic_process_stays_in_process(pooled: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # multiprocessing.Pool workers are daemonic and may not start children.
    monkeypatch.setattr(multiprocessing, "current_process", lambda: SimpleNamespace(daemon=True))
    got = pooled.encrypt(VALUES, rng=random.Random(2), n_jobs=2)
    assert pooled._pool is None
    assert got.ciphertexts == pooled.encrypt(VALUES, rng=random.Random(2), n_jobs=1).ciphertexts


def test_pool_is_closed_and_restarted(pooled: Any) -> None:
    pooled.precompute(n_jobs=2)
    pool = pooled._pool
    assert isinstance(pool, ProcessPoolExecutor)
    procs = list(pool._processes.values())
    assert len(procs) == 2 and all(p.is_alive() for p in procs)
    pooled.close()
    pooled.close()  # idempotent
    assert pooled._pool is None
    assert not any(p.is_alive() for p in procs)
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)
    # A later bulk operation starts a new pool; a different n_jobs replaces it.
    pooled.encrypt(VALUES, n_jobs=2)
    first = pooled._pool
    assert first is not None and first is not pool
    pooled.encrypt(VALUES, n_jobs=3)
    assert pooled._pool is not first and pooled._pool_jobs == 3
    with pytest.raises(RuntimeError):
        first.submit(abs, 1)


def test_pool_is_shut_down_with_its_key(keys: Any) -> None:
    pk = _fresh(keys)
    pk.process_threshold = 8
    pk.encrypt(VALUES, n_jobs=2)
    pool = pk._pool
    assert pool is not None
    del pk
    gc.collect()
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)


def test_injected_process_pool_is_used_and_left_open(keys: Any) -> None:
    pk, sk = _fresh(keys), keys[1]
    ctx = multiprocessing.get_context("forkserver")  # workers rebuild tables from the spec
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        got = pk.encrypt(VALUES, rng=random.Random(8), executor=pool, n_jobs=2)
        assert pool.submit(abs, -1).result() == 1  # still open: the caller owns it
        # Operations without a process path fall back to threads with such an executor.
        doubled = got.mul(2, executor=pool)
        assert sk.decrypt(doubled, executor=pool) == [2 * v for v in VALUES]
    assert got.ciphertexts == pk.encrypt(VALUES, rng=random.Random(8), n_jobs=1).ciphertexts
    assert pk._pool is None


def test_broken_own_pool_falls_back_to_this_process(keys: Any, pooled: Any) -> None:
    pooled.precompute(n_jobs=2)
    pool = pooled._pool
    assert pool is not None
    victim = next(iter(pool._processes.values()))
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    got = pooled.encrypt(VALUES, rng=random.Random(9), n_jobs=2)
    assert got.ciphertexts == pooled.encrypt(VALUES, rng=random.Random(9), n_jobs=1).ciphertexts
    assert keys[1].decrypt(got) == VALUES


def test_window_size_does_not_change_ciphertexts(keys: Any) -> None:
    out = []
    for window in (4, 8, 12):
        pk = _fresh(keys, rng=random.Random(21), window_bits=window)
        assert pk.window_bits == window
        out.append(pk.encrypt(VALUES[:20], rng=random.Random(22)).ciphertexts)
    assert out[0] == out[1] == out[2]
    with pytest.raises(ConfigError):
        _fresh(keys, window_bits=1)
    with pytest.raises(ConfigError):
        _fresh(keys, window_bits=True)


def test_default_windows_by_key_size() -> None:
    pk, _ = paillier.generate_keypair(512, rng=random.Random(1), insecure_allow_small_keys=True)
    assert pk.window_bits == paillier.SMALL_KEY_WINDOW_BITS
    # No table is built before the first encryption: keys stay cheap to create.
    assert pk._engine_obj is None
    big = paillier.PublicKey((1 << 2047) + 1 + 2, insecure_allow_small_keys=False)
    assert big.window_bits == paillier.WINDOW_BITS and big.process_threshold == 512


def test_public_key_pickles_without_pool_or_tables(keys: Any, pooled: Any) -> None:
    pooled.encrypt(VALUES, n_jobs=2)
    pooled._rng = random.Random(30)
    clone = pickle.loads(pickle.dumps(pooled))
    assert clone._pool is None and clone._engine_obj is None
    assert clone == pooled
    a = clone.encrypt(VALUES[:5], n_jobs=1).ciphertexts
    b = pooled.encrypt(VALUES[:5], n_jobs=1).ciphertexts
    assert a == b  # same DJN generator and same randomness state


@pytest.mark.parametrize("window", [2, 5, 8, 11])
def test_fixed_base_table(window: int) -> None:
    mod = gmpy2.mpz(2**127 - 1) * (2**89 - 1)
    table = FixedBaseTable(7, mod, window)
    rnd = random.Random(window)
    for bits in (0, 1, window, 3 * window + 1, 200):
        e = rnd.getrandbits(bits) if bits else 0
        assert table.pow(e) == pow(7, e, int(mod))
        assert table.mul_pow(gmpy2.mpz(5), e) == 5 * pow(7, e, int(mod)) % mod
    assert table.pow_bytes(b"\x01\x02") == pow(7, 0x0201, int(mod))
    assert table.residues == table.touch() > 0
    with pytest.raises(ValueError):
        table.pow(-1)
    with pytest.raises(ConfigError):
        FixedBaseTable(7, mod, 17)


def test_engine_spec_round_trip(keys: Any) -> None:
    pk = _fresh(keys)
    engine = pk._engine()
    clone = pickle.loads(pickle.dumps(engine))  # pickled as its spec
    assert clone.spec == engine.spec
    assert clone.randomizers([12345, 2**200 + 7]) == engine.randomizers([12345, 2**200 + 7])
    for bad in ((), ("rsa", 1), ("paillier", 1, 2)):
        with pytest.raises(ConfigError):
            engine_from_spec(bad)


def test_paillier_p_only_decryption(paillier_keys: Any) -> None:
    pk, sk = paillier_keys
    vals = [0, 1, -1, 2**62, -(2**62), 123456789]
    enc = pk.encrypt(vals)
    cts = enc.ciphertexts_raw
    full = sk.decrypt_ints(cts)
    assert sk.decrypt_ints(cts, plain_bits=64) == full == vals
    assert sk.decrypt(enc) == vals
    # A ciphertext whose plaintext breaks the declared bound is refused, not wrapped mod p.
    forged = paillier.EncryptedVector(
        pk, pk.raw_encrypt([2**300 + 5]), frac_bits=0, bound_bits=64, is_float=False
    )
    with pytest.raises(OverflowDetected):
        sk.decrypt(forged)
    forged_neg = paillier.EncryptedVector(
        pk, pk.raw_encrypt([-(2**200)]), frac_bits=0, bound_bits=64, is_float=False
    )
    with pytest.raises(OverflowDetected):
        sk.decrypt(forged_neg)
    # Bounds too close to |p| use the full CRT path.
    assert sk.decrypt_ints(cts, plain_bits=sk._p_bits - 2) == vals


def test_raw_decrypt_residues_in_threads(keys: Any) -> None:
    pk, sk = keys
    ms = list(range(100))
    cts = pk.raw_encrypt(ms)
    assert sk.raw_decrypt(cts, n_jobs=2) == ms
    with ThreadPoolExecutor(2) as tpool:
        assert sk.raw_decrypt(cts, executor=tpool) == ms
