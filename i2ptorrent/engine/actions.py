"""What the swarm core asks its adapter to do: small frozen classes, drained with `take_actions()`.

The core decides; the adapter owns the streams, the tasks and the piece store and only carries these out.
Facts flow back into the core as calls with `now` (piece_written, block_read, close_peer, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from .metainfo import Metainfo
from .peer_state import PeerKey


class Action:
    __slots__ = ()


@dataclass(frozen=True)
class Send(Action):
    """Write these bytes to the peer's stream (in order, never dropped)."""

    peer: PeerKey
    data: bytes


@dataclass(frozen=True)
class ClosePeer(Action):
    """The peer is gone from the core; close its stream and stop its tasks."""

    peer: PeerKey
    reason: str


@dataclass(frozen=True)
class ServeBlock(Action):
    """Read this block from the piece store and hand it back with `block_read` (the peer asked for it)."""

    peer: PeerKey
    index: int
    begin: int
    length: int


@dataclass(frozen=True)
class Prefetch(Action):
    """A peer is about to ask for this piece: start reading it."""

    index: int


@dataclass(frozen=True)
class WritePiece(Action):
    """A complete piece: have it verified and stored, then report with `piece_written`."""

    index: int
    data: bytes


@dataclass(frozen=True)
class InstallMetadata(Action):
    """A magnet's info dict arrived and matched the info-hash: give it to storage, then `set_pieces`."""

    meta: Metainfo


@dataclass(frozen=True)
class PeerBanned(Action):
    """This destination sent bad data and is refused from now on (a ClosePeer for it follows)."""

    remote: str
    reason: str


@dataclass(frozen=True)
class PeersFound(Action):
    """Addresses a peer told us of (i2p_pex): candidates to dial."""

    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Completed(Action):
    """Every wanted piece is verified. `flush`: pieces were written in this run, so flush them first."""

    flush: bool
