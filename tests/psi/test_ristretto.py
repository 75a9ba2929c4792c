"""ristretto255 helpers: algebraic laws, validation of untrusted points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.crypto.random import SeededRandom
from privfin.crypto.ristretto import (
    BlindingKey,
    InvalidPointError,
    check_points,
    expand_message_xmd_sha512,
    hash_to_group,
    hash_to_group_batch,
    is_valid_point,
    scalarmult,
)

DST = b"privfin-test"


def test_expand_message_xmd_rfc9380_vector() -> None:
    # RFC 9380 Appendix K.3 (expand_message_xmd, SHA-512), msg = "" and len_in_bytes = 0x20.
    dst = b"QUUX-V01-CS02-with-expander-SHA512-256"
    out = expand_message_xmd_sha512(b"", dst, 0x20)
    assert out.hex() == "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"


@settings(max_examples=20)
@given(st.binary(max_size=40), st.integers(1, 2**32))
def test_blinding_commutes_and_inverts(msg: bytes, seed: int) -> None:
    rnd = SeededRandom(seed)
    a, b = BlindingKey.generate(rnd), BlindingKey.generate(rnd)
    p = hash_to_group(msg, DST)
    assert is_valid_point(p)
    assert a.blind_one(b.blind_one(p)) == b.blind_one(a.blind_one(p))
    assert a.inverse().blind_one(a.blind_one(p)) == p


def test_batch_matches_single_and_domain_separates() -> None:
    items = [b"a", b"b", "客户".encode()]
    batch = hash_to_group_batch(items, DST)
    assert [bytes(r) for r in batch] == [hash_to_group(i, DST) for i in items]
    assert hash_to_group(b"a", b"other") != hash_to_group(b"a", DST)


@pytest.mark.parametrize(
    "bad",
    [b"\xff" * 32, bytes(32), (2**255 - 18).to_bytes(32, "little"), b"\x01" + bytes(31)],
)
def test_invalid_points_rejected(bad: bytes) -> None:
    key = BlindingKey.generate(SeededRandom(1))
    assert not is_valid_point(bad)
    with pytest.raises(InvalidPointError):
        key.blind_one(bad)
    good = hash_to_group_batch([b"x", b"y"], DST)
    arr = np.vstack([good, np.frombuffer(bad, dtype=np.uint8)[None, :]])
    with pytest.raises(InvalidPointError) as info:
        key.blind(arr)
    assert info.value.index == 2
    with pytest.raises(InvalidPointError):
        check_points(arr)


def test_wrong_length_rejected() -> None:
    with pytest.raises(InvalidPointError):
        scalarmult(b"\x01" + bytes(31), b"\x00" * 31)
    with pytest.raises(InvalidPointError):
        check_points(np.zeros((2, 31), dtype=np.uint8))


def test_key_hides_itself() -> None:
    key = BlindingKey.generate(SeededRandom(3))
    assert "secret" in repr(key)
    with pytest.raises(ValueError, match="scalar"):
        BlindingKey(bytes(32))
