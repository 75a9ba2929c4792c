"""Masked packing for a key holder that trusts no requester: honest requests round-trip exactly
at the bounds, anything else is refused (``check_masked_packed``)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.errors import ProtocolAbort
from privfin.he import ou, paillier
from privfin.he._keys import PrivateKeyBase, PublicKeyBase
from privfin.ml.he_linalg import (
    check_masked_packed,
    mask_and_pack,
    packed_size,
    packing_slots,
    unmask_reduced,
)

B, S = 40, 32  # bound and statistical bits (small, to exercise several ciphertexts)
KEYS: dict[str, tuple[PublicKeyBase, PrivateKeyBase]] = {
    "paillier": paillier.generate_keypair(
        768, rng=random.Random(1), insecure_allow_small_keys=True
    ),
    "ou": ou.generate_keypair(768, rng=random.Random(2), insecure_allow_small_keys=True),
}


@settings(max_examples=25, deadline=None)
@given(
    scheme=st.sampled_from(["paillier", "ou"]),
    values=st.lists(st.integers(-(2**B) + 1, 2**B - 1), min_size=1, max_size=9),
    seed=st.integers(0, 2**32),
)
def test_honest_requests_round_trip(scheme: str, values: list[int], seed: int) -> None:
    pk, sk = KEYS[scheme]
    rng = random.Random(seed)
    values = [*values, 2**B - 1, -(2**B) + 1]
    cts = pk.raw_encrypt(values)
    packed, masks, _ = mask_and_pack(pk, cts, B, rng.randrange, stat_bits=S)
    assert len(packed) == packed_size(pk, len(values), B, S)
    reduced = check_masked_packed(pk, sk.raw_decrypt(packed), len(values), B, stat_bits=S)
    assert all(0 <= v < 2 ** (B + 1) for v in reduced)
    assert unmask_reduced(reduced, masks, B) == values


def _plain(slots_values: list[int]) -> int:
    return sum(v << ((B + S + 1) * i) for i, v in enumerate(slots_values))


W = B + S + 1
OK, TOP = 2**B + 5, 2 ** (B + S) + 2**B  # an in-range slot; the first value out of range


@pytest.mark.parametrize(
    ("slots", "match"),
    [
        ([[OK] * 3, [OK]], "2 packed values for 3 entries, 1 expected"),  # one appended
        ([[OK, OK, OK, 1]], "above its last used slot"),  # a value hidden in a free slot
        ([[OK, 0, OK]], "outside the masked range"),  # r >= 2**B makes g + r > 0
        ([[OK, TOP, OK]], "outside the masked range"),  # a widened slot
        ([[OK, OK, 2**W - 1]], "outside the masked range"),
    ],
)
def test_anything_but_a_masked_request_is_refused(slots: list[list[int]], match: str) -> None:
    pk, _ = KEYS["paillier"]
    assert packing_slots(pk, W) > 4
    check_masked_packed(pk, [_plain([OK, TOP - 1, 1])], 3, B, stat_bits=S)  # the edges pass
    with pytest.raises(ProtocolAbort, match=match):
        check_masked_packed(pk, [_plain(v) for v in slots], 3, B, stat_bits=S)


def test_the_requester_checks_the_reply() -> None:
    with pytest.raises(ProtocolAbort, match="expected 2"):
        unmask_reduced([1], [3, 4], B)
    with pytest.raises(ProtocolAbort, match="out of range"):
        unmask_reduced([2 ** (B + 1)], [3], B)
    with pytest.raises(ProtocolAbort, match="outside its bound"):
        unmask_reduced([(2**B + 7) % 2 ** (B + 1)], [7], B)
