"""The few pieces of protobuf's wire format PhotoGuard needs to read and write ONNX models in memory (the
``onnx`` package is not a run-time dependency): varints, a message's fields, a length-delimited field."""

from __future__ import annotations


def read_varint(data: bytes | memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def fields(data: memoryview):
    """(field number, value, the field's own bytes) of one protobuf message; value is a memoryview for a
    length-delimited field, else None."""
    i = 0
    while i < len(data):
        start = i
        tag, i = read_varint(data, i)
        kind = tag & 7
        value = None
        if kind == 0:
            _, i = read_varint(data, i)
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        elif kind == 2:
            size, i = read_varint(data, i)
            value = data[i:i + size]
            i += size
        else:
            raise ValueError(f"unexpected protobuf wire type {kind}")
        if i > len(data):
            raise ValueError("truncated protobuf message")
        yield tag >> 3, value, data[start:i]


def read_string(message: memoryview, number: int) -> str:
    """The first string field ``number`` of ``message`` ("" if it has none)."""
    return next((bytes(v).decode() for f, v, _ in fields(message) if f == number and v is not None), "")


def message(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a nested message, or bytes."""
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def string_field(number: int, text: str) -> bytes:
    return message(number, text.encode())


def varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)
