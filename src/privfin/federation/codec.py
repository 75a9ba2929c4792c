"""Versioned binary codec for everything that crosses a party boundary.

Wire format (version 1)::

    b"PF" | version (1 byte) | msgpack body

The body is MessagePack as written by :mod:`msgspec`, with three extension types:

===== ===================== ==========================================================
code  Python value          payload
===== ===================== ==========================================================
1     ``numpy.ndarray``     msgpack ``[dtype, shape, raw]``: little-endian dtype string from
                            a fixed allow-list, shape as a list of ints, raw C-order buffer
2     ``int`` beyond 64 bit sign byte (0 or 1) followed by the big-endian magnitude
3     :class:`Message`      msgpack ``[wire name, {field: value}]``; the type must be registered
===== ===================== ==========================================================

Plain values: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, lists (tuples are sent
as lists) and dicts with ``str`` or ``int`` keys, nested up to :data:`MAX_DEPTH` levels.

Security property: :func:`decode` never executes code from the input (no pickle, no import by
name: message types come from an explicit registry), refuses inputs above ``max_size`` before
parsing, and raises :class:`~privfin.errors.DecodeError` and nothing else on any malformed input.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import msgspec
import numpy as np

from privfin.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MAGIC",
    "MAX_DEPTH",
    "VERSION",
    "Message",
    "decode",
    "encode",
    "registered_messages",
    "wire_message",
]

MAGIC = b"PF"
VERSION = 1
_HEADER = MAGIC + bytes([VERSION])
DEFAULT_MAX_SIZE = 256 * 1024 * 1024
MAX_DEPTH = 64
MAX_NDIM = 32

_EXT_NDARRAY = 1
_EXT_BIGINT = 2
_EXT_MESSAGE = 3

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

# Allowed array dtypes (little-endian or byte-order-free). Object, string and structured dtypes
# are refused: they could not be decoded without interpretation.
_DTYPES: frozenset[str] = frozenset(
    [
        "|b1",
        "|i1",
        "|u1",
        "<i2",
        "<u2",
        "<i4",
        "<u4",
        "<i8",
        "<u8",
        "<f2",
        "<f4",
        "<f8",
        "<c8",
        "<c16",
    ]
)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base class of typed protocol messages.

    Subclasses declare typed fields (``np.ndarray``, ``int``, ``bytes``, ``list[...]`` …) and are
    registered with :func:`wire_message` under a stable wire name. On decoding, every field is
    type-checked; a subclass may define ``__post_init__`` to check ranges and sizes (raise
    ``ValueError``), which turns a violation into a :class:`DecodeError`.
    """

    wire_name: ClassVar[str] = ""


M = TypeVar("M", bound=type[Message])
T = TypeVar("T")

_REGISTRY: dict[str, type[Message]] = {}
_REGISTRY_LOCK = threading.Lock()


