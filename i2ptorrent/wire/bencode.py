"""A strict, bounded bencode codec for peer-supplied bytes.

Peers control every byte of an extension message, so the decoder rejects anything non-canonical that could
hide a second meaning (leading zeros, `-0`, duplicate keys, non-bytes keys), caps nesting depth and integer
size, and reports where a value ends so a ut_metadata data message (a dict followed by raw bytes) can be split.
Every failure is a `ProtocolError`, never an IndexError or RecursionError.
"""

from __future__ import annotations

from typing import Any, Union

from .errors import ProtocolError

MAX_DEPTH = 32
MAX_INT_DIGITS = 64  # big enough for any real field, small enough that int() stays cheap

Bencodable = Union[int, bytes, str, list[Any], tuple[Any, ...], dict[Any, Any]]


def bencode(value: Bencodable) -> bytes:
    """Encode int / bytes / str (UTF-8) / list / dict (keys sorted, as BEP 3 requires)."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, str):
        _encode(value.encode(), out)
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        items = [(k.encode() if isinstance(k, str) else bytes(k), v) for k, v in value.items()]
        items.sort(key=lambda kv: kv[0])
        out.append(b"d")
        for key, item in items:
            _encode(key, out)
            _encode(item, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode exactly one value spanning all of `data`; trailing bytes are an error."""
    value, end = bdecode_prefix(data)
    if end != len(data):
        raise ProtocolError(f"bencode: {len(data) - end} trailing bytes")
    return value


def bdecode_prefix(data: bytes, start: int = 0) -> tuple[Any, int]:
    """Decode one value starting at `start`; return it and the offset just past it."""
    return _Decoder(bytes(data)).value(start, 0)


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        data = self.data
        if pos >= len(data):
            raise ProtocolError("bencode: truncated")
        lead = data[pos]
        if lead == 0x69:  # i
            return self.integer(pos + 1)
        if 0x30 <= lead <= 0x39:
            return self.string(pos)
        if depth >= MAX_DEPTH:
            raise ProtocolError("bencode: nested too deeply")
        if lead == 0x6C:  # l
            items: list[Any] = []
            pos += 1
            while True:
                if pos >= len(data):
                    raise ProtocolError("bencode: unterminated list")
                if data[pos] == 0x65:
                    return items, pos + 1
                item, pos = self.value(pos, depth + 1)
                items.append(item)
        if lead == 0x64:  # d
            result: dict[bytes, Any] = {}
            pos += 1
            while True:
                if pos >= len(data):
                    raise ProtocolError("bencode: unterminated dict")
                if data[pos] == 0x65:
                    return result, pos + 1
                if not 0x30 <= data[pos] <= 0x39:
                    raise ProtocolError("bencode: dict key is not a byte string")
                key, pos = self.string(pos)
                if key in result:
                    raise ProtocolError(f"bencode: duplicate key {key!r}")
                result[key], pos = self.value(pos, depth + 1)
        raise ProtocolError(f"bencode: unexpected byte {lead:#04x} at {pos}")

    def integer(self, pos: int) -> tuple[int, int]:
        end = self.data.find(b"e", pos, pos + MAX_INT_DIGITS + 2)
        if end < 0:
            raise ProtocolError("bencode: integer unterminated or too long")
        digits = self.data[pos:end]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not body or not body.isdigit() or not body.isascii():
            raise ProtocolError(f"bencode: bad integer {digits[:20]!r}")
        if (body[:1] == b"0" and len(body) > 1) or digits == b"-0":
            raise ProtocolError(f"bencode: non-canonical integer {digits[:20]!r}")
        return int(digits), end + 1

    def string(self, pos: int) -> tuple[bytes, int]:
        colon = self.data.find(b":", pos, pos + 12)
        if colon < 0:
            raise ProtocolError("bencode: string length unterminated or too long")
        digits = self.data[pos:colon]
        if not digits.isdigit() or not digits.isascii() or (digits[:1] == b"0" and len(digits) > 1):
            raise ProtocolError(f"bencode: bad string length {digits!r}")
        end = colon + 1 + int(digits)
        if end > len(self.data):
            raise ProtocolError("bencode: string runs past the end")
        return self.data[colon + 1 : end], end
