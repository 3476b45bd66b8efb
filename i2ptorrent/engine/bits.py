"""Wire bitfields (piece 0 = high bit of byte 0) <-> Python int bitsets (piece i = bit i).

Ints make set operations on pieces single C-level operations; the conversion reverses the bits in each
byte with a translation table, so it stays linear and fast even for 100k pieces.
"""

from __future__ import annotations

_REVERSE = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def bitfield_to_int(bitfield: bytes) -> int:
    return int.from_bytes(bytes(bitfield).translate(_REVERSE), "little")


def int_to_bitfield(bits: int, num_pieces: int) -> bytes:
    return bits.to_bytes((num_pieces + 7) // 8, "little").translate(_REVERSE)