def wire_message(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`Message` subclass under the wire name ``name``.

    Wire names are part of the protocol; keep them stable (``"<protocol>.<Message>"``).
    """

    def register(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, Message)):
            raise TypeError("wire_message can only register Message subclasses")
        with _REGISTRY_LOCK:
            existing = _REGISTRY.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"wire name {name!r} is already registered by {existing!r}")
            _REGISTRY[name] = cls
        cls.wire_name = name
        return cls

    return register


def registered_messages() -> dict[str, type[Message]]:
    """A copy of the registry of message types (wire name to class)."""
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)


# --------------------------------------------------------------------------------------- encode

_body_encoder = msgspec.msgpack.Encoder()


def encode(obj: object) -> bytes:
    """Encode ``obj`` to versioned wire bytes.

    Raises
    ------
    TypeError
        If ``obj`` holds a value of an unsupported type (an object array, a set, a class that is
        not a registered :class:`Message`, a dict key that is not ``str``/``int``).
    ValueError
        If ``obj`` nests deeper than :data:`MAX_DEPTH`.
    """
    parts: list[bytes | bytearray | memoryview] = [_HEADER]
    _parts(obj, 0, parts)
    # Arrays and large byte strings are referenced, not copied, until this one join: the
    # same bytes as msgspec's encoding of ``_to_wire(obj)``, where nested messages copied
    # every array three more times.
    return b"".join(parts)


#: byte strings at least this long are referenced by the parts, not re-encoded
_BIG_BYTES = 4096


def _parts(obj: object, depth: int, out: list[bytes | bytearray | memoryview]) -> int:
    """Append the msgpack encoding of ``_to_wire(obj, depth)`` to ``out`` as parts (large
    buffers by reference); returns its length in bytes."""
    if type(obj) is np.ndarray:
        if depth > MAX_DEPTH:
            raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
        arr, dtype_str = _wire_array(obj)
        if arr.nbytes < _BIG_BYTES:  # a small array: its bytes copied, in one encoding
            body = _body_encoder.encode([dtype_str, list(arr.shape), arr.tobytes()])
            ext = _ext_header(_EXT_NDARRAY, len(body))
            out += (ext, body)
            return len(ext) + len(body)
        data = _raw(arr)
        # the ext payload: msgpack [dtype, shape, bin]; its prefix up to the bin's header
        # comes from the encoder (an empty bin), the header for the data is written here
        head = _body_encoder.encode([dtype_str, list(arr.shape), b""])[:-2]
        head += _bin_header(data.nbytes)
        ext = _ext_header(_EXT_NDARRAY, len(head) + data.nbytes)
        out += (ext, head, data)
        return len(ext) + len(head) + data.nbytes
    if isinstance(obj, Message):
        if depth > MAX_DEPTH:
            raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
        name = type(obj).wire_name
        if not name or _REGISTRY.get(name) is not type(obj):
            raise TypeError(f"{type(obj).__qualname__} is not registered with @wire_message")
        fields = obj.__struct_fields__
        inner: list[bytes | bytearray | memoryview] = [
            b"\x92" + _body_encoder.encode(name) + _container_header(0x80, 0xDE, len(fields))
        ]
        size = len(inner[0])
        for f in fields:
            key = _body_encoder.encode(f)
            inner.append(key)
            size += len(key) + _parts(getattr(obj, f), depth + 1, inner)
        ext = _ext_header(_EXT_MESSAGE, size)
        out.append(ext)
        out += inner
        return len(ext) + size
    if isinstance(obj, (list, tuple)):
        if depth > MAX_DEPTH:
            raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
        head = _container_header(0x90, 0xDC, len(obj))
        out.append(head)
        return len(head) + sum(_parts(x, depth + 1, out) for x in obj)
    if isinstance(obj, dict):
        if depth > MAX_DEPTH:
            raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
        head = _container_header(0x80, 0xDE, len(obj))
        out.append(head)
        size = len(head)
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"dict keys must be str or int, got {type(k).__name__}")
            if isinstance(k, int) and not _INT_MIN <= k <= _INT_MAX:
                raise TypeError("int dict keys must fit in 64 bits")
            key = _body_encoder.encode(k)
            out.append(key)
            size += len(key) + _parts(v, depth + 1, out)
        return size
    if isinstance(obj, (bytes, bytearray, memoryview)) and len(obj) >= _BIG_BYTES:
        if depth > MAX_DEPTH:
            raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
        blob: bytes | bytearray | memoryview = obj
        if isinstance(obj, memoryview):
            blob = obj.cast("B") if obj.c_contiguous else memoryview(obj.tobytes())
        head = _bin_header(len(blob))
        out += (head, blob)
        return len(head) + len(blob)
    small = _body_encoder.encode(_to_wire(obj, depth))  # a scalar or a short byte string
    out.append(small)
    return len(small)


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return bytes([0xC4, n])
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


_FIXEXT = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}


def _ext_header(code: int, size: int) -> bytes:
    fixed = _FIXEXT.get(size)
    if fixed is not None:
        return bytes([fixed, code])
    if size < 1 << 8:
        return bytes([0xC7, size, code])
    if size < 1 << 16:
        return b"\xc8" + size.to_bytes(2, "big") + bytes([code])
    return b"\xc9" + size.to_bytes(4, "big") + bytes([code])


def _container_header(fix: int, wide: int, n: int) -> bytes:
    """msgpack array (``fix`` 0x90, ``wide`` 0xDC) or map (0x80, 0xDE) header for n items."""
    if n < 16:
        return bytes([fix | n])
    if n < 1 << 16:
        return bytes([wide]) + n.to_bytes(2, "big")
    return bytes([wide + 1]) + n.to_bytes(4, "big")


def _to_wire(obj: object, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise ValueError(f"value nests deeper than {MAX_DEPTH} levels")
    if obj is None or isinstance(obj, (bool, str, float)):
        return obj
    if isinstance(obj, int):
        if _INT_MIN <= obj <= _INT_MAX:
            return int(obj)
        return msgspec.msgpack.Ext(_EXT_BIGINT, _bigint_bytes(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, np.ndarray):
        return msgspec.msgpack.Ext(_EXT_NDARRAY, _ndarray_bytes(obj))
    if isinstance(obj, np.generic):
        return _to_wire(obj.item(), depth)
    if isinstance(obj, Message):
        name = type(obj).wire_name
        if not name or _REGISTRY.get(name) is not type(obj):
            raise TypeError(f"{type(obj).__qualname__} is not registered with @wire_message")
        fields = {f: _to_wire(getattr(obj, f), depth + 1) for f in obj.__struct_fields__}
        return msgspec.msgpack.Ext(_EXT_MESSAGE, _body_encoder.encode([name, fields]))
    if isinstance(obj, (list, tuple)):
        return [_to_wire(x, depth + 1) for x in obj]
    if isinstance(obj, dict):
        out: dict[object, object] = {}
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"dict keys must be str or int, got {type(k).__name__}")
            if isinstance(k, int) and not _INT_MIN <= k <= _INT_MAX:
                raise TypeError("int dict keys must fit in 64 bits")
            out[k] = _to_wire(v, depth + 1)
        return out
    raise TypeError(f"cannot encode a value of type {type(obj).__name__}")


def _bigint_bytes(value: int) -> bytes:
    magnitude = abs(value)
    return bytes([1 if value < 0 else 0]) + magnitude.to_bytes(
        (magnitude.bit_length() + 7) // 8, "big"
    )


def _wire_array(arr: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], str]:
    """``arr`` little-endian and C-contiguous (a copy only where it is not), its dtype string."""
    dt = arr.dtype
    if dt.byteorder == ">" or (
        dt.byteorder == "=" and dt.itemsize > 1 and np.little_endian is False
    ):
        dt = dt.newbyteorder("<")
        arr = arr.astype(dt)
    dtype_str = dt.str
    if dtype_str not in _DTYPES:
        raise TypeError(f"arrays of dtype {arr.dtype} cannot be sent; use a numeric dtype")
    # (ascontiguousarray makes a 0-d array 1-d: its shape is put back)
    return np.ascontiguousarray(arr).reshape(arr.shape), dtype_str


def _raw(arr: np.ndarray[Any, Any]) -> memoryview:
    """The bytes of a C-contiguous array, without a copy."""
    return arr.reshape(-1).view(np.uint8).data


def _ndarray_bytes(arr: np.ndarray[Any, Any]) -> bytes:
    arr, dtype_str = _wire_array(arr)
    return _body_encoder.encode([dtype_str, list(arr.shape), _raw(arr)])


# --------------------------------------------------------------------------------------- decode


class _DepthGuard(threading.local):
    depth = 0


_guard = _DepthGuard()


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    expect: type[T] | None = None,
) -> Any:
    """Decode wire bytes produced by :func:`encode`.

    Parameters
    ----------
    data:
        Untrusted bytes.
    max_size:
        Inputs longer than this are refused before any parsing.
    expect:
        If given, the decoded top-level value must be an instance of this type (for example a
        :class:`Message` subclass), else :class:`DecodeError` is raised.

    Raises
    ------
    DecodeError
        On any malformed, oversized, unknown-version or out-of-range input. No other exception
        type escapes for bad input.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    view = memoryview(data)
    if view.nbytes > max_size:
        raise DecodeError(f"message of {view.nbytes} bytes exceeds the limit of {max_size} bytes")
    if view.nbytes < len(_HEADER) or bytes(view[:2]) != MAGIC:
        raise DecodeError("not a privfin message (bad magic)")
    if view[2] != VERSION:
        raise DecodeError(f"unsupported codec version {view[2]} (this node speaks {VERSION})")
    try:
        value = _decode_body(view[3:])
    except DecodeError:
        raise
    except Exception as exc:  # every parsing failure becomes a DecodeError
        raise DecodeError(f"malformed message: {type(exc).__name__}: {exc}") from None
    finally:
        _guard.depth = 0
    if expect is not None and not isinstance(value, expect):
        raise DecodeError(f"expected a {expect.__name__}, got {type(value).__name__}")
    return value


#: each allowed wire dtype, and the same in this machine's byte order (what is decoded)
_DTYPE_OF: dict[str, tuple[np.dtype[Any], np.dtype[Any]]] = {
    name: (np.dtype(name), np.dtype(name).newbyteorder("=")) for name in _DTYPES
}

_DECODER: msgspec.msgpack.Decoder[Any]  # built below, once _ext_hook exists (stateless)


def _decode_body(body: memoryview) -> Any:
    return _DECODER.decode(body)


def _ext_hook(code: int, payload: memoryview) -> Any:
    _guard.depth += 1
    try:
        if _guard.depth > MAX_DEPTH:
            raise DecodeError(f"message nests deeper than {MAX_DEPTH} levels")
        if code == _EXT_NDARRAY:
            return _decode_ndarray(payload)
        if code == _EXT_BIGINT:
            return _decode_bigint(payload)
        if code == _EXT_MESSAGE:
            return _decode_message(payload)
        raise DecodeError(f"unknown extension type {code}")
    finally:
        _guard.depth -= 1


#: an array's ext payload; its data as a view into the message (copied once, below)
_ARRAY = msgspec.msgpack.Decoder(tuple[str, list[int], memoryview])


def _decode_ndarray(payload: memoryview) -> np.ndarray[Any, Any]:
    try:
        dtype_str, shape, raw = _ARRAY.decode(payload)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"array: expected [dtype, shape, data] ({exc})") from None
    dtypes = _DTYPE_OF.get(dtype_str) if isinstance(dtype_str, str) else None
    if dtypes is None:
        raise DecodeError(f"array: dtype {dtype_str!r} is not allowed")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise DecodeError("array: shape must be a list of at most 32 dimensions")
    count = 1
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise DecodeError("array: dimensions must be non-negative integers")
        count *= dim
    dt, native = dtypes
    if count * dt.itemsize != raw.nbytes:
        raise DecodeError(
            f"array: {raw.nbytes} bytes do not match shape {tuple(shape)} of dtype {dtype_str}"
        )
    # one copy: the array owns its memory (writable, not tied to the message's buffer)
    arr = np.frombuffer(raw, dtype=dt).astype(native, copy=True)
    return arr if len(shape) == 1 else arr.reshape(tuple(shape))


