"""The protobuf wire format, walked field by field without generated classes: what the Caffe
reader parses and the GraphDef reader counts before TensorFlow's parser sees a file.

A message is a run of fields, each a varint key (field number << 3 | wire type) and a
payload: a varint, 4 or 8 bytes, or a varint length and that many bytes. Every length is
checked against the bytes actually there before anything is sliced; damage is ``Refused``.
"""

from __future__ import annotations

from typing import Iterator

from toolbox.nets.formats.guards import Refused

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


def varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``buf[pos]``, which must end before ``end``."""
    result = shift = 0
    while True:
        if pos >= end:
            raise Refused("truncated (a number runs past the end of its message)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise Refused("damaged (a number longer than 10 bytes)")


def fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) for each field of the message in ``buf[start:end]``:
    for a varint its value is ``a``; otherwise the payload is ``buf[a:b]``."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise Refused("damaged (field number 0)")
        if wire == VARINT:
            value, pos = varint(buf, pos, end)
            yield number, wire, value, pos
            continue
        if wire == BYTES:
            size, pos = varint(buf, pos, end)
        elif wire in (FIXED32, FIXED64):
            size = 4 if wire == FIXED32 else 8
        else:
            raise Refused(f"not a protobuf message this reader knows (wire type {wire} in field {number})")
        if size > end - pos:
            raise Refused(f"truncated (field {number} claims {size} bytes, {end - pos} remain)")
        yield number, wire, pos, pos + size
        pos += size


def top_level_fields(buf: bytes, limit: int) -> list[tuple[int, int]]:
    """(field number, wire type) of the first ``limit`` fields of the message that ``buf``
    starts (``buf`` may be only the head of a file): those before the first field that is
    malformed or runs past the end of ``buf``."""
    found: list[tuple[int, int]] = []
    try:
        for number, wire, _a, _b in fields(buf):
            found.append((number, wire))
            if len(found) == limit:
                break
    except Refused:
        pass
    return found
