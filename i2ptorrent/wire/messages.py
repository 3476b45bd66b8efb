"""Framing of length-prefixed peer messages: ids, the size each one may have, and encoders.

Decoding lives in `connection.py` because what a message means depends on the connection's state; this module
only knows shapes. `max_length` is checked as soon as the 4-byte length and the id have arrived, so a peer
can never make us buffer more than one maximal message.
"""

from __future__ import annotations

import struct

CHOKE = 0
UNCHOKE = 1
INTERESTED = 2
NOT_INTERESTED = 3
HAVE = 4
BITFIELD = 5
REQUEST = 6
PIECE = 7
CANCEL = 8
PORT = 9  # BEP 5 DHT port: tolerated and ignored (we are never a DHT node)
SUGGEST = 13  # BEP 6 fast extension: 13-17
HAVE_ALL = 14
HAVE_NONE = 15
REJECT = 16
ALLOWED_FAST = 17
EXTENDED = 20  # BEP 10

FAST_IDS = frozenset({SUGGEST, HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST})

MAX_BLOCK = 16 * 1024
# ut_metadata caps metadata at 10 MB; at 20 bytes of SHA-1 per piece that bounds the piece count, and so the
# bitfield we accept before a magnet's metadata has told us the real count.
MAX_METADATA_SIZE = 10 * 1000 * 1000
MAX_PIECES = MAX_METADATA_SIZE // 20
MAX_BITFIELD_BYTES = (MAX_PIECES + 7) // 8
# An extended message carries at most a ut_metadata piece (16 KiB) plus its small bencoded header.
MAX_EXTENDED_PAYLOAD = MAX_BLOCK + 1024
# Unknown ids (BEP 3: ignore them) may be no larger than a piece message.
MAX_UNKNOWN = 9 + MAX_BLOCK

_FIXED = {
    CHOKE: 1, UNCHOKE: 1, INTERESTED: 1, NOT_INTERESTED: 1, HAVE: 5, REQUEST: 13, CANCEL: 13, PORT: 3,
    SUGGEST: 5, HAVE_ALL: 1, HAVE_NONE: 1, REJECT: 13, ALLOWED_FAST: 5,
}
MESSAGE_NAMES = {
    CHOKE: "choke", UNCHOKE: "unchoke", INTERESTED: "interested", NOT_INTERESTED: "not_interested",
    HAVE: "have", BITFIELD: "bitfield", REQUEST: "request", PIECE: "piece", CANCEL: "cancel", PORT: "port",
    SUGGEST: "suggest", HAVE_ALL: "have_all", HAVE_NONE: "have_none", REJECT: "reject",
    ALLOWED_FAST: "allowed_fast", EXTENDED: "extended",
}


def length_bounds(msg_id: int, bitfield_bytes: int | None) -> tuple[int, int]:
    """(min, max) length including the id byte. `bitfield_bytes` is ceil(pieces/8), None when unknown."""
    fixed = _FIXED.get(msg_id)
    if fixed is not None:
        return fixed, fixed
    if msg_id == BITFIELD:
        if bitfield_bytes is None:
            return 1, 1 + MAX_BITFIELD_BYTES
        return 1 + bitfield_bytes, 1 + bitfield_bytes
    if msg_id == PIECE:
        return 10, 9 + MAX_BLOCK
    if msg_id == EXTENDED:
        return 2, 2 + MAX_EXTENDED_PAYLOAD
    return 1, MAX_UNKNOWN


def name(msg_id: int) -> str:
    return MESSAGE_NAMES.get(msg_id, f"message {msg_id}")


KEEPALIVE = b"\x00\x00\x00\x00"
_HEADER = struct.Struct(">IB")
_INT = struct.Struct(">I")
_TRIPLE = struct.Struct(">III")


def frame(msg_id: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(len(payload) + 1, msg_id) + payload


def encode_index(msg_id: int, index: int) -> bytes:
    return frame(msg_id, _INT.pack(index))


def encode_triple(msg_id: int, index: int, begin: int, length: int) -> bytes:
    return frame(msg_id, _TRIPLE.pack(index, begin, length))


def encode_piece(index: int, begin: int, block: bytes) -> bytes:
    return _HEADER.pack(len(block) + 9, PIECE) + _INT.pack(index) + _INT.pack(begin) + bytes(block)


def encode_extended(ext_id: int, payload: bytes) -> bytes:
    return frame(EXTENDED, bytes((ext_id,)) + payload)


def unpack_index(payload: memoryview) -> int:
    return _INT.unpack_from(payload, 0)[0]


def unpack_triple(payload: memoryview) -> tuple[int, int, int]:
    return _TRIPLE.unpack_from(payload, 0)


def unpack_header(buf: bytearray | memoryview, pos: int) -> int:
    return _INT.unpack_from(buf, pos)[0]
