"""KKRT PSI (protocol="kkrt"): exact agreement with Python sets, cuckoo hashing and its stash,
parameters and bounds, alignment, tamper tests."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import privfin.psi as psi
from privfin.cli.psi import psi as cli_psi
from privfin.crypto import ot as otm
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub, MemoryTransport
from privfin.psi import kkrt, kkrt_receiver, kkrt_sender
from privfin.psi.messages import KKRT_CODE_BITS, KkrtExtend, KkrtReply, KkrtSetup, KkrtValues
from privfin.runtime import simulate as run_simulation


def make_sets(n_a: int, n_b: int, overlap: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    pool = [f"id-{i}-{rng.random():.6f}" for i in range(n_a + n_b)]
    a = pool[:overlap] + pool[overlap:n_a]
    b = pool[:overlap] + pool[n_a : n_a + n_b - overlap]
    rng.shuffle(a)
    rng.shuffle(b)
    return a, b


CASES = {
    "both-empty": ([], []),
    "empty-receiver": ([], ["x", "y"]),
    "empty-sender": (["x", "y"], []),
    "one-one-equal": (["x"], ["x"]),
    "one-one-different": (["x"], ["y"]),
    "identical": (["a", "b", "c"], ["c", "b", "a"]),
    "disjoint": (["a", "b"], ["c", "d"]),
    "duplicates": (["a", "a", "b", "c", "c"], ["c", "c", "a", "z"]),
    "unicode": (["客户-001", "Müller", "émile", "😀", " sp ", ""], ["😀", "Müller", "muller", ""]),
    "random": make_sets(300, 200, 77),
    "random-large": make_sets(4000, 2500, 1234, seed=3),
}


def kkrt_simulate(a: list[str], b: list[str], **kw: Any) -> dict[str, Any]:
    return psi.simulate({"r": a, "s": b}, protocol="kkrt", **kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_set_intersection(case: str) -> None:
    a, b = CASES[case]
    out = kkrt_simulate(a, b, seed=1)
    expected = sorted(set(a) & set(b))
    assert out == {"r": expected, "s": expected}


def test_receiver_only_and_same_as_ecdh() -> None:
    a, b = make_sets(500, 700, 321, seed=4)
    out = kkrt_simulate(a, b, reveal_to="receiver")
    assert out == {"r": sorted(set(a) & set(b))}
    assert psi.simulate({"r": a, "s": b}, reveal_to="receiver") == out


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.text(max_size=5), max_size=15),
    st.lists(st.text(max_size=5), max_size=15),
)
def test_property_exact_agreement(a: list[str], b: list[str]) -> None:
    b = b + a[: len(a) // 2]
    expected = sorted(set(a) & set(b))
    assert kkrt_simulate(a, b) == {"r": expected, "s": expected}


def test_many_batches_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    for role in (kkrt_receiver, kkrt_sender):
        monkeypatch.setattr(role, "KKRT_BATCH_BINS", 128)
    monkeypatch.setattr(kkrt_sender, "CHUNK_ROWS", 37)
    a, b = make_sets(700, 400, 150, seed=6)
    expected = sorted(set(a) & set(b))
    assert kkrt_simulate(a, b) == {"r": expected, "s": expected}


def test_component_aligns_tables_like_ecdh() -> None:
    ta = pd.DataFrame({"cid": ["c3", "c1", "c2", "c9"], "income": [3, 1, 2, 9]})
    tb = pd.DataFrame({"cid": ["c2", "c5", "c3", "c1 "], "score": [20, 50, 30, 10]})
    out = run_simulation(
        psi.psi_component,
        {"bank": ("receiver",), "telco": ("sender",)},
        params={"protocol": "kkrt", "reveal_to": "both", "id_column": "cid"},
        inputs={"bank": {"table": ta}, "telco": {"table": tb}},
    )
    assert out["bank"]["keys"] == out["telco"]["keys"] == ["c1", "c2", "c3"]
    assert out["bank"]["table"]["income"].tolist() == [1, 2, 3]
    assert out["telco"]["table"]["score"].tolist() == [10, 20, 30]
    assert out["bank"]["rows"] == [1, 2, 0]
    assert "psi.seconds.extend_send" in out["bank"]["stats"]


def test_refused_configurations() -> None:
    with pytest.raises(ConfigError, match="exactly two parties"):
        psi.simulate({"a": ["x"], "b": ["x"], "c": ["x"]}, protocol="kkrt")
    with pytest.raises(ConfigError, match="size only"):
        psi.simulate({"a": ["x"], "b": ["x"]}, protocol="kkrt", cardinality_only=True)


def test_protocol_mismatch_aborts() -> None:
    def comp(ctx, params, inputs):  # type: ignore[no-untyped-def]
        p = {"protocol": "kkrt" if ctx.party == "a" else "ecdh"}
        return psi.psi_component(ctx, p, inputs)

    with pytest.raises(ProtocolAbort, match="runs"):
        run_simulation(
            comp,
            {"a": ("receiver",), "b": ("sender",)},
            inputs={"a": {"ids": ["x"]}, "b": {"ids": ["x"]}},
        )


# ------------------------------------------------------------------------------ cuckoo


def _check_table(
    pos: np.ndarray, table: np.ndarray, which: np.ndarray, stashed: np.ndarray
) -> None:
    placed = table[table >= 0]
    assert np.unique(placed).size == placed.size
    assert np.intersect1d(placed, stashed).size == 0
    assert placed.size + stashed.size == pos.shape[0]
    bins = np.flatnonzero(table >= 0)
    assert np.array_equal(pos[table[bins], which[bins]], bins)


@pytest.mark.parametrize("n", [0, 1, 2, 64, 1000, 50_000])
def test_cuckoo_places_everything(n: int) -> None:
    rng = np.random.default_rng(n)
    m = kkrt.table_size(n)
    pos = rng.integers(0, m, size=(n, 3))
    table, which, stashed = kkrt.cuckoo(pos, m, kkrt.STASH, rng)
    _check_table(pos, table, which, stashed)
    assert stashed.size == 0


@pytest.mark.parametrize(("n", "m"), [(0, 64), (1, 64), (5, 1000), (3000, 1000), (20_000, 30_000)])
def test_first_claims_is_unique_with_first_index(n: int, m: int) -> None:
    # both paths (the sort for few claims, the scattered minimum for many) against np.unique
    b = np.random.default_rng(n + m).integers(0, m, size=n)
    ub, first = kkrt._first_claims(b, m)
    want_ub, want_first = np.unique(b, return_index=True)
    assert np.array_equal(ub, want_ub) and np.array_equal(first, want_first)
    assert ub.dtype == first.dtype == np.int64


def test_cuckoo_stash_and_failure() -> None:
    rng = np.random.default_rng(7)
    # 4 items whose 3 bins are all bin 0 or 1: two fit, two must be stashed
    pos = np.array([[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 0, 1], [2, 3, 4]])
    table, which, stashed = kkrt.cuckoo(pos, 8, 2, rng)
    _check_table(pos, table, which, stashed)
    assert stashed.size == 2
    with pytest.raises(kkrt.CuckooFailure, match="homeless"):
        kkrt.cuckoo(pos, 8, 1, rng)


def test_protocol_with_stashed_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force items into the stash: they must still be found (via the stash bins)."""
    original = kkrt.cuckoo
    seen: list[int] = []

    def stash_first(pos, m, stash, rng):  # type: ignore[no-untyped-def]
        table, which, stashed = original(pos, m, stash, rng)
        assert stashed.size == 0
        bins = np.flatnonzero(table >= 0)[:stash]
        moved = table[bins].copy()
        table[bins] = -1
        which[bins] = -1
        seen.append(moved.size)
        return table, which, np.sort(moved)

    monkeypatch.setattr(kkrt_receiver, "cuckoo", stash_first)
    a = ["a", "b", "c", "d", "e"]
    out = kkrt_simulate(a, ["e", "d", "c", "b", "a", "z"])
    assert seen == [kkrt.STASH]
    assert out == {"r": a, "s": a}


