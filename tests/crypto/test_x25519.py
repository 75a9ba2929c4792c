"""X25519 blinding with an Elligator 2 hash: RFC test vectors, commutativity, validation of
untrusted points, and the compiled kernel against the pure path (byte for byte)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.crypto import x25519 as x
from privfin.crypto.random import SeededRandom

P = x.FIELD_PRIME
DST = b"privfin-test"
# Points of small order on curve25519 (u = 0 has order 2, u = 1 order 4, the other two order
# 8); p - 1 is the u of a point of order 4 on the twist.
SMALL_ORDER = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
]


def _row(u: int) -> np.ndarray:
    return np.frombuffer(u.to_bytes(32, "little"), np.uint8)[None, :].copy()


def _packed(items: list[bytes]) -> tuple[bytes, np.ndarray]:
    return b"".join(items), np.cumsum([len(i) for i in items], dtype=np.int64)


# RFC 9380 Appendix J.7.2, suite curve25519_XMD:SHA-512_ELL2_NU_: msg -> (u, Q.x, P.x), hex of
# the big-endian field elements.
NU_VECTORS = {
    b"": (
        "608d892b641f0328523802a6603427c26e55e6f27e71a91a478148d45b5093cd",
        "51125222da5e763d97f3c10fcc92ea6860b9ccbbd2eb1285728f566721c1e65b",
        "1bb913f0c9daefa0b3375378ffa534bda5526c97391952a7789eb976edfe4d08",
    ),
    b"abc": (
        "46f5b22494bfeaa7f232cc8d054be68561af50230234d7d1d63d1d9abeca8da5",
        "7d56d1e08cb0ccb92baf069c18c49bb5a0dcd927eff8dcf75ca921ef7f3e6eeb",
        "7c22950b7d900fa866334262fcaea47a441a578df43b894b4625c9b450f9a026",
    ),
}


@pytest.mark.parametrize("msg", sorted(NU_VECTORS))
def test_rfc9380_encode_to_curve_vectors(msg: bytes) -> None:
    dst = b"QUUX-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_NU_"
    u, qx, px = (int(h, 16) for h in NU_VECTORS[msg])
    assert x.hash_to_field(msg, dst) == u
    assert x.map_to_curve_u(u) == qx
    assert x.clear_cofactor_u(qx) == px
    assert x.hash_to_u(msg, dst) == qx.to_bytes(32, "little")
    data, ends = _packed([b"zz", msg, b"q"])
    assert bytes(x.hash_to_u_packed(data, ends, dst)[1]) == qx.to_bytes(32, "little")


@pytest.mark.parametrize("kernel", [False, None])
def test_rfc7748_vector(kernel: bool | None) -> None:
    # RFC 7748 §5.2, first X25519 test vector.
    k = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    want = "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    arr = np.frombuffer(u, np.uint8)[None, :]
    assert x.scalarmult_batch(k, arr, kernel=kernel)[0].tobytes().hex() == want


@settings(max_examples=15, deadline=None)
@given(st.lists(st.binary(max_size=30), max_size=12), st.integers(1, 2**32))
def test_blinding_commutes(msgs: list[bytes], seed: int) -> None:
    rnd = SeededRandom(seed)
    a, b = x.X25519Key.generate(rnd), x.X25519Key.generate(rnd)
    data, ends = _packed(msgs)
    h = x.hash_to_u_packed(data, ends, DST)
    assert h.shape == (len(msgs), 32)
    ab = a.blind(b.blind(h))
    assert np.array_equal(ab, b.blind(a.blind(h)))
    assert np.array_equal(
        x.hash_blind_packed(a.secret_bytes_for_checkpoint(), data, ends, DST), a.blind(h)
    )
    # equal messages give equal double-blinded points, distinct ones distinct points
    for i in range(len(msgs)):
        for j in range(len(msgs)):
            assert (msgs[i] == msgs[j]) == bool((ab[i] == ab[j]).all())


def test_kernel_map_edge_cases() -> None:
    ts = [0, 1, 2, P - 1, P - 2, 2**254, *[(7**k * 0x9E3779B97F4A7C15) % P for k in range(60)]]
    want = [x.map_to_curve_u(t) for t in ts]
    assert len(set(want)) > 30
    if not x.KERNEL:  # the pure path alone (checked against the RFC vectors above)
        assert want[0] == 0  # t = 0: x1 = -A, g(-A) = -A is not a square: u = 0 (order 2)
        return
    out = np.empty((len(ts), 32), np.uint8)
    x._KERNEL.elligator_batch(b"".join(t.to_bytes(32, "little") for t in ts), out)
    assert [int.from_bytes(bytes(r), "little") for r in out] == want


def test_domain_separation_and_canonical_outputs() -> None:
    assert x.hash_to_u(b"a", b"one") != x.hash_to_u(b"a", b"two")
    data, ends = _packed([f"id-{i}".encode() for i in range(200)])
    h = x.hash_to_u_packed(data, ends, DST)
    assert all(x.is_on_curve(int.from_bytes(bytes(r), "little")) for r in h)
    assert (h[:, 31] < 0x80).all()


@pytest.mark.parametrize(
    ("u", "why"),
    [
        (P, "canonical"),
        (P + 1, "canonical"),
        (2**255 - 1, "canonical"),
        (2, "twist"),
        (P - 1, "twist"),
        *[(u, "small order") for u in SMALL_ORDER],
    ],
)
@pytest.mark.parametrize("kernel", [False, None])
def test_invalid_points_rejected(u: int, why: str, kernel: bool | None) -> None:
    key = x.X25519Key.generate(SeededRandom(3)).secret_bytes_for_checkpoint()
    good = x.hash_to_u_packed(*_packed([b"a", b"b", b"c"]), DST)
    rows = np.vstack([good[:2], _row(u), good[2:]])
    with pytest.raises(x.InvalidPointError, match=why) as info:
        x.scalarmult_batch(key, rows, kernel=kernel)
    assert info.value.index == 2
    top = good.copy()
    top[1, 31] |= 0x80  # the top bit set: refused, never silently masked
    with pytest.raises(x.InvalidPointError, match="canonical"):
        x.scalarmult_batch(key, top, kernel=kernel)


def test_bad_shapes_and_keys() -> None:
    key = bytes(32)
    with pytest.raises(x.InvalidPointError):
        x.scalarmult_batch(key, np.zeros((2, 31), np.uint8))
    with pytest.raises(ValueError, match="32 bytes"):
        x.scalarmult_batch(b"short", np.zeros((1, 32), np.uint8))
    with pytest.raises(ValueError, match="last end"):
        x.hash_to_u_packed(b"abc", np.array([2]), DST)
    assert x.scalarmult_batch(key, np.zeros((0, 32), np.uint8)).shape == (0, 32)
    assert repr(x.X25519Key(key)) == "X25519Key(<secret>)"


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 33])
def test_kernel_is_byte_identical_to_the_pure_path(n: int) -> None:
    rnd = SeededRandom(n)
    key = x.X25519Key.generate(rnd).secret_bytes_for_checkpoint()
    data, ends = _packed([rnd.bytes(1 + i % 5) for i in range(n)])
    pure = x.hash_blind_packed(key, data, ends, DST, kernel=False)
    if not x.KERNEL:
        # Not built or no AVX-512 IFMA here: asking for it is a clear error, and the automatic
        # choice is the pure path.
        with pytest.raises(RuntimeError, match="kernel"):
            x.hash_blind_packed(key, data, ends, DST, kernel=True)
        assert np.array_equal(x.hash_blind_packed(key, data, ends, DST), pure)
        return
    assert np.array_equal(x.hash_blind_packed(key, data, ends, DST, kernel=True), pure)
    assert np.array_equal(
        x.hash_to_u_packed(data, ends, DST, kernel=True),
        x.hash_to_u_packed(data, ends, DST, kernel=False),
    )
    # arbitrary canonical u (half of them twist points): same products, same first rejection
    raw = np.frombuffer(rnd.bytes(32 * max(n, 1) * 4), np.uint8).reshape(-1, 32).copy()
    raw[:, 31] &= 0x7F
    on_curve = np.array([x.is_on_curve(int.from_bytes(bytes(r), "little")) for r in raw])
    ok = raw[on_curve]
    assert np.array_equal(
        x.scalarmult_batch(key, ok, kernel=True), x.scalarmult_batch(key, ok, kernel=False)
    )
    errors = []
    for kernel in (True, False):
        with pytest.raises(x.InvalidPointError) as info:
            x.scalarmult_batch(key, raw, kernel=kernel)
        errors.append((str(info.value), info.value.index))
    assert errors[0] == errors[1]
    assert errors[0][1] == int(np.flatnonzero(~on_curve)[0])
