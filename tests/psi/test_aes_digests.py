"""[16] The vectorised Merkle–Damgård digests of packed keys (``psi._aes.packed_digests``)
against a key-by-key reference: lengths 0 to 70 (one to five blocks, several length classes in
one pass and one class alone), keys anywhere in the buffer, passes split across calls."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.psi import _aes


def _reference(key: bytes, data: bytes, domain: int) -> bytes:
    """One key: zero-padded to whole blocks (at least one), MMO from the IV (length, domain)."""
    enc = _aes.ecb(key)
    blocks = max(1, -(-len(data) // 16))
    padded = data.ljust(16 * blocks, b"\0")
    iv = np.array([[len(data), domain]], dtype=np.uint64)
    words = np.frombuffer(padded, dtype=np.uint64).reshape(1, blocks, 2)
    return _aes.md_mmo(enc, iv, words).tobytes()


@pytest.mark.parametrize("same_length", [False, True])
def test_packed_digests_equal_the_key_by_key_hash(
    same_length: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(17 + same_length)
    n = 600
    lens = np.full(n, 14) if same_length else rng.integers(0, 71, n)
    lens = lens.astype(np.int64)
    gaps = rng.integers(0, 5, n)  # keys need not be back to back
    starts = (np.cumsum(lens + gaps) - lens).astype(np.int64)
    buf = rng.integers(0, 256, int(starts[-1] + lens[-1]) + 3, dtype=np.uint8)
    key = bytes(range(16))
    monkeypatch.setattr(_aes, "DIGEST_ITEMS", 128)  # several passes, a short last one
    got = _aes.packed_digests(_aes.ecb(key), buf, starts, lens, np.uint64(9))
    want = [
        _reference(key, buf[s : s + ln].tobytes(), 9)
        for s, ln in zip(starts.tolist(), lens.tolist(), strict=True)
    ]
    assert [row.tobytes() for row in got] == want
    keys = {buf[s : s + ln].tobytes() for s, ln in zip(starts.tolist(), lens.tolist(), strict=True)}
    assert len(set(want)) == len(keys)  # distinct keys, distinct digests (equal ones repeat)


def test_prefix_masks() -> None:
    m = _aes._prefix_masks(32)
    assert m.shape == (33, 32) and m.dtype == np.uint8
    for k in (0, 1, 16, 31, 32):
        assert m[k].tolist() == [0xFF] * k + [0] * (32 - k)