def _matcher_case(prefix_clash: bool) -> tuple[Any, ...]:
    """Own values of 40 bins (classes 0-2, one stash bin) and a sender block that holds some
    of them in the right class, some in a wrong class, and near misses."""
    rng = np.random.default_rng(11)
    width, total, m = 10, 48, 44
    own = rng.integers(0, 256, (total, width), dtype=np.uint8)
    if prefix_clash:  # two of our values share their first 8 bytes: the fallback path
        own[5, :8] = own[6, :8]
    item = np.full(total, -1, dtype=np.int64)
    item[:40] = rng.permutation(40)
    item[m] = 40  # the stash bin holds item 40
    cls = np.zeros(total, dtype=np.int64)
    cls[:m] = rng.integers(0, kkrt.HASHES, m)
    cls[m:] = kkrt.HASHES
    classes = kkrt.HASHES + kkrt.STASH
    theirs = rng.integers(0, 256, (30, classes * width), dtype=np.uint8)
    want_items, want_rows = set(), set()
    for row, b in enumerate([3, 5, 6, 17, 29, m]):  # right class: found
        c = int(cls[b])
        theirs[row, c * width : (c + 1) * width] = own[b]
        want_items.add(int(item[b]))
        want_rows.add(row)
    for row, b in [(10, 8), (11, 9)]:  # wrong class: not found
        c = (int(cls[b]) + 1) % kkrt.HASHES
        theirs[row, c * width : (c + 1) * width] = own[b]
    for row, b in [(12, 12)]:  # right class, last byte differs: not found
        c = int(cls[b])
        theirs[row, c * width : (c + 1) * width] = own[b]
        theirs[row, (c + 1) * width - 1] ^= 1
    for row, b in [(13, 42)]:  # an empty bin's value: never found
        c = int(cls[b])
        theirs[row, c * width : (c + 1) * width] = own[b]
    return own, item, cls, theirs, width, want_items, want_rows


