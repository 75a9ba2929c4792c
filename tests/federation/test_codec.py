"""The wire codec: round trips for arbitrary values, and every malformed input is a DecodeError."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from privfin.errors import DecodeError
from privfin.federation import codec
from privfin.federation.codec import Message, decode, encode, wire_message


@wire_message("test.Point")
class Point(Message, frozen=True, kw_only=True):
    x: int
    label: str
    data: np.ndarray
    extra: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.data.ndim != 1:
            raise ValueError("data must be 1-D")


_DTYPES = ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"]

arrays = st.sampled_from(_DTYPES).flatmap(
    lambda dt: hnp.arrays(
        np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
    )
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars | arrays,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(-(2**63), 2**63), children, max_size=4)
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


@settings(max_examples=500)
@given(values)
def test_round_trip(value: Any) -> None:
    assert same(value, decode(encode(value)))


def test_big_integers_and_numpy_scalars() -> None:
    n2 = (2**2048 - 159) ** 2
    out = decode(encode([n2, -n2, 2**64 - 1, -(2**63), np.int64(5), np.float32(1.5)]))
    assert out == [n2, -n2, 2**64 - 1, -(2**63), 5, 1.5]


def test_typed_message_round_trip_and_validation() -> None:
    p = Point(x=2**200, label="é", data=np.arange(4, dtype=np.uint64), extra=[1, 2])
    q = decode(encode(p), expect=Point)
    assert q.x == p.x and q.label == p.label and list(q.extra) == [1, 2]
    assert np.array_equal(q.data, p.data) and q.data.dtype == np.uint64
    fields = codec._to_wire({"x": 1, "label": "a", "data": np.zeros((2, 2))}, 0)
    bad = _ext(3, msgspec.msgpack.encode(["test.Point", fields]))
    with pytest.raises(DecodeError, match="1-D"):  # __post_init__ rejects on decode
        decode(bad)
    with pytest.raises(DecodeError, match="expected a Point"):
        decode(encode({"x": 1}), expect=Point)


def test_unregistered_and_unknown_types() -> None:
    class Loose(Message, frozen=True):
        a: int

    with pytest.raises(TypeError):
        encode(Loose(a=1))
    with pytest.raises(TypeError):
        encode({1.5: "float key"})
    with pytest.raises(TypeError):
        encode(np.array(["str"], dtype=object))
    with pytest.raises(TypeError):
        encode({1, 2})
    body = msgspec.msgpack.encode(msgspec.msgpack.Ext(3, msgspec.msgpack.encode(["no.Such", {}])))
    with pytest.raises(DecodeError, match="unknown message type"):
        decode(codec.MAGIC + bytes([codec.VERSION]) + body)


def test_field_type_mismatch_is_decode_error() -> None:
    body = msgspec.msgpack.encode(
        msgspec.msgpack.Ext(3, msgspec.msgpack.encode(["test.Point", {"x": "s", "label": "a"}]))
    )
    with pytest.raises(DecodeError):
        decode(codec.MAGIC + bytes([codec.VERSION]) + body)


def test_limits_and_header() -> None:
    data = encode(b"x" * 1000)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode(data, max_size=100)
    with pytest.raises(DecodeError, match="version"):
        decode(codec.MAGIC + bytes([99]) + data[3:])
    with pytest.raises(DecodeError, match="magic"):
        decode(b"XX" + data[2:])
    with pytest.raises(DecodeError):
        decode(b"")
    with pytest.raises(DecodeError):
        decode("not bytes")  # type: ignore[arg-type]


def _ext(code: int, payload: bytes) -> bytes:
    return (
        codec.MAGIC
        + bytes([codec.VERSION])
        + msgspec.msgpack.encode(msgspec.msgpack.Ext(code, payload))
    )


@pytest.mark.parametrize(
    "header",
    [
        ["<f8", [3], b"\x00" * 16],  # shape does not match the buffer
        ["|O", [1], b"\x00" * 8],  # object dtype refused
        [">f8", [1], b"\x00" * 8],  # big-endian not on the allow-list
        ["<f8", [-1], b""],
        ["<f8", [True], b"\x00" * 8],
        ["<f8", [1] * 40, b"\x00" * 8],
        ["<f8", [2**40, 2**40], b""],
        ["<f8", "3", b""],
        ["<f8", [1]],
        "junk",
    ],
)
def test_malformed_arrays(header: object) -> None:
    with pytest.raises(DecodeError):
        decode(_ext(1, msgspec.msgpack.encode(header)))


@pytest.mark.parametrize("payload", [b"", b"\x02\x01", b"\x00\x00\x01", b"\x00\x05", b"\x00"])
def test_malformed_big_integers(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(_ext(2, payload))


def test_unknown_extension_and_deep_nesting() -> None:
    with pytest.raises(DecodeError, match="unknown extension"):
        decode(_ext(9, b""))
    deep = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(DecodeError):
        decode(codec.MAGIC + bytes([codec.VERSION]) + deep)
    inner = msgspec.msgpack.encode(None)
    for _ in range(codec.MAX_DEPTH + 2):
        inner = msgspec.msgpack.encode(
            msgspec.msgpack.Ext(3, msgspec.msgpack.encode(["test.Point", {"x": inner}]))
        )
    with pytest.raises(DecodeError):
        decode(codec.MAGIC + bytes([codec.VERSION]) + inner)
    with pytest.raises(ValueError):
        encode(_nested(codec.MAX_DEPTH + 5))


def _nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


SAMPLES = [
    encode({"a": [1, 2, 3], "b": np.arange(6, dtype=np.int32).reshape(2, 3), "c": 2**100}),
    encode(Point(x=3, label="p", data=np.ones(3))),
    encode([b"bytes", "str", 1.5, None, True, -(2**70)]),
]


def _only_decode_errors(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)


@settings(max_examples=10_000, database=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    _only_decode_errors(codec.MAGIC + bytes([codec.VERSION]) + data)
    _only_decode_errors(data)


@settings(max_examples=10_000, database=None)
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 10_000),
)
def test_fuzz_mutated_messages(sample: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(sample)
    for pos, val in flips:
        data[3 + pos % (len(data) - 3)] = val
    _only_decode_errors(bytes(data))
    _only_decode_errors(bytes(data[: 3 + cut % (len(data) - 2)]))


@pytest.mark.parametrize("dtype", ["|u1", "<i4", "<f8", ">f8", "|b1", "<c16"])
@pytest.mark.parametrize(
    "shape", [(), (0,), (1,), (3, 5), (0, 3), (40,), (300,), (9000,), (70000,), (2, 3, 4)]
)
def test_a_top_level_array_is_encoded_as_the_general_path_would(
    dtype: str, shape: tuple[int, ...]
) -> None:
    """The one-copy encoder of a top-level array writes the msgpack headers itself: it must
    give exactly the general encoder's bytes (ext and bin headers of every width)."""
    a = np.random.default_rng(len(shape)).integers(0, 100, size=shape).astype(dtype)
    for arr in (a, a.T, a[::2] if a.ndim else a):  # contiguous, transposed, strided
        general = codec._HEADER + codec._body_encoder.encode(codec._to_wire(arr, 0))
        assert codec.encode(arr) == general
        back = codec.decode(general)
        assert back.shape == arr.shape and np.array_equal(back, arr)
        assert back.flags.writeable  # a copy, not a view into the message's buffer:
        assert not np.shares_memory(back, np.frombuffer(general, dtype=np.uint8))


