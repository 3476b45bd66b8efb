"""Which blocks to ask which peer for: rarest first, whole pieces per peer, endgame at the end.

Sans-I/O bookkeeping (no data, no clock): the swarm tells it what peers have and what happened to
requests, and asks it for the next requests of one peer. Piece sets are Python ints used as bitsets, so
"does this peer have anything we want" is one C-level AND even for tens of thousands of pieces.

A piece is started by one peer and, while that peer keeps up, finished by it: a hash failure can then be
blamed on exactly one peer (the swarm bans it). Other peers only join a started piece when nothing new is
left, and in endgame (every missing block already requested) blocks are requested twice so a slow peer
cannot hold up the last piece.

Memory for pieces in progress is bounded in bytes: a piece is started only while the sizes of the pieces
in progress (being fetched or being verified) leave room for it under `buffer_budget`. One piece is always
allowed, so a piece larger than the budget is still fetched, alone (libtorrent verifies whole pieces, so
one whole piece is the least that must be held); its blocks are then shared among every peer that has it.
A started piece no connected peer has any more is evicted when its room is needed, else a swarm whose
owners left could hold the budget for ever.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

BLOCK = 16 * 1024
ENDGAME_DUPLICATES = 2  # at most this many peers asked for the same block in endgame
BUFFER_BUDGET = 32 * 1024 * 1024  # bytes of pieces in progress (plus one piece, if larger)

PeerId = Hashable


@dataclass
class _Partial:
    """A piece being downloaded: which blocks are asked of whom, which have arrived."""

    num_blocks: int
    owner: PeerId | None
    requested: dict[int, set[PeerId]] = field(default_factory=dict)  # block -> peers asked
    received: set[int] = field(default_factory=set)
    contributors: set[PeerId] = field(default_factory=set)

    def unrequested(self) -> Iterable[int]:
        return (b for b in range(self.num_blocks) if b not in self.received and b not in self.requested)


class PiecePicker:
    def __init__(self, num_pieces: int, piece_length: int, total_size: int, rng: random.Random | None = None,
                 have: Iterable[int] = (), buffer_budget: int = BUFFER_BUDGET) -> None:
        self.num_pieces = num_pieces
        self.buffer_budget = buffer_budget
        self._reserved = 0  # bytes of the pieces in _partial
        self.evicted: list[int] = []  # pieces dropped by pick() to make room; the caller drains it
        self.piece_length = piece_length
        self.total_size = total_size
        self._rng = rng or random.Random()
        self._have = 0  # bitset of verified pieces
        self._busy = 0  # bitset of pieces started (partial) or waiting for verification
        for i in have:
            self._have |= 1 << i
        self._all = (1 << num_pieces) - 1
        self._want = self._all  # pieces of the selected files
        self._avail = [0] * num_pieces
        self._peers: dict[PeerId, int] = {}  # peer -> bitset of its pieces
        self._partial: dict[int, _Partial] = {}
        self._verifying: set[int] = set()
        self._peer_reqs: dict[PeerId, set[tuple[int, int]]] = {}  # peer -> (piece, block) asked
        self._order: list[int] = []  # needed pieces, rarest first (may lag behind availability a little)
        self._order_dirty = True  # must rebuild (new wanted set)
        self._order_changes = 0  # availability changes since the last rebuild
        self._order_pos = 0  # order[:pos] are all verified or started
        self._tiebreak = list(range(num_pieces))
        self._rng.shuffle(self._tiebreak)
        self._urgent: list[int] = []  # pieces a stream needs next, soonest deadline first

    def set_urgent(self, pieces: Iterable[int]) -> None:
        """Streaming's hook: these pieces are started before any other, in this order (deadline order);
        rarest first goes on around them."""
        self._urgent = [p for p in pieces if 0 <= p < self.num_pieces]

    # -- geometry --------------------------------------------------------------------------------

    def piece_size(self, piece: int) -> int:
        if piece == self.num_pieces - 1:
            return self.total_size - piece * self.piece_length
        return self.piece_length

    def num_blocks(self, piece: int) -> int:
        return (self.piece_size(piece) + BLOCK - 1) // BLOCK

    def block_length(self, piece: int, block: int) -> int:
        return min(BLOCK, self.piece_size(piece) - block * BLOCK)

    # -- our pieces ------------------------------------------------------------------------------

    def have(self, piece: int) -> bool:
        return bool(self._have >> piece & 1)

    @property
    def have_bits(self) -> int:
        return self._have

    @property
    def num_have(self) -> int:
        return self._have.bit_count()

    @property
    def complete(self) -> bool:
        """Every wanted piece verified (all of them unless files were deselected)."""
        return self._want & ~self._have == 0

    @property
    def wanted_bits(self) -> int:
        return self._want

    @property
    def in_progress_bytes(self) -> int:
        """Bytes of the pieces started and not yet verified or failed: what the piece buffers may hold."""
        return self._reserved

    def in_progress(self, piece: int) -> bool:
        return piece in self._partial

    def set_wanted(self, bits: int) -> None:
        """Only pieces in `bits` are downloaded (file selection)."""
        self._want = bits & self._all
        self._order_dirty = True

    def piece_verified(self, piece: int) -> None:
        self._have |= 1 << piece
        self._busy &= ~(1 << piece)
        self._verifying.discard(piece)
        self._drop_partial(piece)

    def piece_failed(self, piece: int) -> set[PeerId]:
        """The piece failed its hash check: start it over. Returns the peers whose blocks made it up."""
        self._verifying.discard(piece)
        self._busy &= ~(1 << piece)
        part = self._partial.get(piece)
        contributors = set(part.contributors) if part else set()
        self._drop_partial(piece)
        self._order_pos = 0  # the piece is free again, wherever it sits in the order
        return contributors

    def discard_blocks_of(self, peer: PeerId) -> list[int]:
        """A banned peer's blocks cannot be trusted: restart the unfinished pieces it contributed to."""
        reset = [i for i, part in self._partial.items() if peer in part.contributors and i not in self._verifying]
        for i in reset:
            self._drop_partial(i)
            self._busy &= ~(1 << i)
        if reset:
            self._order_pos = 0
        return reset

    def _drop_partial(self, piece: int) -> None:
        part = self._partial.pop(piece, None)
        if part is None:
            return
        self._reserved -= self.piece_size(piece)
        for block, peers in part.requested.items():
            for p in peers:
                reqs = self._peer_reqs.get(p)
                if reqs is not None:
                    reqs.discard((piece, block))

    # -- peers' pieces ---------------------------------------------------------------------------

    def add_peer(self, peer: PeerId) -> None:
        self._peers.setdefault(peer, 0)
        self._peer_reqs.setdefault(peer, set())

    def remove_peer(self, peer: PeerId) -> None:
        bits = self._peers.pop(peer, 0)
        self._change_avail(bits, -1)
        for piece, block in self._peer_reqs.pop(peer, set()):
            self._unrequest(peer, piece, block)

    def peer_bitfield(self, peer: PeerId, bits: int) -> None:
        """Replace what a peer has (bitfield, have_all, have_none) with `bits` (bit i = piece i)."""
        bits &= self._all
        old = self._peers.get(peer, 0)
        self._change_avail(old, -1)
        self._peers[peer] = bits
        self._change_avail(bits, +1)

    def peer_have(self, peer: PeerId, piece: int) -> None:
        bits = self._peers.get(peer, 0)
        if not bits >> piece & 1 and 0 <= piece < self.num_pieces:
            self._peers[peer] = bits | 1 << piece
            self._avail[piece] += 1
            self._order_changes += 1

    def peer_has(self, peer: PeerId, piece: int) -> bool:
        return bool(self._peers.get(peer, 0) >> piece & 1)

    def peer_is_seed(self, peer: PeerId) -> bool:
        return self._peers.get(peer, 0) == self._all

    def interesting(self, peer: PeerId) -> bool:
        """Whether the peer has a piece we still need."""
        return bool(self._peers.get(peer, 0) & self._want & ~self._have)

    def availability(self, piece: int) -> int:
        return self._avail[piece]

    def _change_avail(self, bits: int, delta: int) -> None:
        if not bits:
            return
        avail = self._avail
        if bits == self._all:
            for i in range(self.num_pieces):
                avail[i] += delta
        else:  # linear in the number of pieces (shifting a big int per bit would be quadratic)
            for i, c in enumerate(reversed(bin(bits)[2:])):
                if c == "1":
                    avail[i] += delta
        self._order_changes += self.num_pieces

    # -- requests --------------------------------------------------------------------------------

    def outstanding(self, peer: PeerId) -> int:
        return len(self._peer_reqs.get(peer, ()))

    @property
    def total_outstanding(self) -> int:
        return sum(len(r) for r in self._peer_reqs.values())

    def requests_of(self, peer: PeerId) -> set[tuple[int, int]]:
        return set(self._peer_reqs.get(peer, ()))

    def _rarest_order(self) -> list[int]:
        """Rebuilt (O(n log n)) only after enough availability changes: rarest first need not be exact,
        and a rebuild per HAVE would cost seconds of CPU on a torrent of thousands of pieces."""
        if self._order_dirty or self._order_changes > max(8, self.num_pieces // 32):
            need = self._want & ~self._have
            avail, tb = self._avail, self._tiebreak
            self._order = sorted((i for i in range(self.num_pieces) if need >> i & 1),
                                 key=lambda i: (avail[i], tb[i]))
            self._order_dirty = False
            self._order_changes = 0
            self._order_pos = 0
        return self._order

    def pick(self, peer: PeerId, count: int) -> list[tuple[int, int, int]]:
        """Up to `count` new requests (piece, begin, length) for this peer, and records them as asked."""
        bits = self._peers.get(peer, 0)
        reqs = self._peer_reqs.setdefault(peer, set())
        out: list[tuple[int, int, int]] = []
        if count <= 0 or not bits & self._want & ~self._have:
            return out

        def take(piece: int, part: _Partial, duplicate: bool = False) -> None:
            blocks = part.unrequested() if not duplicate else (
                b for b in range(part.num_blocks)
                if b not in part.received and peer not in part.requested.get(b, ())
                and len(part.requested.get(b, ())) < ENDGAME_DUPLICATES)
            for b in blocks:
                if len(out) >= count:
                    return
                part.requested.setdefault(b, set()).add(peer)
                reqs.add((piece, b))
                out.append((piece, b * BLOCK, self.block_length(piece, b)))

        # 1. pieces this peer already works on
        for piece, part in self._partial.items():
            if part.owner == peer:
                take(piece, part)
                if len(out) >= count:
                    return out
        taken = self._have | self._busy
        candidates = bits & self._want & ~taken
        # 2a. pieces an open stream needs next, in deadline order
        for piece in self._urgent:
            if candidates >> piece & 1:
                if not self._room_for(piece):
                    break
                candidates &= ~(1 << piece)
                take(piece, self._start(piece, peer))
                if len(out) >= count:
                    return out
        # 2b. new pieces, rarest first
        taken = self._have | self._busy
        if candidates:
            order = self._rarest_order()
            prefix = True
            for k in range(self._order_pos, len(order)):
                piece = order[k]
                if prefix:
                    if taken >> piece & 1:
                        self._order_pos = k + 1
                        continue
                    prefix = False
                if not candidates >> piece & 1:
                    continue
                if not self._room_for(piece):
                    break
                take(piece, self._start(piece, peer))
                if len(out) >= count:
                    return out
        # 3. help with pieces others started (their owners may be slow or gone)
        for piece, part in self._partial.items():
            if part.owner != peer and bits >> piece & 1 and piece not in self._verifying:
                take(piece, part)
                if len(out) >= count:
                    return out
        # 4. endgame: nothing unrequested is left anywhere; ask for blocks already asked of others
        if not out and self.in_endgame():
            for piece, part in self._partial.items():
                if bits >> piece & 1 and piece not in self._verifying:
                    take(piece, part, duplicate=True)
                    if len(out) >= count:
                        break
        return out

    def _start(self, piece: int, peer: PeerId) -> _Partial:
        part = self._partial[piece] = _Partial(self.num_blocks(piece), peer)
        self._reserved += self.piece_size(piece)
        self._busy |= 1 << piece
        return part

    def _room_for(self, piece: int) -> bool:
        """Whether starting `piece` keeps the pieces in progress within the budget (evicting orphans)."""
        size = self.piece_size(piece)
        if not self._partial or self._reserved + size <= self.buffer_budget:
            return True
        for i, part in list(self._partial.items()):
            if i not in self._verifying and not part.requested and self._avail[i] == 0:
                self._drop_partial(i)
                self._busy &= ~(1 << i)
                self.evicted.append(i)
                self._order_pos = 0
                if not self._partial or self._reserved + size <= self.buffer_budget:
                    return True
        return False

    def in_endgame(self) -> bool:
        """Every piece we lack is started and none has a block left unrequested."""
        if (self._want & ~(self._have | self._busy)) != 0:
            return False
        return all(not any(True for _ in p.unrequested()) for p in self._partial.values())

    def _unrequest(self, peer: PeerId, piece: int, block: int) -> None:
        part = self._partial.get(piece)
        if part is None:
            return
        peers = part.requested.get(block)
        if peers is not None:
            peers.discard(peer)
            if not peers:
                del part.requested[block]
        if part.owner == peer:
            part.owner = None  # anyone may finish it now

    def request_dropped(self, peer: PeerId, piece: int, begin: int) -> None:
        """A request will not be answered (choke, reject, timeout): its block is free again."""
        block = begin // BLOCK
        reqs = self._peer_reqs.get(peer)
        if reqs is not None:
            reqs.discard((piece, block))
        self._unrequest(peer, piece, block)

    def block_received(self, peer: PeerId, piece: int, begin: int) -> tuple[bool, bool, list[PeerId]]:
        """Record an arrived block: (wanted, piece_complete, other peers to cancel the same block with).

        `wanted` is False for a block we no longer need (duplicate in endgame, piece already done).
        """
        block = begin // BLOCK
        reqs = self._peer_reqs.get(peer)
        if reqs is not None:
            reqs.discard((piece, block))
        part = self._partial.get(piece)
        if part is None or block in part.received or begin % BLOCK:
            if part is not None:
                self._unrequest(peer, piece, block)
            return False, False, []
        part.received.add(block)
        part.contributors.add(peer)
        others = [p for p in part.requested.pop(block, set()) if p != peer]
        for p in others:
            r = self._peer_reqs.get(p)
            if r is not None:
                r.discard((piece, block))
        complete = len(part.received) == part.num_blocks
        if complete:
            self._verifying.add(piece)
        return True, complete, others
