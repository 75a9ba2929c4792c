"""Compact id storage, packed hashing, the prefetching streams and the process-pool backend."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import privfin.psi as psi
from privfin.compute import LocalBackend, ThreadBackend
from privfin.crypto.random import SeededRandom
from privfin.crypto.ristretto import BlindingKey, hash_blind_packed, hash_to_group_batch
from privfin.errors import ConfigError
from privfin.psi import common, ids
from privfin.psi.component import psi_component
from privfin.psi.ids import prepare_ids
from privfin.runtime import Context
from privfin.runtime import simulate as run_simulation

DST = b"privfin-test/packed"


def _pack(items: list[bytes]) -> tuple[bytes, np.ndarray]:
    return b"".join(items), np.cumsum([len(x) for x in items], dtype=np.int64)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12))
def test_hash_blind_packed_matches_reference(items: list[bytes]) -> None:
    data, ends = _pack(items)
    expected = hash_to_group_batch(items, DST)
    assert np.array_equal(hash_blind_packed(None, data, ends, DST), expected)
    key = BlindingKey.generate(SeededRandom("packed"))
    got = hash_blind_packed(key.secret_bytes_for_checkpoint(), data, ends, DST)
    assert np.array_equal(got, key.blind(expected))


def test_hash_blind_packed_rejects_bad_offsets() -> None:
    with pytest.raises(ValueError, match="end offset"):
        hash_blind_packed(None, b"abc", np.array([1, 2]), DST)


def _reference(values: list[object], rule: str) -> tuple[list[str], list[str], list[int]]:
    norm = ids.normalizer(rule)
    seen: set[str] = set()
    keys, originals, rows = [], [], []
    for row, v in enumerate(values):
        if v is None:
            continue
        k = norm(str(v))
        if (rule != "exact" and not k) or k in seen:
            continue
        seen.add(k)
        keys.append(k)
        originals.append(str(v))
        rows.append(row)
    return keys, originals, rows


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from(["a", " a", "A ", "b", "", "é", "e\u0301"])),
        max_size=30,
    ),
    st.sampled_from(["exact", "trim", "trim_casefold"]),
    st.integers(1, 7),
)
def test_prepared_ids_match_reference_in_any_chunking(
    values: list[object], rule: str, step: int
) -> None:
    chunks = [values[i : i + step] for i in range(0, len(values), step)]
    p = prepare_ids(chunks, rule, "first", chunked=True)
    keys, originals, rows = _reference(values, rule)
    assert list(p.keys) == keys
    assert list(p.originals) == originals
    assert p.rows.tolist() == rows
    assert p.n_input == len(values)
    for i, k in enumerate(keys):
        assert p.index_of(k) == i
    assert p.index_of("not-there") is None


def test_dedup_is_exact_under_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    # every key hashes to the same 64-bit value: dedup must still compare the keys in full
    monkeypatch.setattr(ids, "_hash64", lambda buf, s, e: np.zeros(s.size, dtype=np.uint64))
    p = prepare_ids([["x", "y", "x"], ["z", "y", "w"]], "exact", "first", chunked=True)
    assert list(p.keys) == ["x", "y", "z", "w"]
    assert p.rows.tolist() == [0, 1, 3, 5]
    assert p.n_duplicates == 2
    assert p.index_of("w") == 3 and p.index_of("q") is None
    with pytest.raises(ConfigError, match="row 3 repeats the id of row 1"):
        prepare_ids(["a", "b", "c", "b"], "exact", "error")


def test_packed_and_subset() -> None:
    p = prepare_ids(["alpha", "b", "  Γ ", "delta"], "trim")
    data, ends = p.packed()
    assert data == "alphabΓdelta".encode() and ends.tolist() == [5, 6, 8, 13]
    data, ends = p.packed(None, 1, 3)
    assert data == "bΓ".encode() and ends.tolist() == [1, 3]
    data, ends = p.packed(np.array([3, 0]))
    assert data == b"deltaalpha" and ends.tolist() == [5, 10]
    sub = p.subset([2, 0])
    assert list(sub.keys) == ["Γ", "alpha"] and list(sub.originals) == ["  Γ ", "alpha"]
    assert sub.rows.tolist() == [2, 0] and sub.index_of("alpha") == 1


def test_prepared_ids_hold_no_python_object_per_key() -> None:
    p = prepare_ids([f"user-{i:09d}" for i in range(20_000)], "exact")
    per_key = (len(p._blob) + 8 * 4 * len(p)) / len(p)  # buffer, ends, rows, hash index
    assert per_key < 14 + 33
    assert p._orig == {}  # nothing changed by normalisation: no spelling kept


def test_prefetch_propagates_errors_and_stops() -> None:
    ctx = Context(job="j", component="c", party="p", roles={"p": ("x",)}, channel=None)  # type: ignore[arg-type]

    def boom() -> Iterator[np.ndarray]:
        yield np.zeros((1, 32), np.uint8)
        raise RuntimeError("producer failed")

    it = common.prefetch(ctx, boom())
    assert next(it).shape == (1, 32)
    with pytest.raises(RuntimeError, match="producer failed"):
        next(it)

    produced = threading.Event()

    def endless() -> Iterator[np.ndarray]:
        while True:
            produced.set()
            yield np.zeros((1, 32), np.uint8)

    it = common.prefetch(ctx, endless())
    next(it)
    it.close()  # the producer thread notices and ends (daemon; no hang)
    assert produced.is_set()


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_two_party_on_pool_backends(backend: str) -> None:
    """The component on a thread pool and on the node default (a process pool: every task
    function must be a picklable top-level function), with sets over several chunks."""
    rng = random.Random(7)
    a = [f"c{rng.randrange(10**9)}" for _ in range(3000)]
    b = a[:1000] + [f"d{i}" for i in range(1500)]
    compute = ThreadBackend(2) if backend == "threads" else LocalBackend(2)

    def component(ctx: Context, params: dict[str, object], inputs: dict[str, object]) -> object:
        return psi_component(dataclasses.replace(ctx, compute=compute), params, inputs)

    with compute, pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "CHUNK_ROWS", 256)  # many chunks, several compute groups
        out = run_simulation(
            component,
            {"r": ("receiver",), "s": ("sender",)},
            params={"reveal_to": "both", "normalize": "exact"},
            inputs={"r": {"ids": a}, "s": {"ids": b}},
            component_name="psi",
            seed=3,
        )
    expected = sorted(set(a) & set(b))
    assert out["r"]["keys"] == expected and out["s"]["keys"] == expected
    assert [a[i] for i in out["r"]["rows"]] == expected


def test_simulate_still_matches_sets_with_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "CHUNK_ROWS", 64)
    a = [f"x{i}" for i in range(700)]
    b = [f"x{i}" for i in range(350, 900)]
    out = psi.simulate({"a": a, "b": b})
    assert out["a"] == out["b"] == sorted(set(a) & set(b))
    assert psi.simulate({"a": a, "b": b}, cardinality_only=True) == {"a": 350, "b": 350}


def test_rows_in_matches_isin_including_prefix_collisions() -> None:
    rng = np.random.default_rng(5)
    hay = rng.integers(0, 256, (500, 16), dtype=np.uint8)
    needles = np.concatenate([hay[::3], rng.integers(0, 256, (200, 16), dtype=np.uint8)])
    near = hay[:5].copy()
    near[:, 15] ^= 1  # same first 8 bytes, different row: must not match
    needles = np.concatenate([needles, near])
    expected = np.isin(common.sortable(needles), common.sortable(hay))
    assert np.array_equal(common.rows_in(needles, hay), expected)
    hay2 = np.concatenate([hay, near])  # two hay rows share 8 bytes: the fallback path
    expected2 = np.isin(common.sortable(needles), common.sortable(hay2))
    assert np.array_equal(common.rows_in(needles, hay2), expected2)
    assert common.rows_in(needles[:0], hay).shape == (0,)
    assert not common.rows_in(needles, hay[:0]).any()


def test_component_reports_phase_timings() -> None:
    out = run_simulation(
        psi_component,
        {"r": ("receiver",), "s": ("sender",)},
        params={"normalize": "exact"},
        inputs={"r": {"ids": ["a", "b"]}, "s": {"ids": ["b", "c"]}},
        component_name="psi",
    )
    stats = out["r"]["stats"]
    for phase in ("prepare_ids", "own_hash_blind_send", "peer_recv_reblind", "match", "total"):
        assert stats[f"psi.seconds.{phase}"] >= 0.0
    assert "psi.seconds.peer_recv_reblind_send" in out["s"]["stats"]


def test_long_chunk_is_added_in_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "ADD_STEP", 3)
    values = ["a", "b", "a", "c", None, "b", "d", "e", "a"]
    p = prepare_ids(values, "exact")
    keys, originals, rows = _reference(values, "exact")
    assert list(p.keys) == keys and p.rows.tolist() == rows and list(p.originals) == originals
    assert p.n_input == len(values) and p.n_duplicates == 3 and p.n_missing == 1


_ASCII_IDS = st.lists(
    st.text(alphabet=" \t\x1c\x1fAaBbZz09-_\x00\x7f", max_size=6), min_size=1, max_size=40
)


@settings(max_examples=40, deadline=None)
@given(_ASCII_IDS, st.sampled_from(["exact", "trim", "trim_casefold"]), st.integers(1, 9))
def test_ascii_fast_path_matches_per_id_path(values: list[str], rule: str, step: int) -> None:
    # ASCII chunks of plain strings take the vectorised path; other chunks the per-id path:
    # both must give the reference keys, spellings, rows and counters
    chunks = [values[i : i + step] for i in range(0, len(values), step)]
    fast = prepare_ids(chunks, rule, "first", chunked=True)
    slow = prepare_ids([[*c, None] for c in chunks], rule, "first", chunked=True)  # None: slow
    keys, originals, _ = _reference(values, rule)
    assert list(fast.keys) == keys == list(slow.keys)
    assert list(fast.originals) == originals == list(slow.originals)
    ref_rows = _reference([v for c in chunks for v in [*c, None]], rule)[2]
    assert slow.rows.tolist() == ref_rows
    assert fast.rows.tolist() == _reference(values, rule)[2]
    assert fast.n_duplicates == slow.n_duplicates
    assert fast.n_missing == slow.n_missing - len(chunks)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(max_size=8), min_size=1, max_size=30, unique=True), st.randoms())
def test_key_order_is_code_point_order(values: list[str], rnd: random.Random) -> None:
    p = prepare_ids(values, "exact")
    picked = np.array(rnd.sample(range(len(values)), k=rnd.randint(1, len(values))))
    at, keys = p.in_key_order(picked)
    expected = sorted(values[i] for i in picked.tolist())
    assert keys == expected and [values[i] for i in at.tolist()] == expected


def test_key_order_of_long_keys_and_trailing_nul() -> None:
    values = ["a\x00", "a", "b" * 100, "a\x00\x01", "é", "\x7f"]
    p = prepare_ids(values, "exact")
    at, keys = p.in_key_order(np.arange(len(values)))
    assert keys == sorted(values) and at.tolist() == [values.index(k) for k in sorted(values)]
    at, keys = p.in_key_order(np.array([0, 1, 3]))  # all short: the vectorised sort
    assert keys == ["a", "a\x00", "a\x00\x01"]


def test_id_hash_is_safe_from_several_threads() -> None:
    """The parties of a simulation and a thread pool's workers prepare ids at the same time:
    the dedup hash must not share a cipher context between threads ("Already borrowed")."""
    buf = np.frombuffer(bytes(range(256)) * 8_000, dtype=np.uint8)
    starts = np.arange(0, buf.size - 16, 16, dtype=np.int64)
    ends = starts + 16 + (starts % 7)
    expected = ids._hash64(buf, starts, ends)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(15):
                assert np.array_equal(ids._hash64(buf, starts, ends), expected)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=200))
def test_unique_sorted_is_np_unique(values: list[int]) -> None:
    # the sort-and-mask replacement of np.unique used by KKRT's matcher
    arr = np.asarray(values, dtype=np.int64)
    got = common.unique_sorted(arr)
    assert got.dtype == np.int64
    assert np.array_equal(got, np.unique(arr))
    assert got.tolist() == sorted(set(values))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.text(alphabet="ab\x00é\x7f", min_size=0, max_size=40),
        min_size=1,
        max_size=40,
        unique=True,
    ),
    st.randoms(),
)
def test_key_order_across_word_boundaries_and_without_keys(
    values: list[str], rnd: random.Random
) -> None:
    """[16] keys sorted as big-endian 64-bit words: long shared prefixes, NUL bytes and lengths
    across word boundaries sort in code point order; ``with_keys=False`` gives the same
    positions and no keys."""
    stem = "x" * rnd.randint(0, 9)
    values = [stem + v for v in values]
    p = prepare_ids(values, "exact")
    picked = np.array(rnd.sample(range(len(values)), k=rnd.randint(1, len(values))))
    at, keys = p.in_key_order(picked)
    expected = sorted(values[i] for i in picked.tolist())
    assert keys == expected and [values[i] for i in at.tolist()] == expected
    bare, none = p.in_key_order(picked, with_keys=False)
    assert none == [] and np.array_equal(bare, at)


class _FixedBytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def bytes(self, k: int) -> bytes:
        assert k == len(self.data)
        return self.data


@pytest.mark.parametrize("n", [1, 2, 3, 1_000, 70_001])
def test_random_permutation_is_the_stable_argsort_of_its_keys(n: int) -> None:
    """[16] the sender's shuffle from one sort (positions in the keys' low bits, runs equal in
    the other bits ordered by full key) is the stable argsort of the 64-bit keys it drew:
    random keys, and keys built to tie in their high bits and in full."""
    from privfin.psi.common import random_permutation

    rng = np.random.default_rng(n)
    random_keys = rng.integers(0, 2**64, n, dtype=np.uint64)
    tied = (rng.integers(0, 4, n, dtype=np.uint64) << np.uint64(40)) | rng.integers(
        0, 3, n, dtype=np.uint64
    )
    for keys in (random_keys, tied):
        got = random_permutation(_FixedBytes(keys.tobytes()), n)  # type: ignore[arg-type]
        assert got.dtype == np.int64
        assert np.array_equal(got, np.argsort(keys, kind="stable"))