@pytest.mark.parametrize("prefix_clash", [False, True])
@pytest.mark.parametrize("chunk", [30, 7, 1])
def test_matcher_finds_exactly_the_right_class(prefix_clash: bool, chunk: int) -> None:
    own, item, cls, theirs, width, want_items, want_rows = _matcher_case(prefix_clash)
    matcher = kkrt.Matcher(own, item, cls, width)
    assert matcher.unique_prefix is not prefix_clash
    for a in range(0, theirs.shape[0], chunk):  # chunk by chunk, as the values arrive
        matcher.add(theirs[a : a + chunk], a)
    items, rows = matcher.result()
    assert set(items.tolist()) == want_items and set(rows.tolist()) == want_rows
    assert items.tolist() == sorted(want_items) and rows.tolist() == sorted(want_rows)


def test_parameters_and_bounds() -> None:
    # PSWW18 fit at n = 2^20: e = (40 + 130 + 20) / 123.5 ≈ 1.54
    assert abs(kkrt.table_size(2**20) / 2**20 - (40 + 130 + 20) / 123.5) < 0.002
    assert kkrt.table_size(0) == 64
    assert kkrt.table_size(1) >= 64
    for n in (10, 100, 1000, 10**5, 10**7):
        assert kkrt.table_size(n) >= 1.2 * n
    for n_r, n_s in [(0, 0), (1, 1), (10**6, 10**6), (2**32 - 1, 2**32 - 1)]:
        w = kkrt.value_bytes(n_r, n_s)
        assert 8 <= w <= 16
        assert float(max(n_r, 1) * max(n_s, 1)) * 2.0 ** (-8 * w) <= 2.0**-40
    assert kkrt.value_bytes(10**6, 10**6) == 10


