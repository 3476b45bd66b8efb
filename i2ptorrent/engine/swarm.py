"""One torrent's swarm of our own peers, as a sans-I/O core: what to request, whom to serve, whom to ban.

Inputs are the bytes each peer sent, facts from storage (a piece verified or failed, a block read) and the
time, always passed in. Outputs are actions (actions.py) drained with `take_actions()`: send bytes to a
peer, close it, serve a block, write a piece, install metadata. Every timer (handshake, idle, keep-alive,
snub, the once-a-second round of rates, choking and request top-ups) is read through `next_deadline()` and
run by `on_timer(now)`. The asyncio adapter (swarm_io.py) owns the streams, tasks and the piece store.

The core owns the peer set (PeerState per peer, keyed by whatever the adapter uses) and the torrent's
metadata (`meta`); the picker and the choker keep their views of the same peers by key.
- the picker tracks who has what and every outstanding block request; complete pieces go out as WritePiece
  and come back as `piece_written`. A verified piece is announced with HAVE, a failed one is blamed on the
  peers whose blocks made it up (banned when there was only one, or on a BAN_STRIKES-th shared failure).
- the choker unchokes interested peers by tit-for-tat plus an optimistic slot.
- for a magnet the info dict comes over ut_metadata (metadata_fetch.py), is verified against the
  info-hash and handed out as InstallMetadata; storage answers with `set_pieces`.

Requests are pipelined per peer, sized to the link: enough to cover QUEUE_TIME seconds at the rate the
peer is delivering (MIN_QUEUE at first, at most what the peer accepts). Piece buffers are bounded in bytes
by the picker's budget (see picker.py): at most max(buffer_budget, one piece) is held, whatever the piece
length, verifying pieces included.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..wire.connection import PeerWire
from ..wire.errors import LocalProtocolError, MetadataError, ProtocolError
from ..wire.events import (
    BitfieldReceived, BlockReceived, BlockRequested, Choke, Event, ExtensionHandshake, HandshakeReceived,
    HaveAll, HaveReceived, Interested, MetadataPieceReceived, MetadataRejected, MetadataRequested,
    NotInterested, RequestRejected, Unchoke,
)
from ..wire.extension import UT_METADATA, metadata_piece
from ..wire.pex import I2P_PEX, PexReceived
from .actions import (
    Action, ClosePeer, Completed, InstallMetadata, PeerBanned, PeersFound, Prefetch, Send, ServeBlock,
    WritePiece,
)
from .bits import bitfield_to_int, int_to_bitfield
from .choker import Choker, Decisions
from .metadata_fetch import MetadataFetch, MetadataMismatch
from .metainfo import Metainfo
from .pex import PexPolicy
from .peer_state import HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, KEEPALIVE_INTERVAL, SNUB_TIMEOUT, PeerKey, PeerState
from .picker import BLOCK, BUFFER_BUDGET, PiecePicker

log = logging.getLogger(__name__)

QUEUE_TIME = 6.0
"""Seconds of the peer's delivery rate kept requested. It must exceed the request round trip or the queue
never grows past MIN_QUEUE: over I2P that round trip is 1-3 s, more once a fast carrier's queues fill
(bench/testnet.py, a striped WebRTC peer at 3 hops, 50 ms per link: srtt 1.5-3.5 s)."""
MIN_QUEUE = 16
MAX_QUEUE = 250  # 4 MiB in flight per peer at most
RATE_REFRESH = 0.05
ROUND = 1.0  # rates, choke rounds, request and metadata top-ups
MAX_PEERS = 50
REPLACE_AFTER = 10.0  # a second connection from a peer this much later means it restarted (see _replace_stale)
MAX_KNOWN_SEEDS = 500  # as many as a torrent keeps candidate addresses
BAN_STRIKES = 3  # failures shared with other peers before a peer is banned


@dataclass
class SwarmStats:
    """Counters a user (and the tests) check: what came from the network and what was thrown away."""

    blocks_received: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0  # by peers already gone; `SwarmCore.uploaded` adds the live ones
    pieces_fetched: int = 0  # pieces downloaded from peers and verified
    hash_failures: int = 0
    redundant_bytes: int = 0
    peers_banned: int = 0


def new_peer_id() -> bytes:
    """Azureus-style id with a random tail; it names no version, to say less about the user."""
    return b"-IT0001-" + os.urandom(12)


class SwarmCore:
    def __init__(self, meta: Metainfo, peer_id: bytes, *, max_peers: int = MAX_PEERS,
                 rng: random.Random | None = None, buffer_budget: int = BUFFER_BUDGET) -> None:
        self.meta = meta  # the torrent as now known: the one owner of its metadata
        self.peer_id = peer_id
        self.max_peers = max_peers
        self.buffer_budget = buffer_budget
        self._rng = rng or random.Random()
        self.picker: PiecePicker | None = None  # once storage has the pieces (set_pieces)
        self.choker = Choker(rng=self._rng)
        self.peers: dict[PeerKey, PeerState] = {}
        self.banned: set[str] = set()
        self.known_seeds: dict[str, None] = {}
        """Addresses that showed every piece while we had every piece too (oldest first, bounded): a seeding
        engine does not dial them again, since two seeds have nothing to say to each other."""
        self._strikes: dict[str, int] = {}
        self._buffers: dict[int, bytearray] = {}
        self._fetch = MetadataFetch(meta.info_hash)
        self.stats = SwarmStats()
        self.all_verified = False
        self.paused = False
        self.closed = False
        self._next_round: float | None = None
        self._now = 0.0  # the time of the latest call: when queued bytes count as sent
        self._actions: list[Action] = []
        self.pex = PexPolicy()
        self._private: tuple[bytes | None, bool] = (None, False)  # (info dict it was computed for, private)
        self._dispatch: dict[type, Callable[[PeerState, Any, float], None]] = {
            HandshakeReceived: self._on_handshake, BitfieldReceived: self._on_bitfield,
            HaveReceived: self._on_have, HaveAll: self._on_have_all,
            Interested: self._on_interested, NotInterested: self._on_not_interested,
            Choke: self._on_choke, Unchoke: self._on_unchoke, BlockRequested: self._on_request,
            BlockReceived: self._on_block, RequestRejected: self._on_rejected,
            ExtensionHandshake: self._on_extension_handshake, MetadataRequested: self._on_metadata_request,
            MetadataPieceReceived: self._on_metadata_piece, MetadataRejected: self._on_metadata_rejected,
            PexReceived: self._on_pex,
        }

    @property
    def info_hash(self) -> bytes:
        return self.meta.info_hash

    # -- outputs ---------------------------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        """What to do now, in order; each call returns the actions queued since the last one."""
        self._flush_wires()
        out, self._actions = self._actions, []
        return out

    def _flush_wires(self) -> None:
        """Whatever the wires queued becomes one Send per peer; its keep-alive clock restarts."""
        for ps in self.peers.values():
            data = ps.wire.data_to_send()
            if data:
                ps.last_send_at = self._now
                self._actions.append(Send(ps.key, data))

    def next_deadline(self) -> float | None:
        """When `on_timer` must next run (None: no timer is pending)."""
        times = [self._next_round] if self._next_round is not None else []
        picker = self.picker
        for key, ps in self.peers.items():
            t = ps.deadline(picker is not None and picker.outstanding(key) > 0)
            if t is not None:
                times.append(t)
        return min(times) if times else None

    # -- storage facts ---------------------------------------------------------------------------

    def set_pieces(self, have: Iterable[int], wanted: int | None, now: float) -> None:
        """Storage holds the torrent (at start, or once a magnet's metadata is installed): `have` are the
        pieces already verified, `wanted` the pieces of the selected files (None: all)."""
        self._now = now
        meta = self.meta
        ti = meta.torrent_info()
        num, plen, total = ti.num_pieces(), ti.piece_length(), ti.total_size()
        have = list(have)
        self.picker = picker = PiecePicker(num, plen, total, rng=self._rng, have=have,
                                           buffer_budget=self.buffer_budget)
        if wanted is not None:
            picker.set_wanted(wanted)
        assert meta.info_bytes is not None
        all_bits = (1 << num) - 1
        for ps in list(self.peers.values()):
            wire = ps.wire
            try:
                wire.set_geometry(num, plen, total)
            except ProtocolError as e:
                self._drop(ps, f"protocol error: {e}", now)
                continue
            wire.set_metadata_size(len(meta.info_bytes))
            picker.add_peer(ps.key)
            picker.peer_bitfield(ps.key, all_bits if ps.have_all else ps.bits)
            if wire.peer_handshake is not None:
                # It connected before we had pieces to show (still checking, or a magnet) and was told
                # 'have none' or nothing: announce what we hold now, or it never asks us for anything.
                for piece in have:
                    wire.send_have(piece)
                if wire.extensions:
                    wire.send_extension_handshake()
                self._update_interest(ps)
        self._check_complete(now)
        for ps in list(self.peers.values()):
            self._refill(ps, now)

    def piece_written(self, piece: int, ok: bool, now: float) -> None:
        """Storage's verdict on a WritePiece: verified and kept, or failed its hash check."""
        self._now = now
        if self.closed or self.picker is None:
            return
        if ok:
            self._piece_verified(piece, now)
        else:
            self._piece_failed(piece, now)
        self._refill_all(now)

    def piece_not_written(self, piece: int, error: str, now: float) -> None:
        """Storage could not take a piece (disk error): it is fetched again, and nobody is to blame."""
        self._now = now
        if self.closed or self.picker is None:
            return
        log.error("piece %d not stored: %s", piece, error)
        self.picker.piece_failed(piece)
        self._buffers.pop(piece, None)
        self._refill_all(now)

    def upload_wanted(self, peer: PeerKey, index: int, begin: int, length: int) -> bool:
        """Whether a ServeBlock is still worth reading (not cancelled, not voided by a choke)."""
        ps = self.peers.get(peer)
        return ps is not None and (index, begin, length) in ps.wire.peer_requests

    def block_read(self, peer: PeerKey, index: int, begin: int, data: bytes, now: float) -> bool:
        """The block of a ServeBlock, read from storage: send it if still wanted. True if sent."""
        self._now = now
        ps = self.peers.get(peer)
        if ps is None or not ps.wire.send_piece(index, begin, data):
            return False
        ps.up.add(len(data))
        return True

    # -- peers -----------------------------------------------------------------------------------

    def connected_to(self, remote: str) -> bool:
        return any(ps.remote == remote for ps in self.peers.values())

    def handshaken(self) -> list[PeerState]:
        return [ps for ps in self.peers.values() if ps.wire.peer_handshake is not None]

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in piece buffers being assembled (pieces handed out in WritePiece not included)."""
        return sum(len(b) for b in self._buffers.values())

    @property
    def uploaded(self) -> int:
        return self.stats.bytes_sent + sum(ps.up.total for ps in self.peers.values())

    def _replace_stale(self, remote: str, now: float) -> None:
        """A destination that calls again while we think it is connected has restarted: I2P tells us only
        when the old stream times out (minutes), so its old connection goes. Identities come from the
        router, so only that peer can do this to its own connection. Within REPLACE_AFTER of the first it
        is a simultaneous open instead, and the second one is refused."""
        for ps in list(self.peers.values()):
            if ps.remote == remote and now - ps.attached_at >= REPLACE_AFTER:
                self._drop(ps, "replaced by a new connection from the same destination", now)

    def add_peer(self, key: PeerKey, remote: str, outgoing: bool, now: float) -> str | None:
        """A connection to `remote` (already routed to this torrent): None if taken on, else why not.
        Our handshake is queued at once."""
        self._now = now
        if not outgoing and not self.closed and remote not in self.banned:
            self._replace_stale(remote, now)
        why = None
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
            return why
        kw: dict[str, Any] = {}
        if self.picker is not None:
            kw = dict(num_pieces=self.picker.num_pieces, piece_length=self.picker.piece_length,
                      total_length=self.picker.total_size)
        info = self.meta.info_bytes
        wire = PeerWire(self.info_hash, self.peer_id, metadata_size=len(info) if info else None,
                        pex=self.pex_allowed, **kw)
        wire.send_handshake()
        ps = self.peers[key] = PeerState(key, remote, outgoing, wire, now)
        self.choker.add_peer(key, now)
        if self.picker is not None:
            self.picker.add_peer(key)
        if self._next_round is None:
            self._next_round = now + ROUND
        return None

    def close_peer(self, peer: PeerKey, reason: str, now: float) -> None:
        """The connection ended or failed on the adapter's side (EOF, write error, storage error)."""
        self._now = now
        ps = self.peers.get(peer)
        if ps is not None:
            self._drop(ps, reason, now)

    def _drop(self, ps: PeerState, reason: str, now: float) -> None:
        """Forget the peer and have the adapter close it; its blocks and metadata pieces go to others."""
        if self.peers.pop(ps.key, None) is None:
            return
        log.debug("%s closed: %s", ps, reason)
        self.pex.forget(ps.key)
        ps.wire.data_to_send()  # nothing more goes to it
        self._actions.append(ClosePeer(ps.key, reason))
        self.stats.bytes_sent += ps.up.total
        if self.picker is not None:
            self.picker.remove_peer(ps.key)
        self._fetch.peer_gone(ps.key)
        self._apply(self.choker.remove_peer(ps.key, now), now)
        if not self.peers:
            self._next_round = None
        if self.closed:
            return
        self._request_metadata_all(now)
        self._refill_all(now)

    def ban(self, peer: PeerKey, reason: str, now: float) -> None:
        self._now = now
        ps = self.peers.get(peer)
        if ps is None:
            return
        if self.picker is not None:
            for piece in self.picker.discard_blocks_of(peer):
                self._buffers.pop(piece, None)
        if ps.remote not in self.banned:
            self.banned.add(ps.remote)
            self.stats.peers_banned += 1
            self._actions.append(PeerBanned(ps.remote, reason))
        self._drop(ps, f"banned: {reason}", now)

    def close_all(self, reason: str, now: float) -> None:
        self._now = now
        for ps in list(self.peers.values()):
            self._drop(ps, reason, now)

    def pause(self, now: float) -> None:
        self.paused = True
        self.close_all("paused", now)

    def resume(self) -> None:
        self.paused = False

    def close(self, now: float) -> None:
        self.closed = True
        self.close_all("torrent closed", now)

    # -- wire input ------------------------------------------------------------------------------

    def reading_paused(self, peer: PeerKey, now: float) -> None:
        """The adapter waits out the download limit before reading this peer again."""
        ps = self.peers.get(peer)
        if ps is not None:
            ps.reading_paused(now)

    def reading_resumed(self, peer: PeerKey, now: float) -> None:
        ps = self.peers.get(peer)
        if ps is not None:
            ps.reading_resumed(now)

    def receive_data(self, peer: PeerKey, data: bytes, now: float) -> None:
        """Bytes the peer sent."""
        self._now = now
        ps = self.peers.get(peer)
        if ps is None or not data:
            return
        ps.last_recv_at = now
        try:
            events = ps.wire.receive_data(data)
        except ProtocolError as e:
            self._handle(ps, e.events, now)
            self._drop(ps, f"protocol error: {e}", now)
            return
        self._handle(ps, events, now)
        if ps.key in self.peers:
            self._refill(ps, now)

    def _handle(self, ps: PeerState, events: list[Event], now: float) -> None:
        dispatch = self._dispatch
        for ev in events:
            if ps.key not in self.peers:
                return
            handler = dispatch.get(type(ev))
            if handler is None:
                continue
            try:
                handler(ps, ev, now)
            except LocalProtocolError as e:  # our own bug; drop the peer, keep the swarm
                log.exception("wire misuse with %s", ps)
                self._drop(ps, f"local error: {e}", now)
                return

    def _on_handshake(self, ps: PeerState, ev: HandshakeReceived, now: float) -> None:
        wire = ps.wire
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

    def _on_bitfield(self, ps: PeerState, ev: BitfieldReceived, now: float) -> None:
        ps.bits = bitfield_to_int(ev.bitfield)
        if self.picker is not None:
            self.picker.peer_bitfield(ps.key, ps.bits)
            self._update_interest(ps)
            self._drop_if_both_seeds(ps, now)
        elif ps.bits:
            self._interested_before_metadata(ps)

    def _on_have(self, ps: PeerState, ev: HaveReceived, now: float) -> None:
        ps.bits |= 1 << ev.index
        if self.picker is not None:
            self.picker.peer_have(ps.key, ev.index)
            if not ps.wire.am_interested:
                self._update_interest(ps)
            self._drop_if_both_seeds(ps, now)
        else:
            self._interested_before_metadata(ps)

    def _on_have_all(self, ps: PeerState, ev: HaveAll, now: float) -> None:
        ps.have_all = True
        if self.picker is not None:
            self.picker.peer_bitfield(ps.key, (1 << self.picker.num_pieces) - 1)
            self._update_interest(ps)
            self._drop_if_both_seeds(ps, now)
        else:
            self._interested_before_metadata(ps)

    def _on_interested(self, ps: PeerState, ev: Interested, now: float) -> None:
        self._apply(self.choker.set_interested(ps.key, True, now), now)

    def _on_not_interested(self, ps: PeerState, ev: NotInterested, now: float) -> None:
        self.choker.set_interested(ps.key, False, now)

    def _on_choke(self, ps: PeerState, ev: Choke, now: float) -> None:
        if self.picker is not None:
            for r in ev.dropped:
                self.picker.request_dropped(ps.key, r.index, r.begin)

    def _on_unchoke(self, ps: PeerState, ev: Unchoke, now: float) -> None:
        ps.last_block_at = now  # the snub clock starts now

    def _on_request(self, ps: PeerState, ev: BlockRequested, now: float) -> None:
        if self.picker is not None and self.picker.have(ev.index):
            self._actions.append(ServeBlock(ps.key, ev.index, ev.begin, ev.length))
            if ev.begin == 0:  # a new piece is wanted: start reading it before the uploader gets there
                self._actions.append(Prefetch(ev.index))
        elif ps.wire.fast:
            ps.wire.send_reject(ev.index, ev.begin, ev.length)
        # without the fast extension a request for a piece we lack is dropped (BEP 3 has no refusal)

    def _on_rejected(self, ps: PeerState, ev: RequestRejected, now: float) -> None:
        if self.picker is not None:
            self.picker.request_dropped(ps.key, ev.index, ev.begin)

    def _on_block(self, ps: PeerState, ev: BlockReceived, now: float) -> None:
        picker = self.picker
        if picker is None:
            return
        n = len(ev.data)
        ps.down.add(n)
        ps.last_block_at = now
        self.stats.blocks_received += 1
        self.stats.bytes_received += n
        wanted, complete, others = picker.block_received(ps.key, ev.index, ev.begin)
        for other in others:  # endgame: the same block is no longer needed from them
            o = self.peers.get(other)
            req = (ev.index, ev.begin, n)
            if o is not None and req in o.wire.our_requests:
                o.wire.send_cancel(*req)
        if not wanted or n != picker.block_length(ev.index, ev.begin // BLOCK):
            self.stats.redundant_bytes += n
            return
        buf = self._buffers.get(ev.index)
        if buf is None:
            buf = self._buffers[ev.index] = bytearray(picker.piece_size(ev.index))
        buf[ev.begin:ev.begin + n] = ev.data
        if complete:
            self._actions.append(WritePiece(ev.index, bytes(self._buffers.pop(ev.index))))

    # -- pieces ----------------------------------------------------------------------------------

    def _piece_verified(self, piece: int, now: float) -> None:
        picker = self.picker
        assert picker is not None
        if picker.have(piece):
            return
        picker.piece_verified(piece)
        self.stats.pieces_fetched += 1
        for ps in list(self.peers.values()):
            wire = ps.wire
            if wire.peer_handshake is None:
                continue
            if not picker.peer_has(ps.key, piece):
                wire.send_have(piece)
            if wire.am_interested and not picker.interesting(ps.key):
                wire.send_not_interested()
        self._check_complete(now)

    def _piece_failed(self, piece: int, now: float) -> None:
        assert self.picker is not None
        self.stats.hash_failures += 1
        contributors = self.picker.piece_failed(piece)
        self._buffers.pop(piece, None)
        log.warning("piece %d failed its hash check (from %s)", piece,
                    [self.peers[p].remote[:12] for p in contributors if p in self.peers])
        for key in contributors:
            ps = self.peers.get(key)
            if ps is None:
                continue
            strikes = self._strikes[ps.remote] = self._strikes.get(ps.remote, 0) + 1
            if len(contributors) == 1 or strikes >= BAN_STRIKES:
                self.ban(key, f"sent piece {piece} that failed the hash check", now)

    def _check_complete(self, now: float) -> None:
        if self.picker is None or not self.picker.complete or self.all_verified:
            return
        self.all_verified = True
        for ps in list(self.peers.values()):
            self._drop_if_both_seeds(ps, now)
        self._actions.append(Completed(flush=self.stats.pieces_fetched > 0))

    def _drop_if_both_seeds(self, ps: PeerState, now: float) -> None:
        """Two seeds have nothing to say to each other: drop the peer and remember its address."""
        if not (self.all_verified and self._peer_is_seed(ps)):
            return
        self.known_seeds.pop(ps.remote, None)
        self.known_seeds[ps.remote] = None
        while len(self.known_seeds) > MAX_KNOWN_SEEDS:
            del self.known_seeds[next(iter(self.known_seeds))]
        self._drop(ps, "both seeds", now)

    def _peer_is_seed(self, ps: PeerState) -> bool:
        picker = self.picker
        return picker is not None and picker.peer_is_seed(ps.key) and picker.num_have == picker.num_pieces

    # -- requesting ------------------------------------------------------------------------------

    def _interested_before_metadata(self, ps: PeerState) -> None:
        """A magnet's peer that has pieces is worth asking before its metadata arrives: its unchoke then
        comes back with the metadata instead of a round trip later (at 1-3 s per I2P round trip, that is
        the difference between ~4 and ~5 s to the first piece). `set_pieces` withdraws the interest if the
        peer turns out to hold nothing we want."""
        if ps.wire.peer_handshake is not None and not ps.wire.am_interested and not self.paused:
            ps.wire.send_interested()

    def _update_interest(self, ps: PeerState) -> None:
        if self.picker is None or ps.wire.peer_handshake is None:
            return
        want = self.picker.interesting(ps.key)
        if want and not ps.wire.am_interested:
            ps.wire.send_interested()
        elif not want and ps.wire.am_interested:
            ps.wire.send_not_interested()

    def queue_target(self, ps: PeerState, now: float) -> int:
        if now - ps.down.last_update >= RATE_REFRESH:  # a fast link ramps up within ~100 ms
            ps.down.update(now)
        by_rate = int(ps.down.rate * QUEUE_TIME / BLOCK)
        return max(MIN_QUEUE, min(by_rate, ps.peer_reqq, MAX_QUEUE))

    def _refill(self, ps: PeerState, now: float) -> None:
        picker, wire = self.picker, ps.wire
        if picker is None or self.paused or self.closed:
            return
        if wire.peer_choking or not wire.am_interested or wire.peer_handshake is None:
            return
        target = self.queue_target(ps, now)
        outstanding = picker.outstanding(ps.key)
        room = target - outstanding
        if room <= 0 or (room < max(8, target // 4) and outstanding > 0):
            return  # refill in batches, not one request per block
        reqs = picker.pick(ps.key, room)
        for piece in picker.evicted:  # their room went to new pieces
            self._buffers.pop(piece, None)
        picker.evicted.clear()
        for index, begin, length in reqs:
            wire.send_request(index, begin, length)

    def _refill_all(self, now: float) -> None:
        for ps in list(self.peers.values()):
            self._refill(ps, now)

    # -- choking ---------------------------------------------------------------------------------

    def _apply(self, d: Decisions, now: float) -> None:
        for key in d.unchoke:
            ps = self.peers.get(key)
            if ps is not None and ps.wire.handshake_sent:
                ps.wire.send_unchoke()
        for key in d.choke:
            ps = self.peers.get(key)
            if ps is not None and ps.wire.handshake_sent:
                ps.wire.send_choke()

    # -- metadata (magnets) ----------------------------------------------------------------------

    def _on_extension_handshake(self, ps: PeerState, ev: ExtensionHandshake, now: float) -> None:
        if I2P_PEX in ev.extensions and ps.wire.pex:
            self.pex.peer_ready(ps.key, now)
        reqq = ev.data.get(b"reqq")
        if isinstance(reqq, int) and reqq > 0:
            ps.peer_reqq = min(reqq, MAX_QUEUE)
        if self.meta.has_metadata or not ev.metadata_size or UT_METADATA not in ev.extensions:
            return
        try:
            if not self._fetch.offered(ev.metadata_size):
                return  # disagrees with the size we are collecting; others will serve it
        except MetadataError as e:
            self._drop(ps, f"metadata: {e}", now)
            return
        self._request_metadata(ps, now)

    def _request_metadata(self, ps: PeerState, now: float) -> None:
        if self.meta.has_metadata:
            return
        pieces = self._fetch.requests_for(ps.key, ps.wire)
        for piece in pieces:
            ps.wire.send_metadata_request(piece)

    def _request_metadata_all(self, now: float) -> None:
        if self._fetch.active and not self.meta.has_metadata:
            for ps in list(self.peers.values()):
                self._request_metadata(ps, now)

    def _on_metadata_request(self, ps: PeerState, ev: MetadataRequested, now: float) -> None:
        if UT_METADATA not in ps.wire.peer_extensions:
            return
        info = self.meta.info_bytes
        if info is None:
            ps.wire.send_metadata_reject(ev.piece)
            return
        try:
            ps.wire.send_metadata_data(ev.piece, metadata_piece(info, ev.piece))
        except IndexError:
            ps.wire.send_metadata_reject(ev.piece)

    def _on_metadata_rejected(self, ps: PeerState, ev: MetadataRejected, now: float) -> None:
        self._fetch.rejected(ps.key, ev.piece)
        self._request_metadata_all(now)

    def _on_metadata_piece(self, ps: PeerState, ev: MetadataPieceReceived, now: float) -> None:
        if self.meta.has_metadata:
            return
        try:
            info = self._fetch.received(ps.key, ev.piece, ev.data, ev.total_size)
        except MetadataMismatch as e:  # a peer lied; pieces were dropped, fetch again
            log.warning("metadata for %s rejected: %s", self.info_hash.hex(), e)
            self._request_metadata_all(now)
            return
        except MetadataError as e:
            self._drop(ps, f"metadata: {e}", now)
            return
        if info is None:
            self._request_metadata(ps, now)
            return
        try:
            self.meta = self.meta.with_info(info)
        except Exception as e:  # hash matched but libtorrent cannot use it: nothing more to do here
            log.error("metadata for %s unusable: %s", self.info_hash.hex(), e)
            return
        self._actions.append(InstallMetadata(self.meta))

    # -- timers ----------------------------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """Run every timer due at `now`."""
        self._now = now
        picker = self.picker
        for key, ps in list(self.peers.items()):
            if key not in self.peers:
                continue
            if ps.wire.peer_handshake is None and now - ps.attached_at >= HANDSHAKE_TIMEOUT:
                self._drop(ps, "handshake timeout", now)
                continue
            if ps.throttled_since is None:
                if now - ps.last_recv_at >= IDLE_TIMEOUT:
                    self._drop(ps, "idle timeout", now)
                    continue
                if picker is not None and picker.outstanding(key) and now - ps.last_block_at >= SNUB_TIMEOUT:
                    self._snubbed(ps, now)
            if ps.wire.handshake_sent and now - ps.last_send_at >= KEEPALIVE_INTERVAL:
                ps.wire.send_keepalive()
        if self._next_round is not None and now >= self._next_round:
            self._next_round = now + ROUND
            self._round(now)

    def _round(self, now: float) -> None:
        """Once a second: rates, choke rounds, request and metadata top-ups."""
        seeding = self.all_verified
        rates: dict[PeerKey, float] = {}
        for key, ps in self.peers.items():
            ps.down.update(now)
            ps.up.update(now)
            rates[key] = ps.up.rate if seeding else ps.down.rate
        self._apply(self.choker.tick(now, rates), now)
        self._refill_all(now)
        self._request_metadata_all(now)
        self._send_pex(now)

    # -- peer exchange (i2p_pex) -------------------------------------------------------------------

    @property
    def pex_allowed(self) -> bool:
        """Never for a private torrent (BEP 27); a magnet's privacy is unknown until its metadata."""
        info = self.meta.info_bytes
        if self._private[0] is not info:
            self._private = (info, self.meta.private)
        return not self._private[1]

    def _send_pex(self, now: float) -> None:
        if not self.pex_allowed:
            return
        connected = [ps.remote for ps in self.handshaken() if ps.remote.endswith(".b32.i2p")]
        for ps in self.peers.values():
            if not ps.wire.pex or I2P_PEX not in ps.wire.peer_extensions:
                continue
            update = self.pex.due(ps.key, now, connected, own=ps.remote)
            if update is not None:
                ps.wire.send_pex(*update)

    def _on_pex(self, ps: PeerState, ev: PexReceived, now: float) -> None:
        if not self.pex_allowed or not self.pex.accept(ps.key, now):
            return
        found = tuple(a for a in ev.added if a != ps.remote)
        if found:
            log.debug("%s told us of %d peers (i2p_pex)", ps, len(found))
            self._actions.append(PeersFound(found))

    def _snubbed(self, ps: PeerState, now: float) -> None:
        """The peer sits on our requests: give its blocks to others, cancel them on the wire."""
        picker = self.picker
        assert picker is not None
        log.info("%s snubbed us; re-requesting its blocks elsewhere", ps)
        for piece, block in picker.requests_of(ps.key):
            begin = block * BLOCK
            picker.request_dropped(ps.key, piece, begin)
            req = (piece, begin, picker.block_length(piece, block))
            if req in ps.wire.our_requests:
                ps.wire.send_cancel(*req)
        ps.last_block_at = now
        self._refill_all(now)
