"""One torrent's swarm of our own peers: what to request, whom to serve, whom to ban.

The swarm reacts to wire events from its PeerConnections and keeps three things in step:
- the picker's view of who has what (bitfields, haves) and of every outstanding block request;
- the piece store: complete pieces go to libtorrent (add_piece), which verifies them; a verified piece is
  announced to every peer with HAVE, a failed one is blamed on the peers whose blocks made it up (banned
  when there was only one, or on a second strike);
- the choker: interested peers are unchoked by tit-for-tat plus an optimistic slot.

For a magnet the swarm first fetches the info dict over ut_metadata (BEP 9), verifies it against the
info-hash and hands it to the engine, which gives it to libtorrent and comes back with a piece store.

Requests are pipelined per peer, sized to the link: enough to cover QUEUE_TIME seconds at the rate the
peer is delivering (16 at first, at most what the peer accepts). Everything here is synchronous; only
piece writes run as tasks, and while libtorrent's write queue is full no new requests go out, so memory
for pieces in flight stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..transport.stream import ByteStream
from ..wire.connection import PeerWire
from ..wire.errors import LocalProtocolError, MetadataError, ProtocolError
from ..wire.events import (
    BitfieldReceived, BlockReceived, BlockRequested, Choke, Event, ExtensionHandshake, HandshakeReceived,
    HaveAll, HaveNone, HaveReceived, Interested, MetadataPieceReceived, MetadataRejected, MetadataRequested,
    NotInterested, RequestRejected, Unchoke,
)
from ..wire.extension import UT_METADATA, MetadataAssembler, metadata_piece
from .bits import bitfield_to_int, int_to_bitfield
from .choker import Choker, Decisions
from .metainfo import Metainfo
from .peer import PeerConnection
from .picker import BLOCK, PiecePicker
from .ratelimit import RateLimits
from .storage import PieceStore, StorageError

log = logging.getLogger(__name__)

QUEUE_TIME = 3.0  # seconds of the peer's delivery rate kept requested
MIN_QUEUE = 16
MAX_QUEUE = 250  # 4 MiB in flight per peer at most
MAX_SWARM_QUEUE = 2048  # blocks in flight over all peers of a torrent: 32 MiB of piece buffers at most
RATE_REFRESH = 0.05
HANDSHAKE_TIMEOUT = 90.0
SNUB_TIMEOUT = 60.0  # outstanding requests and no block for this long: ask others instead
METADATA_REQUESTS_PER_PEER = 8
MAX_PEERS = 50
REPLACE_AFTER = 10.0  # a second connection from a peer this much later means it restarted (see _replace_stale)
BAN_STRIKES = 3  # failures shared with other peers before a peer is banned


@dataclass
class SwarmStats:
    """Counters a user (and the tests) check: what came from the network and what was thrown away."""

    blocks_received: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0  # by peers already gone; TorrentStatus.uploaded adds the live ones
    pieces_fetched: int = 0  # pieces downloaded from peers and verified by libtorrent
    hash_failures: int = 0
    redundant_bytes: int = 0
    peers_banned: int = 0


def new_peer_id() -> bytes:
    """Azureus-style id with a random tail; it names no version, to say less about the user."""
    return b"-IT0001-" + os.urandom(12)


class Swarm:
    def __init__(self, meta: Metainfo, peer_id: bytes,
                 on_metadata: Callable[[Metainfo], Awaitable[None]] | None = None,
                 on_complete: Callable[[], Awaitable[object]] | None = None,
                 max_peers: int = MAX_PEERS, rng: random.Random | None = None,
                 limits: RateLimits | None = None) -> None:
        self.meta = meta
        self.limits = limits
        self.info_hash = meta.info_hash
        self.peer_id = peer_id
        self.max_peers = max_peers
        self._rng = rng or random.Random()
        self._on_metadata = on_metadata
        self.info_bytes: bytes | None = meta.info_bytes
        self.store: PieceStore | None = None
        self.picker: PiecePicker | None = None
        self.choker = Choker(rng=self._rng)
        self.peers: dict[PeerConnection, float] = {}  # peer -> time attached (monotonic)
        self.banned: set[str] = set()
        self._strikes: dict[str, int] = {}
        self._buffers: dict[int, bytearray] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._assembler: MetadataAssembler | None = None
        self._meta_requested: dict[int, PeerConnection] = {}
        self._meta_refused: set[PeerConnection] = set()
        self._metadata_task: asyncio.Task[None] | None = None
        self.stats = SwarmStats()
        self.complete = asyncio.Event()  # every wanted piece verified and flushed to the files
        self.all_verified = False
        self._on_complete = on_complete
        self._flush_task: asyncio.Task[None] | None = None
        self.metadata_ready = asyncio.Event()
        if meta.has_metadata:
            self.metadata_ready.set()
        self.paused = False
        self.closed = False
        self._dispatch: dict[type, Callable[[PeerConnection, Any], None]] = {
            HandshakeReceived: self._on_handshake, BitfieldReceived: self._on_bitfield,
            HaveReceived: self._on_have, HaveAll: self._on_have_all, HaveNone: lambda p, e: None,
            Interested: self._on_interested, NotInterested: self._on_not_interested,
            Choke: self._on_choke, Unchoke: self._on_unchoke, BlockRequested: self._on_request,
            BlockReceived: self._on_block, RequestRejected: self._on_rejected,
            ExtensionHandshake: self._on_extension_handshake, MetadataRequested: self._on_metadata_request,
            MetadataPieceReceived: self._on_metadata_piece, MetadataRejected: self._on_metadata_rejected,
        }

    # -- storage ---------------------------------------------------------------------------------

    def set_store(self, store: PieceStore, wanted: int | None = None) -> None:
        """The torrent's pieces are available (at start, or once a magnet's metadata is installed)."""
        self.store = store
        have = [i for i in range(store.num_pieces) if store.have(i)]
        self.picker = PiecePicker(store.num_pieces, store.piece_length, store.total_size, rng=self._rng,
                                  have=have)
        if wanted is not None:
            self.picker.set_wanted(wanted)
        all_bits = (1 << store.num_pieces) - 1
        for peer in list(self.peers):
            peer.store = store
            wire = peer.wire
            try:
                wire.set_geometry(store.num_pieces, store.piece_length, store.total_size)
            except ProtocolError as e:
                peer.close(f"protocol error: {e}")
                continue
            if self.info_bytes is not None:
                wire.set_metadata_size(len(self.info_bytes))
            self.picker.add_peer(peer)
            self.picker.peer_bitfield(peer, all_bits if peer.have_all else peer.bits)
            if wire.peer_handshake is not None:
                # It connected before we had pieces to show (still checking, or a magnet) and was told
                # 'have none' or nothing: announce what we hold now, or it never asks us for anything.
                for piece in have:
                    wire.send_have(piece)
                if wire.extensions:
                    wire.send_extension_handshake()
                self._update_interest(peer)
                peer.flush()
        self._check_complete()

    def _check_complete(self) -> None:
        if self.picker is None or not self.picker.complete or self.all_verified:
            return
        self.all_verified = True
        for peer in list(self.peers):  # two seeds have nothing to say to each other
            if self._peer_is_seed(peer):
                peer.close("both seeds")
        if self.stats.pieces_fetched == 0 or self._on_complete is None:
            self.complete.set()  # nothing written in this run: nothing to flush
        else:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_then_complete())

    async def _flush_then_complete(self) -> None:
        """Complete means on disk: libtorrent may still hold verified pieces in its write buffers."""
        assert self._on_complete is not None
        try:
            await self._on_complete()
        except Exception:
            log.exception("flushing %s failed", self.info_hash.hex())
        self.complete.set()

    def _peer_is_seed(self, peer: PeerConnection) -> bool:
        return self.picker is not None and self.picker.peer_is_seed(peer) and self.picker.num_have == \
            self.picker.num_pieces

    # -- peers -----------------------------------------------------------------------------------

    def connected_to(self, remote: str) -> bool:
        return any(p.remote == remote for p in self.peers)

    def _replace_stale(self, remote: str, now: float) -> None:
        """A destination that calls again while we think it is connected has restarted: I2P tells us only
        when the old stream times out (minutes), so its old connection goes. Identities come from the
        router, so only that peer can do this to its own connection. Within REPLACE_AFTER of the first it
        is a simultaneous open instead, and the second one is refused."""
        for peer, since in list(self.peers.items()):
            if peer.remote == remote and now - since >= REPLACE_AFTER:
                peer.close("replaced by a new connection from the same destination")

    def attach(self, stream: ByteStream, outgoing: bool, initial: bytes = b"") -> PeerConnection | None:
        """Run the peer wire over a stream (already routed to this torrent for incoming ones)."""
        remote = stream.remote
        why = None
        if not outgoing and not self.closed and remote not in self.banned:
            self._replace_stale(remote, time.monotonic())
        if self.closed or self.paused:
            why = "torrent not active"
        elif remote in self.banned:
            why = "banned"
        elif self.connected_to(remote):
            why = "already connected"
        elif len(self.peers) >= self.max_peers:
            why = "too many peers"
        if why is not None:
            log.debug("refusing %s: %s", remote[:12], why)
            asyncio.get_running_loop().create_task(stream.close())
            return None
        kw: dict[str, Any] = {}
        if self.store is not None:
            kw = dict(num_pieces=self.store.num_pieces, piece_length=self.store.piece_length,
                      total_length=self.store.total_size)
        wire = PeerWire(self.info_hash, self.peer_id, metadata_size=len(self.info_bytes) if self.info_bytes else None,
                        **kw)
        peer = PeerConnection(stream, wire, self._on_events, self._on_closed, outgoing, self.limits)
        peer.store = self.store
        wire.send_handshake()
        self.peers[peer] = time.monotonic()
        now = time.monotonic()
        self.choker.add_peer(peer, now)
        if self.picker is not None:
            self.picker.add_peer(peer)
        peer.start(initial)
        peer.flush()
        return peer

    def _on_closed(self, peer: PeerConnection, reason: str) -> None:
        if self.peers.pop(peer, None) is not None:
            self.stats.bytes_sent += peer.up.total
        if self.picker is not None:
            self.picker.remove_peer(peer)
        self._apply(self.choker.remove_peer(peer, time.monotonic()))
        for piece, p in list(self._meta_requested.items()):
            if p is peer:
                del self._meta_requested[piece]
        self._meta_refused.discard(peer)
        if self._assembler is not None:
            self._request_metadata_all()
        for other in list(self.peers):  # its blocks are free again
            self._refill(other)

    def ban(self, peer: PeerConnection, reason: str) -> None:
        if self.picker is not None:
            for piece in self.picker.discard_blocks_of(peer):
                self._buffers.pop(piece, None)
        if peer.remote not in self.banned:
            self.banned.add(peer.remote)
            self.stats.peers_banned += 1
            log.warning("banning %s: %s", peer.remote, reason)
        peer.close(f"banned: {reason}")

    def close_all(self, reason: str) -> None:
        for peer in list(self.peers):
            peer.close(reason)

    # -- events ----------------------------------------------------------------------------------

    def _on_events(self, peer: PeerConnection, events: list[Event]) -> None:
        dispatch = self._dispatch
        for ev in events:
            if peer.closed:
                return
            handler = dispatch.get(type(ev))
            if handler is not None:
                try:
                    handler(peer, ev)
                except LocalProtocolError as e:  # our own bug; drop the peer, keep the swarm
                    log.exception("wire misuse with %s", peer)
                    peer.close(f"local error: {e}")
                    return
        if not peer.closed:
            self._refill(peer)

    def _on_handshake(self, peer: PeerConnection, ev: HandshakeReceived) -> None:
        wire = peer.wire
        picker = self.picker
        if picker is not None:
            if wire.fast and picker.num_have == picker.num_pieces:
                wire.send_have_all()
            elif wire.fast and picker.num_have == 0:
                wire.send_have_none()
            else:
                wire.send_bitfield(int_to_bitfield(picker.have_bits, picker.num_pieces))
        elif wire.fast:
            wire.send_have_none()
        if wire.extensions:
            wire.send_extension_handshake()

    def _on_bitfield(self, peer: PeerConnection, ev: BitfieldReceived) -> None:
        peer.bits = bitfield_to_int(ev.bitfield)
        if self.picker is not None:
            self.picker.peer_bitfield(peer, peer.bits)
            self._update_interest(peer)

    def _on_have(self, peer: PeerConnection, ev: HaveReceived) -> None:
        peer.bits |= 1 << ev.index
        if self.picker is not None:
            self.picker.peer_have(peer, ev.index)
            if not peer.wire.am_interested:
                self._update_interest(peer)
            if self.all_verified and self._peer_is_seed(peer):
                peer.close("both seeds")

    def _on_have_all(self, peer: PeerConnection, ev: HaveAll) -> None:
        peer.have_all = True
        if self.picker is not None:
            self.picker.peer_bitfield(peer, (1 << self.picker.num_pieces) - 1)
            self._update_interest(peer)

    def _on_interested(self, peer: PeerConnection, ev: Interested) -> None:
        self._apply(self.choker.set_interested(peer, True, time.monotonic()))

    def _on_not_interested(self, peer: PeerConnection, ev: NotInterested) -> None:
        self.choker.set_interested(peer, False, time.monotonic())

    def _on_choke(self, peer: PeerConnection, ev: Choke) -> None:
        if self.picker is not None:
            for r in ev.dropped:
                self.picker.request_dropped(peer, r.index, r.begin)

    def _on_unchoke(self, peer: PeerConnection, ev: Unchoke) -> None:
        peer.last_block_at = time.monotonic()  # the snub clock starts now

    def _on_request(self, peer: PeerConnection, ev: BlockRequested) -> None:
        store = self.store
        if store is not None and store.have(ev.index):
            peer.queue_upload(ev)
            if ev.begin == 0:  # a new piece is wanted: start reading it before the uploader gets there
                store.prefetch(ev.index)
        elif peer.wire.fast:
            peer.wire.send_reject(ev.index, ev.begin, ev.length)
        # without the fast extension a request for a piece we lack is dropped (BEP 3 has no refusal)

    def _on_rejected(self, peer: PeerConnection, ev: RequestRejected) -> None:
        if self.picker is not None:
            self.picker.request_dropped(peer, ev.index, ev.begin)

    def _on_block(self, peer: PeerConnection, ev: BlockReceived) -> None:
        picker, store = self.picker, self.store
        if picker is None or store is None:
            return
        n = len(ev.data)
        peer.down.add(n)
        peer.last_block_at = time.monotonic()
        self.stats.blocks_received += 1
        self.stats.bytes_received += n
        wanted, complete, others = picker.block_received(peer, ev.index, ev.begin)
        for other in others:  # endgame: the same block is no longer needed from them
            req = (ev.index, ev.begin, n)
            if req in other.wire.our_requests:
                other.wire.send_cancel(*req)
                other.flush()
        if not wanted or n != picker.block_length(ev.index, ev.begin // BLOCK):
            self.stats.redundant_bytes += n
            return
        buf = self._buffers.get(ev.index)
        if buf is None:
            buf = self._buffers[ev.index] = bytearray(picker.piece_size(ev.index))
        buf[ev.begin:ev.begin + n] = ev.data
        if complete:
            data = bytes(self._buffers.pop(ev.index))
            task = asyncio.get_running_loop().create_task(self._write(ev.index, data))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, piece: int, data: bytes) -> None:
        store, picker = self.store, self.picker
        assert store is not None and picker is not None
        try:
            ok = await store.write_piece(piece, data)
        except StorageError as e:
            if not self.closed:
                log.error("piece %d not stored: %s", piece, e)
                picker.piece_failed(piece)
            return
        if self.closed:
            return
        if ok:
            self._piece_verified(piece)
        else:
            self._piece_failed(piece)
        for peer in list(self.peers):
            self._refill(peer)

    def _piece_verified(self, piece: int) -> None:
        picker = self.picker
        assert picker is not None
        if picker.have(piece):
            return
        picker.piece_verified(piece)
        self.stats.pieces_fetched += 1
        for peer in list(self.peers):
            wire = peer.wire
            if wire.peer_handshake is None or peer.closed:
                continue
            if not picker.peer_has(peer, piece):
                wire.send_have(piece)
            if wire.am_interested and not picker.interesting(peer):
                wire.send_not_interested()
            peer.flush()
        self._check_complete()

    def _piece_failed(self, piece: int) -> None:
        assert self.picker is not None
        self.stats.hash_failures += 1
        contributors = self.picker.piece_failed(piece)
        log.warning("piece %d failed its hash check (from %s)", piece, [p.remote[:12] for p in contributors])
        for peer in contributors:
            strikes = self._strikes[peer.remote] = self._strikes.get(peer.remote, 0) + 1
            if len(contributors) == 1 or strikes >= BAN_STRIKES:
                self.ban(peer, f"sent piece {piece} that failed the hash check")

    # -- requesting ------------------------------------------------------------------------------

    def _update_interest(self, peer: PeerConnection) -> None:
        if self.picker is None or peer.wire.peer_handshake is None:
            return
        want = self.picker.interesting(peer)
        if want and not peer.wire.am_interested:
            peer.wire.send_interested()
        elif not want and peer.wire.am_interested:
            peer.wire.send_not_interested()

    def queue_target(self, peer: PeerConnection) -> int:
        now = time.monotonic()
        if now - peer.down.last_update >= RATE_REFRESH:  # a fast link ramps up within ~100 ms
            peer.down.update(now)
        by_rate = int(peer.down.rate * QUEUE_TIME / BLOCK)
        return max(MIN_QUEUE, min(by_rate, peer.peer_reqq, MAX_QUEUE))

    def _refill(self, peer: PeerConnection) -> None:
        picker, store, wire = self.picker, self.store, peer.wire
        if picker is None or store is None or peer.closed or self.paused:
            return
        if wire.peer_choking or not wire.am_interested or wire.peer_handshake is None:
            return
        if store.writes_pending >= store.write_slots:
            return  # libtorrent is behind: let it catch up before more data comes in
        target = self.queue_target(peer)
        room = min(target - picker.outstanding(peer), MAX_SWARM_QUEUE - picker.total_outstanding)
        if room <= 0 or (room < max(8, target // 4) and picker.outstanding(peer) > 0):
            return  # refill in batches, not one request per block
        reqs = picker.pick(peer, room)
        for index, begin, length in reqs:
            wire.send_request(index, begin, length)
        if reqs:
            peer.flush()

    # -- choking ---------------------------------------------------------------------------------

    def _apply(self, d: Decisions) -> None:
        for peer in d.unchoke:
            if isinstance(peer, PeerConnection) and not peer.closed and peer.wire.handshake_sent:
                peer.wire.send_unchoke()
                peer.flush()
        for peer in d.choke:
            if isinstance(peer, PeerConnection) and not peer.closed and peer.wire.handshake_sent:
                peer.wire.send_choke()
                peer.flush()

    # -- metadata (magnets) ----------------------------------------------------------------------

    def _on_extension_handshake(self, peer: PeerConnection, ev: ExtensionHandshake) -> None:
        reqq = ev.data.get(b"reqq")
        if isinstance(reqq, int) and reqq > 0:
            peer.peer_reqq = min(reqq, MAX_QUEUE)
        if self.info_bytes is not None or not ev.metadata_size or UT_METADATA not in ev.extensions:
            return
        if self._assembler is None:
            try:
                self._assembler = MetadataAssembler(self.info_hash, ev.metadata_size)
            except MetadataError as e:
                peer.close(f"metadata: {e}")
                return
        if ev.metadata_size != self._assembler.total_size:
            return  # disagrees with the size we are collecting; others will serve it
        self._request_metadata(peer)

    def _request_metadata(self, peer: PeerConnection) -> None:
        asm = self._assembler
        wire = peer.wire
        if asm is None or peer.closed or peer in self._meta_refused or self.info_bytes is not None:
            return
        if UT_METADATA not in wire.peer_extensions or wire.peer_metadata_size != asm.total_size:
            return
        mine = sum(1 for p in self._meta_requested.values() if p is peer)
        for piece in asm.missing():
            if mine >= METADATA_REQUESTS_PER_PEER:
                break
            if piece in self._meta_requested or piece in wire.metadata_requests:
                continue
            wire.send_metadata_request(piece)
            self._meta_requested[piece] = peer
            mine += 1
        peer.flush()

    def _request_metadata_all(self) -> None:
        for peer in list(self.peers):
            self._request_metadata(peer)

    def _on_metadata_request(self, peer: PeerConnection, ev: MetadataRequested) -> None:
        if self.info_bytes is not None and UT_METADATA in peer.wire.peer_extensions:
            try:
                peer.wire.send_metadata_data(ev.piece, metadata_piece(self.info_bytes, ev.piece))
            except IndexError:
                peer.wire.send_metadata_reject(ev.piece)
        elif UT_METADATA in peer.wire.peer_extensions:
            peer.wire.send_metadata_reject(ev.piece)

    def _on_metadata_rejected(self, peer: PeerConnection, ev: MetadataRejected) -> None:
        if self._meta_requested.get(ev.piece) is peer:
            del self._meta_requested[ev.piece]
        self._meta_refused.add(peer)
        self._request_metadata_all()

    def _on_metadata_piece(self, peer: PeerConnection, ev: MetadataPieceReceived) -> None:
        if self._meta_requested.get(ev.piece) is peer:
            del self._meta_requested[ev.piece]
        asm = self._assembler
        if asm is None or self.info_bytes is not None:
            return
        try:
            done = asm.add(ev.piece, ev.data, ev.total_size)
        except MetadataError as e:
            peer.close(f"metadata: {e}")
            return
        if not done:
            self._request_metadata(peer)
            return
        try:
            info = asm.result()
        except MetadataError as e:  # a peer lied; pieces were dropped, fetch again
            log.warning("metadata for %s rejected: %s", self.info_hash.hex(), e)
            self._request_metadata_all()
            return
        self.info_bytes = info
        self._assembler = None
        self._meta_requested.clear()
        try:
            self.meta = self.meta.with_info(info)
        except Exception as e:  # hash matched but libtorrent cannot use it: nothing more to do here
            log.error("metadata for %s unusable: %s", self.info_hash.hex(), e)
            return
        if self._on_metadata is not None:
            self._metadata_task = asyncio.get_running_loop().create_task(self._install_metadata())

    async def _install_metadata(self) -> None:
        assert self._on_metadata is not None
        try:
            await self._on_metadata(self.meta)
        except Exception:
            log.exception("installing metadata for %s failed", self.info_hash.hex())
            return
        self.metadata_ready.set()

    # -- timers ----------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Once a second: rates, choke rounds, time-outs, keep-alives, request top-ups."""
        seeding = self.all_verified
        rates: dict[Any, float] = {}
        for peer, since in list(self.peers.items()):
            peer.down.update(now)
            peer.up.update(now)
            rates[peer] = peer.up.rate if seeding else peer.down.rate
            if peer.wire.peer_handshake is None and now - since > HANDSHAKE_TIMEOUT:
                peer.close("handshake timeout")
                continue
            peer.tick(now)
            if peer.closed:
                continue
            if self.picker is not None and self.picker.outstanding(peer) and not peer.throttled \
                    and now - peer.last_block_at > SNUB_TIMEOUT:
                self._snubbed(peer)
        self._apply(self.choker.tick(now, rates))
        for peer in list(self.peers):
            self._refill(peer)
        if self._assembler is not None:
            self._request_metadata_all()

    def _snubbed(self, peer: PeerConnection) -> None:
        """The peer sits on our requests: give its blocks to others, cancel them on the wire."""
        assert self.picker is not None
        log.info("%s snubbed us; re-requesting its blocks elsewhere", peer)
        for piece, block in self.picker.requests_of(peer):
            begin = block * BLOCK
            self.picker.request_dropped(peer, piece, begin)
            req = (piece, begin, self.picker.block_length(piece, block))
            if req in peer.wire.our_requests:
                peer.wire.send_cancel(*req)
        peer.last_block_at = time.monotonic()
        peer.flush()

    def close(self) -> None:
        self.closed = True
        self.close_all("torrent closed")
        for t in self._writes:
            t.cancel()
        if self._metadata_task is not None:
            self._metadata_task.cancel()
        if self._flush_task is not None:
            self._flush_task.cancel()