def _reference_encode(obj: Any) -> bytes:
    """The encoding as msgspec makes it from ``_to_wire`` (the definition ``encode`` keeps)."""
    return codec._HEADER + msgspec.msgpack.encode(codec._to_wire(obj, 0))


@wire_message("test.Many")
class Many(Message, frozen=True, kw_only=True):
    items: list[Any]
    blob: bytes = b""


@wire_message("test.Empty")
class Empty(Message, frozen=True):
    pass


big_blobs = st.binary(min_size=4090, max_size=70_000)
wire_values = st.recursive(
    scalars | arrays | big_blobs,
    lambda children: (
        st.lists(children, max_size=20)
        | st.dictionaries(st.text(max_size=8) | st.integers(-(2**63), 2**63), children, max_size=20)
        | st.builds(Many, items=st.lists(children, max_size=4), blob=st.binary(max_size=5000))
        | st.builds(
            Point,
            x=st.integers(-(2**70), 2**70),
            label=st.text(max_size=5),
            data=hnp.arrays(np.uint64, st.integers(0, 3000)),
            extra=st.lists(st.integers(0, 9), max_size=3).map(tuple),
        )
        | st.just(Empty())
    ),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(wire_values)
def test_encode_by_parts_is_byte_identical_to_msgspec(value: Any) -> None:
    """``encode`` references arrays and large byte strings and joins once; the bytes are
    exactly msgspec's encoding of the same wire values (nested messages, long containers,
    every ext and bin header width, empty messages as fixext)."""
    assert encode(value) == _reference_encode(value)


def test_encode_by_parts_big_headers_and_views() -> None:
    arr = np.arange(70_000, dtype=np.uint64)  # a bin32 / ext32 payload inside a message
    msg = Many(items=[arr, arr[::2], arr.astype(">u4"), [0] * 70_000], blob=b"x" * 70_000)
    assert encode(msg) == _reference_encode(msg)
    for view in (memoryview(arr), memoryview(arr)[::2], memoryview(bytearray(9000))):
        assert encode([view]) == _reference_encode([view])
    deep: Any = [1]
    for _ in range(codec.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        encode(deep)
    with pytest.raises(ValueError, match="deeper"):
        encode(Many(items=deep))