def _decode_bigint(payload: memoryview) -> int:
    if payload.nbytes < 2 or payload[0] not in (0, 1):
        raise DecodeError("big integer: bad sign byte or empty magnitude")
    if payload[1] == 0:
        raise DecodeError("big integer: non-canonical leading zero")
    magnitude = int.from_bytes(payload[1:], "big")
    value = -magnitude if payload[0] == 1 else magnitude
    if _INT_MIN <= value <= _INT_MAX:
        raise DecodeError("big integer: value fits in 64 bits and must be sent natively")
    return value


def _dec_hook(tp: type[Any], obj: object) -> object:
    if tp is np.ndarray and isinstance(obj, np.ndarray):
        return obj
    raise msgspec.ValidationError(f"expected {getattr(tp, '__name__', tp)}")


def _decode_message(payload: memoryview) -> Message:
    header = msgspec.msgpack.Decoder(ext_hook=_ext_hook).decode(payload)
    if not (isinstance(header, list) and len(header) == 2):
        raise DecodeError("message: expected [name, fields]")
    name, fields = header
    if not isinstance(name, str) or not isinstance(fields, dict):
        raise DecodeError("message: bad name or fields")
    cls = _REGISTRY.get(name)
    if cls is None:
        raise DecodeError(f"message: unknown message type {name!r}")
    try:
        return msgspec.convert(fields, cls, strict=True, dec_hook=_dec_hook)
    except (msgspec.ValidationError, ValueError, TypeError) as exc:
        raise DecodeError(f"message {name}: {exc}") from None


_DECODER = msgspec.msgpack.Decoder(ext_hook=_ext_hook)
