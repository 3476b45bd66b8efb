"""BEP 10 extension handshake and BEP 9 ut_metadata: message shapes, and assembling fetched metadata.

We advertise ut_metadata, and i2p_pex (pex.py) when the torrent allows peer exchange. ut_pex is
deliberately absent (it carries IP addresses, meaningless and leaky on I2P).
"""

from __future__ import annotations

import hashlib
from typing import Any

from .bencode import bdecode, bdecode_prefix, bencode
from .errors import MetadataError, ProtocolError
from .events import ExtensionHandshake
from .messages import MAX_BLOCK, MAX_METADATA_SIZE
from .pex import I2P_PEX, LOCAL_I2P_PEX_ID

UT_METADATA = "ut_metadata"
LOCAL_UT_METADATA_ID = 3  # the id peers must use for ut_metadata messages they send us
METADATA_PIECE = MAX_BLOCK  # BEP 9: 16 KiB per metadata piece
REQQ = 250  # how many block requests we let a peer keep outstanding (we advertise it as `reqq`)

MSG_REQUEST, MSG_DATA, MSG_REJECT = 0, 1, 2


def metadata_piece_count(size: int) -> int:
    return (size + METADATA_PIECE - 1) // METADATA_PIECE


def metadata_piece_size(size: int, piece: int) -> int:
    """Bytes in metadata piece `piece` of a `size`-byte info dict (all 16 KiB but the last)."""
    return min(METADATA_PIECE, size - piece * METADATA_PIECE)


def metadata_piece(info: bytes, piece: int) -> bytes:
    """Slice of our bencoded info dict to serve for a ut_metadata request."""
    if not 0 <= piece < metadata_piece_count(len(info)):
        raise IndexError(f"metadata piece {piece} out of range")
    return bytes(info[piece * METADATA_PIECE : (piece + 1) * METADATA_PIECE])


def encode_extension_handshake(
    metadata_size: int | None = None, client: str | None = None, extra: dict[str, Any] | None = None,
    pex: bool = False,
) -> bytes:
    body: dict[str, Any] = dict(extra or {})
    body["m"] = {UT_METADATA: LOCAL_UT_METADATA_ID}
    if pex:
        body["m"][I2P_PEX] = LOCAL_I2P_PEX_ID
    body["reqq"] = REQQ
    if metadata_size is not None:
        body["metadata_size"] = metadata_size
    if client is not None:
        body["v"] = client
    return bencode(body)


def decode_extension_handshake(payload: bytes) -> ExtensionHandshake:
    data = bdecode(payload)
    if not isinstance(data, dict):
        raise ProtocolError("extension handshake is not a dict")
    m = data.get(b"m", {})
    if not isinstance(m, dict):
        raise ProtocolError("extension handshake 'm' is not a dict")
    extensions: dict[str, int] = {}
    for key, ext_id in m.items():
        if not isinstance(ext_id, int) or not 0 <= ext_id <= 255:
            raise ProtocolError(f"extension {key!r} has invalid id {ext_id!r}")
        if ext_id:
            extensions[key.decode("utf-8", "replace")] = ext_id
    size = data.get(b"metadata_size")
    if size is not None and (not isinstance(size, int) or not 0 < size <= MAX_METADATA_SIZE):
        raise ProtocolError(f"metadata_size {size!r} outside 1..{MAX_METADATA_SIZE}")
    client = data.get(b"v")
    return ExtensionHandshake(
        data=data,
        extensions=extensions,
        metadata_size=size,
        client=client.decode("utf-8", "replace") if isinstance(client, bytes) else None,
    )


def encode_metadata_message(msg_type: int, piece: int, total_size: int | None = None, data: bytes = b"") -> bytes:
    body: dict[str, int] = {"msg_type": msg_type, "piece": piece}
    if total_size is not None:
        body["total_size"] = total_size
    return bencode(body) + data


