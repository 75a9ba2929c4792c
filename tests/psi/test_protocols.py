"""PSI protocols against Python set intersection, leakage scans, tamper tests."""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import privfin.psi as psi
from privfin.crypto.ristretto import hash_to_group_batch
from privfin.crypto.x25519 import hash_to_u_packed
from privfin.errors import ConfigError, DecodeError, PrivfinError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.psi import common
from privfin.psi.messages import Chunk
from privfin.runtime import simulate as run_simulation


def make_sets(n_a: int, n_b: int, overlap: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    pool = [f"id-{i}-{rng.random():.6f}" for i in range(n_a + n_b)]
    common_ = pool[:overlap]
    a = common_ + pool[overlap:n_a]
    b = common_ + pool[n_a : n_a + n_b - overlap]
    rng.shuffle(a)
    rng.shuffle(b)
    return a, b


CASES = {
    "empty-a": ([], ["x", "y"]),
    "both-empty": ([], []),
    "identical": (["a", "b", "c"], ["c", "b", "a"]),
    "disjoint": (["a", "b"], ["c", "d"]),
    "duplicates": (["a", "a", "b", "c", "c"], ["c", "c", "a", "z"]),
    "unicode": (["客户-001", "Müller", "émile", "😀", " sp "], ["😀", "Müller", "muller", " sp "]),
    "random": make_sets(300, 200, 77),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("protocol", ["ecdh", "unbalanced"])
def test_two_party_matches_set_intersection(case: str, protocol: str) -> None:
    a, b = CASES[case]
    expected = set(a) & set(b)
    out = psi.simulate({"alice": a, "bob": b}, protocol=protocol, seed=1)
    assert set(out) == {"alice", "bob"}
    assert out["alice"] == out["bob"] == sorted(expected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_cardinality(case: str) -> None:
    a, b = CASES[case]
    out = psi.simulate({"alice": a, "bob": b}, cardinality_only=True)
    assert out == {"alice": len(set(a) & set(b)), "bob": len(set(a) & set(b))}


def test_receiver_only() -> None:
    a, b = make_sets(50, 60, 20, seed=3)
    out = psi.simulate({"r": a, "s": b}, reveal_to="receiver")
    assert out == {"r": sorted(set(a) & set(b))}
    out = psi.simulate({"r": a, "s": b}, reveal_to="receiver", cardinality_only=True)
    assert out == {"r": 20}


@pytest.mark.parametrize("n_parties", [3, 4])
@pytest.mark.parametrize("cardinality_only", [False, True])
def test_n_party(n_parties: int, cardinality_only: bool) -> None:
    rng = random.Random(n_parties)
    universe = [f"u{i}" for i in range(120)]
    sets = {f"p{i}": [*rng.sample(universe, 70), "shared"] for i in range(n_parties)}
    expected = set.intersection(*(set(s) for s in sets.values()))
    out = psi.simulate(sets, cardinality_only=cardinality_only, seed=2)
    for party in sets:
        assert out[party] == (len(expected) if cardinality_only else sorted(expected))


def test_multi_chunk_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "CHUNK_ROWS", 7)
    a, b = make_sets(40, 33, 12, seed=5)
    assert psi.simulate({"a": a, "b": b})["a"] == sorted(set(a) & set(b))
    sets = {"a": a, "b": b, "c": a[:25] + b[:25]}
    expected = sorted(set(a) & set(b) & set(sets["c"]))
    assert psi.simulate(sets)["c"] == expected


@settings(max_examples=8, deadline=None)
@given(
    st.lists(st.text(max_size=6), max_size=12),
    st.lists(st.text(max_size=6), max_size=12),
)
def test_property_exact_agreement(a: list[str], b: list[str]) -> None:
    out = psi.simulate({"a": a, "b": b + a[: len(a) // 2]})
    assert out["a"] == sorted(set(a) & set(b + a[: len(a) // 2]))


def test_normalisation_rules() -> None:
    a, b = [" Alice ", "BOB", "carol"], ["alice", "bob ", "Dave"]
    out = psi.simulate({"a": a, "b": b}, normalize="trim_casefold")
    assert out == {"a": [" Alice ", "BOB"], "b": ["alice", "bob "]}
    assert psi.simulate({"a": a, "b": b}, normalize="trim")["a"] == []
    with pytest.raises(PrivfinError, match="repeats"):
        psi.simulate({"a": ["x", "x"], "b": ["x"]}, duplicates="error")


def test_component_aligns_tables() -> None:
    ta = pd.DataFrame({"cid": ["c3", "c1", "c2", "c9"], "income": [3, 1, 2, 9]})
    tb = pd.DataFrame({"cid": ["c2", "c5", "c3", "c1 "], "score": [20, 50, 30, 10]})
    out = run_simulation(
        psi.psi_component,
        {"bank": ("receiver",), "telco": ("sender",)},
        params={"reveal_to": "both", "id_column": "cid"},
        inputs={"bank": {"table": ta}, "telco": {"table": tb}},
    )
    assert out["bank"]["keys"] == out["telco"]["keys"] == ["c1", "c2", "c3"]
    assert out["bank"]["table"]["income"].tolist() == [1, 2, 3]
    assert out["telco"]["table"]["score"].tolist() == [10, 20, 30]


def test_mismatched_parameters_abort() -> None:
    def comp(ctx, params, inputs):  # type: ignore[no-untyped-def]
        p = {"normalize": "exact"} if ctx.party == "a" else {"normalize": "trim"}
        return psi.psi_component(ctx, p, inputs)

    with pytest.raises(ProtocolAbort, match="different parameters"):
        run_simulation(
            comp,
            {"a": ("receiver",), "b": ("sender",)},
            inputs={"a": {"ids": ["x"]}, "b": {"ids": ["x"]}},
        )


def test_bad_params() -> None:
    with pytest.raises(ConfigError):
        psi.simulate({"a": ["x"], "b": ["y"]}, protocol="bogus")
    with pytest.raises(ConfigError):
        psi.simulate({"a": ["x"]})


# ----------------------------------------------------------------------------------- leakage


def _hashes(keys: list[str], curve: str) -> np.ndarray:
    dst = common.suite_domain(_Ctx(), "ecdh", curve)  # type: ignore[arg-type]
    if curve == "ristretto255":
        return hash_to_group_batch(common.encode_keys(keys), dst)
    data = b"".join(common.encode_keys(keys))
    ends = np.cumsum([len(k) for k in common.encode_keys(keys)])
    return hash_to_u_packed(data, ends, dst)


@pytest.mark.parametrize("curve", ["x25519", "ristretto255"])
def test_sender_outbound_bytes_hide_ids_and_hashes(curve: str) -> None:
    a, b = make_sets(60, 80, 30, seed=9)
    b = [*b, "SECRET-sender-id-ÄÖ"]
    hub = MemoryHub()
    psi.simulate({"r": a, "s": b}, reveal_to="receiver", hub=hub, params={"curve": curve})
    hashes = _hashes(b, curve)
    sent = b"".join(p for k, p in hub.wire if k.sender == "s")
    assert len(sent) > 32 * len(b)
    for ident in b:
        assert ident.encode() not in sent
    for row in hashes:
        assert bytes(row[:16]) not in sent
    # the receiver's unblinded hashes do not leave it either
    got = b"".join(p for k, p in hub.wire if k.sender == "r")
    for row in _hashes(a, curve):
        assert bytes(row[:16]) not in got


class _Ctx:
    job = "sim"
    component = "psi"


# ----------------------------------------------------------------------------------- tamper


def forge_chunk(offset: int, rows: np.ndarray) -> bytes:
    """Wire bytes of a psi.Chunk that skips the sender-side checks (what an attacker sends)."""
    fields = {"offset": offset, "rows": msgspec.msgpack.Ext(1, codec._ndarray_bytes(rows))}
    body = msgspec.msgpack.encode(["psi.Chunk", fields])
    return (
        codec.MAGIC + bytes([codec.VERSION]) + msgspec.msgpack.encode(msgspec.msgpack.Ext(3, body))
    )


def _tampering(tag: str, corrupt: str, curve: str = "ristretto255") -> None:
    """Run a PSI where the messages under ``tag`` (``a``: the receiver's, else the sender's)
    are corrupted on the wire."""
    from privfin.federation.memory import MemoryTransport

    original = MemoryTransport.send

    def send(self: MemoryTransport, key, payload):  # type: ignore[no-untyped-def]
        if key.tag == tag and key.sender == ("r" if tag == "a" else "s"):
            msg = codec.decode(payload)
            rows = msg.rows.copy()
            if corrupt == "off-curve":
                rows[0, :] = 0xFF
            elif corrupt == "identity":
                rows[0, :] = 0
            elif corrupt == "twist":  # u = 2 is not on curve25519 (a point of its twist)
                rows[0, :] = 0
                rows[0, 0] = 2
            elif corrupt == "order-8":  # a point of order 8 on curve25519
                rows[0, :] = np.frombuffer(_ORDER_8.to_bytes(32, "little"), np.uint8)
            elif corrupt == "short":
                rows = np.ascontiguousarray(rows[:, :31])
            payload = forge_chunk(msg.offset, rows)
        return original(self, key, payload)

    MemoryTransport.send = send  # type: ignore[method-assign]
    try:
        psi.simulate(
            {"r": ["a", "b", "c"], "s": ["b", "c", "d"]},
            reveal_to="receiver",
            params={"curve": curve},
        )
    finally:
        MemoryTransport.send = original  # type: ignore[method-assign]


_ORDER_8 = 39382357235489614581723060781553021112529911719440698176882885853963445705823


@pytest.mark.parametrize("corrupt", ["off-curve", "identity"])
def test_invalid_points_abort(corrupt: str) -> None:
    with pytest.raises(ProtocolAbort, match="invalid ristretto255 point"):
        _tampering("b", corrupt)


@pytest.mark.parametrize(
    ("corrupt", "why"),
    [
        ("off-curve", "not a canonical u-coordinate"),
        ("identity", "small order"),
        ("twist", "twist point"),
        ("order-8", "small order"),
    ],
)
@pytest.mark.parametrize("tag", ["a", "b"])
def test_invalid_x25519_points_abort(corrupt: str, why: str, tag: str) -> None:
    # tag "b": the receiver refuses the sender's points; tag "a": the sender the receiver's.
    with pytest.raises(ProtocolAbort, match=f"invalid X25519 \\(curve25519\\) point.*{why}"):
        _tampering(tag, corrupt, curve="x25519")


def test_wrong_length_rejected_loudly() -> None:
    assert isinstance(codec.decode(forge_chunk(0, np.zeros((2, 32), np.uint8))), Chunk)
    with pytest.raises(DecodeError, match="rows"):
        codec.decode(forge_chunk(0, np.zeros((2, 31), np.uint8)))
    with pytest.raises(DecodeError, match="rows"):
        codec.decode(forge_chunk(0, np.zeros((2, 32), np.int8)))
    with pytest.raises(DecodeError, match="rows"):
        _tampering("b", "short")
