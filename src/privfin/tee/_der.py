"""A minimal DER reader for the few vendor-specific X.509 extensions attestation needs (the
SGX PCK extension, AMD's SPL integers). It reads definite-length TLVs only, checks every length
against the buffer, and never recurses deeper than the caller asks."""

from __future__ import annotations

from privfin.tee.errors import EvidenceFormatError

__all__ = ["decode_oid", "read_integer", "read_tlv", "read_tlvs"]


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """One TLV at ``offset``: ``(tag, value, next_offset)``."""
    if offset + 2 > len(data):
        raise EvidenceFormatError("DER: truncated tag/length")
    tag = data[offset]
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise EvidenceFormatError("DER: bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise EvidenceFormatError("DER: value runs past the end")
    return tag, data[pos : pos + length], pos + length


def read_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """All TLVs of a constructed value's content."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        tag, value, pos = read_tlv(data, pos)
        out.append((tag, value))
    return out


def read_integer(data: bytes) -> int:
    """A DER INTEGER (the whole of ``data``), non-negative values only."""
    tag, value, end = read_tlv(data)
    if tag != 0x02 or end != len(data) or not value:
        raise EvidenceFormatError("DER: expected an INTEGER")
    return int.from_bytes(value, "big", signed=True)


def decode_oid(value: bytes) -> str:
    """The dotted string of an OBJECT IDENTIFIER's content bytes."""
    if not value:
        raise EvidenceFormatError("DER: empty OID")
    first = value[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    acc = 0
    for byte in value[1:]:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(acc)
            acc = 0
    return ".".join(str(p) for p in parts)