def decode_metadata_message(payload: bytes) -> tuple[int, int, int | None, bytes]:
    """(msg_type, piece, total_size, trailing data); data is only allowed after a data message."""
    head, end = bdecode_prefix(payload)
    if not isinstance(head, dict):
        raise ProtocolError("ut_metadata message is not a dict")
    msg_type, piece, total = head.get(b"msg_type"), head.get(b"piece"), head.get(b"total_size")
    if msg_type not in (MSG_REQUEST, MSG_DATA, MSG_REJECT) or isinstance(msg_type, bool):
        raise ProtocolError(f"ut_metadata msg_type {msg_type!r} unknown")
    if not isinstance(piece, int) or not 0 <= piece < metadata_piece_count(MAX_METADATA_SIZE):
        raise ProtocolError(f"ut_metadata piece {piece!r} out of range")
    data = bytes(payload[end:])
    if msg_type == MSG_DATA:
        if not isinstance(total, int) or not 0 < total <= MAX_METADATA_SIZE:
            raise ProtocolError(f"ut_metadata total_size {total!r} outside 1..{MAX_METADATA_SIZE}")
        if piece >= metadata_piece_count(total):
            raise ProtocolError(f"ut_metadata piece {piece} past total_size {total}")
        if len(data) != metadata_piece_size(total, piece):
            raise ProtocolError(f"ut_metadata piece {piece} has {len(data)} bytes, expected "
                                f"{metadata_piece_size(total, piece)}")
        return msg_type, piece, total, data
    if data:
        raise ProtocolError("ut_metadata request/reject carries trailing data")
    return msg_type, piece, None, b""


class MetadataAssembler:
    """Collects ut_metadata pieces (from one peer or several) into the info dict, verified by SHA-1.

    Sizes are checked on every `add`; `result()` refuses anything whose SHA-1 is not the info-hash and
    starts over, so a lying peer costs a retry, never a wrong torrent.
    """

    def __init__(self, info_hash: bytes, total_size: int) -> None:
        if len(info_hash) != 20:
            raise ValueError("info_hash must be 20 bytes")
        if not 0 < total_size <= MAX_METADATA_SIZE:
            raise MetadataError(f"metadata size {total_size} outside 1..{MAX_METADATA_SIZE}")
        self.info_hash = info_hash
        self.total_size = total_size
        self.num_pieces = metadata_piece_count(total_size)
        self._pieces: dict[int, bytes] = {}

    def missing(self) -> list[int]:
        return [p for p in range(self.num_pieces) if p not in self._pieces]

    @property
    def complete(self) -> bool:
        return len(self._pieces) == self.num_pieces

    def add(self, piece: int, data: bytes, total_size: int | None = None) -> bool:
        """Store one piece; True once every piece is present."""
        if total_size is not None and total_size != self.total_size:
            raise MetadataError(f"total_size {total_size} differs from {self.total_size}")
        if not 0 <= piece < self.num_pieces:
            raise MetadataError(f"metadata piece {piece} out of range 0..{self.num_pieces - 1}")
        expected = metadata_piece_size(self.total_size, piece)
        if len(data) != expected:
            raise MetadataError(f"metadata piece {piece} has {len(data)} bytes, expected {expected}")
        self._pieces[piece] = bytes(data)
        return self.complete

    def result(self) -> bytes:
        """The verified bencoded info dict. Raises MetadataError (and forgets the pieces) on mismatch."""
        if not self.complete:
            raise MetadataError(f"metadata incomplete: missing pieces {self.missing()[:10]}")
        info = b"".join(self._pieces[p] for p in range(self.num_pieces))
        digest = hashlib.sha1(info).digest()
        if digest != self.info_hash:
            self._pieces.clear()
            raise MetadataError(f"metadata SHA-1 {digest.hex()} is not the info-hash {self.info_hash.hex()}")
        try:
            if not isinstance(bdecode(info), dict):
                raise MetadataError("metadata is not a bencoded dict")
        except ProtocolError as exc:  # matched the hash yet malformed: a broken torrent, not a bad peer
            raise MetadataError(f"metadata is not valid bencode: {exc}") from None
        return info
