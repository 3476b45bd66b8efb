"""Fetching a magnet's info dict from peers (BEP 9): which piece is asked of whom. No I/O.

Pieces are spread over the peers that offer the same metadata size, METADATA_REQUESTS_PER_PEER at a time;
a peer that rejects a request is not asked again, and a peer that leaves frees its pieces for the others.
The assembled dict is checked against the info-hash (MetadataAssembler), so a lying peer costs a retry.
"""

from __future__ import annotations

from ..wire.connection import PeerWire
from ..wire.errors import MetadataError
from ..wire.extension import UT_METADATA, MetadataAssembler
from .peer_state import PeerKey

METADATA_REQUESTS_PER_PEER = 8


class MetadataFetch:
    def __init__(self, info_hash: bytes) -> None:
        self.info_hash = info_hash
        self._asm: MetadataAssembler | None = None
        self._requested: dict[int, PeerKey] = {}  # metadata piece -> the peer asked for it
        self._refused: set[PeerKey] = set()

    @property
    def active(self) -> bool:
        return self._asm is not None

    def offered(self, size: int) -> bool:
        """A peer has metadata of `size` bytes: True if that is the size being collected (the first offer
        sets it). Raises MetadataError for an impossible size."""
        if self._asm is None:
            self._asm = MetadataAssembler(self.info_hash, size)
        return size == self._asm.total_size

    def requests_for(self, peer: PeerKey, wire: PeerWire) -> list[int]:
        """The pieces to ask this peer for now (recorded as asked)."""
        asm = self._asm
        if asm is None or peer in self._refused:
            return []
        if UT_METADATA not in wire.peer_extensions or wire.peer_metadata_size != asm.total_size:
            return []
        mine = sum(1 for p in self._requested.values() if p == peer)
        out: list[int] = []
        for piece in asm.missing():
            if mine >= METADATA_REQUESTS_PER_PEER:
                break
            if piece in self._requested or piece in wire.metadata_requests:
                continue
            self._requested[piece] = peer
            out.append(piece)
            mine += 1
        return out

    def rejected(self, peer: PeerKey, piece: int) -> None:
        if self._requested.get(piece) == peer:
            del self._requested[piece]
        self._refused.add(peer)

    def received(self, peer: PeerKey, piece: int, data: bytes, total_size: int | None) -> bytes | None:
        """Store a piece; the verified info dict once complete, else None. Raises MetadataError when the
        piece itself is wrong (the peer is to blame) or, with `MetadataMismatch`, when the assembled dict
        is not the torrent's (every piece is dropped: fetch again)."""
        if self._requested.get(piece) == peer:
            del self._requested[piece]
        asm = self._asm
        if asm is None:
            return None
        if not asm.add(piece, data, total_size):
            return None
        try:
            info = asm.result()
        except MetadataError as e:
            raise MetadataMismatch(str(e)) from None
        self._asm = None
        self._requested.clear()
        self._refused.clear()
        return info

    def peer_gone(self, peer: PeerKey) -> None:
        for piece, p in list(self._requested.items()):
            if p == peer:
                del self._requested[piece]
        self._refused.discard(peer)


class MetadataMismatch(MetadataError):
    """Every piece arrived but the dict is not the one the info-hash names."""
