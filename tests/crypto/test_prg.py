"""The PRG's uint64 expansion is the little-endian reading of its byte stream."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.crypto import prg
from privfin.crypto.prg import expand_bytes, expand_uint64

SEED = bytes(range(32))


@pytest.mark.parametrize("count", [0, 1, 2, 7, 1000, 70_001])
@pytest.mark.parametrize("stream", [0, 9, 2**64 - 1])
def test_expand_uint64_reads_the_byte_stream_little_endian(count: int, stream: int) -> None:
    got = expand_uint64(SEED, count, stream=stream)
    want = np.frombuffer(expand_bytes(SEED, 8 * count, stream=stream), dtype="<u8")
    assert got.dtype == np.uint64 and got.shape == (count,) and got.flags.writeable
    np.testing.assert_array_equal(got, want)
    got[:] = 0  # the caller owns its array: the next expansion is unaffected
    np.testing.assert_array_equal(expand_uint64(SEED, count, stream=stream), want)


def test_expansions_beyond_the_cached_zeros_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prg, "_ZEROS", [b""])
    monkeypatch.setattr(prg, "_ZEROS_CAP", 64)
    big = expand_uint64(SEED, 500, stream=3)  # not cached (4,000 bytes > 64)
    assert len(prg._ZEROS[0]) == 0
    small = expand_uint64(SEED, 4, stream=3)  # cached
    assert len(prg._ZEROS[0]) == 32
    np.testing.assert_array_equal(big[:4], small)
    want = np.frombuffer(expand_bytes(SEED, 4000, stream=3), dtype="<u8")
    np.testing.assert_array_equal(big, want)


def test_streams_and_seeds_differ() -> None:
    a = expand_uint64(SEED, 64)
    assert not np.array_equal(a, expand_uint64(SEED, 64, stream=1))
    assert not np.array_equal(a, expand_uint64(bytes(32), 64))
    with pytest.raises(ValueError):
        expand_uint64(b"short", 4)
    with pytest.raises(ValueError):
        expand_uint64(SEED, -1)