def test_codes_are_far_apart_and_outputs_differ() -> None:
    enc = kkrt._ecb(bytes(range(16)))
    d = np.random.default_rng(1).integers(0, 256, size=(2000, 16), dtype=np.uint8)
    c = kkrt.codes(enc, d, 0)
    dist = np.unpackbits(c[:-1] ^ c[1:], axis=1).sum(axis=1)
    assert dist.min() > 128  # far from the 2^-92 tail of 512-bit random words
    assert not np.array_equal(kkrt.codes(enc, d, 1), c)
    h = kkrt.out_hash(enc, c, np.arange(2000), 16)
    assert np.unique(h.view("S16")).size == 2000
    h2 = kkrt.out_hash(enc, c, np.arange(1, 2001), 16)
    assert not (h == h2).all(axis=1).any()


def test_oprf_relation_at_the_math_level() -> None:
    """The sender's key for a bin evaluated on the receiver's item equals the receiver's
    value; on any other item it differs."""
    rng = np.random.default_rng(2)
    nb = 128
    s = rng.integers(0, 2, KKRT_CODE_BITS).astype(np.uint8)
    k0 = rng.integers(0, 256, (KKRT_CODE_BITS, 16), dtype=np.uint8)
    k1 = rng.integers(0, 256, (KKRT_CODE_BITS, 16), dtype=np.uint8)
    ks = np.where(s.reshape(-1, 1).astype(bool), k1, k0)
    enc = kkrt._ecb(bytes(16))
    d = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
    c = kkrt.codes(enc, d, 0)
    t0 = otm.RowPrg(k0).next(nb // 8)
    u = otm.RowPrg(k1).next(nb // 8) ^ t0 ^ otm.transpose_bits(c)
    q = np.ascontiguousarray(otm.RowPrg(ks).next(nb // 8))
    q[s.astype(bool)] ^= u[s.astype(bool)]
    qr = otm.transpose_bits(q)
    srow = np.packbits(s, bitorder="little")
    bins = np.arange(nb)
    mine = kkrt.out_hash(enc, otm.transpose_bits(t0), bins, 16)
    theirs = kkrt.out_hash(enc, qr ^ (c & srow), bins, 16)
    assert np.array_equal(mine, theirs)
    other = kkrt.out_hash(enc, qr ^ (kkrt.codes(enc, d[::-1], 0) & srow), bins, 16)
    assert not (other == mine).all(axis=1).any()


# ------------------------------------------------------------------------------ leakage


def test_wire_carries_no_ids_or_digests() -> None:
    a, b = make_sets(60, 80, 30, seed=9)
    b = [*b, "SECRET-sender-id"]
    hub = MemoryHub()
    kkrt_simulate(a, b, reveal_to="receiver", hub=hub)
    wire = b"".join(p for _, p in hub.wire)
    for ident in a + b:
        assert ident.encode() not in wire


# ------------------------------------------------------------------------------ tamper


def _tampering(tag: str, forge: Any) -> None:
    original = MemoryTransport.send

    def send(self: MemoryTransport, key, payload):  # type: ignore[no-untyped-def]
        if key.tag == tag:
            payload = forge(codec.decode(payload))
        return original(self, key, payload)

    MemoryTransport.send = send  # type: ignore[method-assign]
    try:
        kkrt_simulate(["a", "b", "c"], ["b", "c", "d"])
    finally:
        MemoryTransport.send = original  # type: ignore[method-assign]


def test_tampered_base_ot_points_abort() -> None:
    def forge(msg: KkrtReply) -> bytes:
        pts = bytearray(msg.points)
        pts[:32] = b"\xff" * 32
        return codec.encode(KkrtReply(points=bytes(pts), share=msg.share))

    with pytest.raises(ProtocolAbort, match="base-OT reply refused"):
        _tampering("kkrt.reply", forge)


def test_tampered_base_ot_setup_point_aborts() -> None:
    """[16] The sender's side of the shared base-OT set-up refuses an invalid point too."""

    def forge(msg: KkrtSetup) -> bytes:
        return codec.encode(KkrtSetup(point=b"\xff" * 32, share=msg.share))

    with pytest.raises(ProtocolAbort, match="base-OT point refused"):
        _tampering("kkrt.setup", forge)


def test_tampered_extension_offset_aborts() -> None:
    def forge(msg: KkrtExtend) -> bytes:
        return codec.encode(KkrtExtend(offset=msg.offset + 64, cols=msg.cols, u=msg.u))

    with pytest.raises(ProtocolAbort, match="extension bins"):
        _tampering("kkrt.u", forge)


def test_truncated_extension_is_a_decode_error() -> None:
    good = KkrtExtend(offset=0, cols=8, u=bytes(KKRT_CODE_BITS * 8))
    body = codec.encode(good)
    assert isinstance(codec.decode(body), KkrtExtend)
    with pytest.raises(ValueError, match="wrong length"):
        KkrtExtend(offset=0, cols=8, u=bytes(KKRT_CODE_BITS * 8 - 1))

    def forge(msg: KkrtExtend) -> bytes:
        raw = codec.encode(msg)
        return raw[:-5]

    with pytest.raises(DecodeError):
        _tampering("kkrt.u", forge)


def test_tampered_values_width_aborts() -> None:
    def forge(msg: KkrtValues) -> bytes:
        return codec.encode(KkrtValues(offset=msg.offset, rows=msg.rows[:, :-1].copy()))

    with pytest.raises(ProtocolAbort, match="OPRF values"):
        _tampering("kkrt.values", forge)


def test_flipped_value_changes_result_semi_honest_limit() -> None:
    """A wrong but well-formed value is not detected (semi-honest): the match is lost."""

    def forge(msg: KkrtValues) -> bytes:
        rows = msg.rows.copy()
        rows ^= 0xFF
        return codec.encode(KkrtValues(offset=msg.offset, rows=rows))

    original = MemoryTransport.send

    def send(self: MemoryTransport, key, payload):  # type: ignore[no-untyped-def]
        if key.tag == "kkrt.values":
            payload = forge(codec.decode(payload))
        return original(self, key, payload)

    MemoryTransport.send = send  # type: ignore[method-assign]
    try:
        out = kkrt_simulate(["a", "b", "c"], ["b", "c", "d"], reveal_to="receiver")
    finally:
        MemoryTransport.send = original  # type: ignore[method-assign]
    assert out == {"r": []}


# ------------------------------------------------------------------------------ CLI, transports


@pytest.mark.parametrize("transport", ["memory", "nodes"])
def test_cli_protocol_kkrt(tmp_path: Path, transport: str) -> None:
    pd.DataFrame({"id": ["a", "b", " c", "d"], "x": [1, 2, 3, 4]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame({"id": ["c", "b", "z"], "y": [30, 20, 0]}).to_csv(tmp_path / "b.csv", index=False)
    app = typer.Typer()
    app.command()(cli_psi)
    out = tmp_path / "out"
    args = ["--party", f"A={tmp_path / 'a.csv'}", "--party", f"B={tmp_path / 'b.csv'}"]
    args += ["--out", str(out), "--protocol", "kkrt", "--transport", transport]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert pd.read_csv(out / "A.csv")["x"].tolist() == [2, 3]
    assert pd.read_csv(out / "B.csv")["y"].tolist() == [20, 30]
    assert json.loads((out / "summary.json").read_text())["A"]["size"] == 2


def test_deterministic_under_a_seed_and_secrets_are_job_scoped() -> None:
    """The parties' randomness comes from one checkpointed per-job seed (a restarted party
    resends identical messages); its artifact names end in ``.key`` (deleted with the job)."""
    import inspect
    import re

    from privfin.runtime.context import SECRET_SUFFIX

    a, b = make_sets(50, 40, 10, seed=2)
    wires = []
    for seed in (11, 11, 12):
        hub = MemoryHub()
        kkrt_simulate(a, b, hub=hub, seed=seed)
        # per sending party, in its own order (the two threads interleave on the hub)
        wires.append({who: [p for k, p in hub.wire if k.sender == who] for who in ("r", "s")})
    assert wires[0] == wires[1] != wires[2]
    source = inspect.getsource(kkrt_receiver) + inspect.getsource(kkrt_sender)
    names = re.findall(r'job_random\(ctx, "([^"]+)"\)', source)
    assert len(names) == 2
    assert all(n.endswith(SECRET_SUFFIX) for n in names)
