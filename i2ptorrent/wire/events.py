"""What `PeerWire.receive_data` reports: one small frozen dataclass per thing the peer told us."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class Request(NamedTuple):
    """A block request: piece index, byte offset in the piece, length (at most 16 KiB)."""

    index: int
    begin: int
    length: int


class Event:
    """Base class of every wire event."""

    __slots__ = ()


@dataclass(frozen=True)
class HandshakeReceived(Event):
    """The peer's handshake. `fast` / `extensions` are the NEGOTIATED values (both sides set the bit)."""

    peer_id: bytes
    reserved: bytes
    fast: bool
    extensions: bool


@dataclass(frozen=True)
class KeepAlive(Event):
    pass


@dataclass(frozen=True)
class Choke(Event):
    """The peer choked us. Without the fast extension our outstanding requests are void: `dropped` lists
    them so the engine can ask someone else. With it the peer rejects each one explicitly instead."""

    dropped: tuple[Request, ...] = ()


@dataclass(frozen=True)
class Unchoke(Event):
    pass


@dataclass(frozen=True)
class Interested(Event):
    pass


@dataclass(frozen=True)
class NotInterested(Event):
    pass


@dataclass(frozen=True)
class HaveReceived(Event):
    index: int


@dataclass(frozen=True)
class BitfieldReceived(Event):
    """Raw bitfield, high bit of byte 0 = piece 0. Size and spare bits are already checked when the
    geometry is known; for a magnet they are checked by `PeerWire.set_geometry`."""

    bitfield: bytes

    def has(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.bitfield) and bool(self.bitfield[byte] & (0x80 >> (index & 7)))


@dataclass(frozen=True)
class HaveAll(Event):
    pass


@dataclass(frozen=True)
class HaveNone(Event):
    pass


@dataclass(frozen=True)
class BlockRequested(Event):
    """The peer asks us for a block; answer with `send_piece` (or `send_reject` with the fast extension)."""

    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class RequestCancelled(Event):
    """The peer withdrew a request still outstanding to us (a later `send_piece` for it returns False)."""

    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class BlockReceived(Event):
    """A block we asked for. `cancelled` is True when we had already cancelled it (the usual race)."""

    index: int
    begin: int
    data: bytes
    cancelled: bool = False


@dataclass(frozen=True)
class RequestRejected(Event):
    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class Suggest(Event):
    index: int


@dataclass(frozen=True)
class AllowedFast(Event):
    """We may request this piece even while choked."""

    index: int


@dataclass(frozen=True)
class ExtensionHandshake(Event):
    """The peer's BEP 10 handshake. `extensions` maps names to the peer's message ids (0 = disabled and
    already removed); `data` is the whole decoded dict with bytes keys."""

    data: dict[bytes, Any]
    extensions: dict[str, int]
    metadata_size: int | None
    client: str | None


@dataclass(frozen=True)
class MetadataRequested(Event):
    piece: int


@dataclass(frozen=True)
class MetadataPieceReceived(Event):
    piece: int
    total_size: int
    data: bytes


@dataclass(frozen=True)
class MetadataRejected(Event):
    piece: int
