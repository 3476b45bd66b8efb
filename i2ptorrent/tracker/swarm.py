"""One torrent's peers as the tracker sees them: bounded (LRU by last announce) and aged out (TTL)."""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass

from .identity import PeerIdentity


@dataclass(slots=True)
class SwarmPeer:
    peer_id: str
    identity: PeerIdentity
    conn: int | None  # the WebSocket connection id; None for a classic HTTP peer
    complete: bool
    seen: float
    home: str = ""  # the tracker instance holding `conn` ("" when the tracker runs alone)
    synced: float = float("-inf")  # when the shared store last heard of this peer (instance clock)


class Swarm:
    """WebSocket and classic peers kept apart (each kind is only offered to its own kind).

    A classic peer is one destination: when it announces under a new peer_id (it restarted), its old
    entry goes, so it is counted once and never handed its own address. (A WebSocket destination may
    carry many peers: every browser behind one bridge; and plain TCP, tests only, has no destinations.)"""

    __slots__ = ("info_hash", "ws", "http", "http_names", "complete", "incomplete", "downloaded", "max_peers")

    def __init__(self, info_hash: str, max_peers: int) -> None:
        self.info_hash = info_hash
        self.ws: OrderedDict[str, SwarmPeer] = OrderedDict()
        self.http: OrderedDict[str, SwarmPeer] = OrderedDict()
        self.http_names: dict[str, str] = {}  # a classic peer's identity name -> its current peer_id
        self.complete = 0
        self.incomplete = 0
        self.downloaded = 0
        self.max_peers = max_peers

    def __len__(self) -> int:
        return len(self.ws) + len(self.http)

    def table(self, conn: int | None) -> OrderedDict[str, SwarmPeer]:
        return self.http if conn is None else self.ws

    def get(self, peer_id: str, conn: int | None) -> SwarmPeer | None:
        return self.table(conn).get(peer_id)

    def upsert(self, peer_id: str, identity: PeerIdentity, conn: int | None, event: str, left: float,
               now: float, home: str = "") -> tuple[SwarmPeer, list[SwarmPeer]]:
        """Record an announce; returns the peer and the peers evicted to stay within max_peers.
        A peer whose socket or instance changed has `synced` reset, so it is shared at once."""
        table = self.table(conn)
        replaced: list[SwarmPeer] = []
        if conn is None and identity.is_i2p:  # a loopback label (plain-TCP tests) is not a destination
            previous = self.http_names.get(identity.name)
            if previous is not None and previous != peer_id:
                old = self.remove(previous, None)
                replaced = [old] if old is not None else []  # gone like an evicted peer, for every instance
            self.http_names[identity.name] = peer_id
        peer = table.get(peer_id)
        done = left == 0 or event == "completed"
        if peer is None:
            peer = SwarmPeer(peer_id, identity, conn, done, now, home)
            table[peer_id] = peer
            if done:
                self.complete += 1
            else:
                self.incomplete += 1
            if event == "completed":
                self.downloaded += 1
        else:
            peer.seen = now
            if peer.conn != conn or peer.home != home or peer.identity != identity:
                peer.conn, peer.home, peer.identity = conn, home, identity
                peer.synced = float("-inf")
            table.move_to_end(peer_id)
            if done and not peer.complete:
                peer.complete = True
                self.complete += 1
                self.incomplete -= 1
                self.downloaded += 1
        return peer, replaced + self._evict()

    def put(self, peer_id: str, identity: PeerIdentity, conn: int | None, home: str, complete: bool,
            seen: float) -> tuple[SwarmPeer, list[SwarmPeer]]:
        """Apply a peer's state as another instance (or the shared store) recorded it."""
        table = self.table(conn)
        peer = table.get(peer_id)
        if peer is None:
            peer = table[peer_id] = SwarmPeer(peer_id, identity, conn, complete, seen, home)
            if complete:
                self.complete += 1
            else:
                self.incomplete += 1
        else:
            if peer.complete != complete:
                self.complete += 1 if complete else -1
                self.incomplete -= 1 if complete else -1
            peer.identity, peer.conn, peer.home, peer.complete = identity, conn, home, complete
            if seen > peer.seen:
                peer.seen = seen
                table.move_to_end(peer_id)
        return peer, self._evict()

    def _evict(self) -> list[SwarmPeer]:
        evicted: list[SwarmPeer] = []
        while len(self) > self.max_peers:
            victim_table = self._oldest_table()
            _, victim = victim_table.popitem(last=False)
            self._uncount(victim)
            evicted.append(victim)
        return evicted

    def remove(self, peer_id: str, conn: int | None) -> SwarmPeer | None:
        peer = self.table(conn).pop(peer_id, None)
        if peer is not None:
            self._uncount(peer)
        return peer

    def expire(self, before: float) -> list[SwarmPeer]:
        """Drop peers last seen before `before` (both tables are ordered by last announce)."""
        gone: list[SwarmPeer] = []
        for table in (self.ws, self.http):
            while table:
                peer = next(iter(table.values()))
                if peer.seen >= before:
                    break
                table.popitem(last=False)
                self._uncount(peer)
                gone.append(peer)
        return gone

    def pick(self, table: OrderedDict[str, SwarmPeer], count: int, exclude: str,
             exclude_name: str | None = None, leechers_only: bool = False) -> list[SwarmPeer]:
        """Up to `count` random peers of one kind, never the asking peer itself (nor, with `exclude_name`,
        any peer at the asker's own destination); with `leechers_only` (the asker seeds) no seeds, since
        two seeds have nothing to exchange."""
        if count <= 0 or not table:
            return []

        def other(p: SwarmPeer) -> bool:
            return p.peer_id != exclude and (exclude_name is None or p.identity.name != exclude_name)

        pool = [p for p in table.values() if not p.complete] if leechers_only else list(table.values())
        if len(pool) <= count + 1:
            chosen = [p for p in pool if other(p)]
            random.shuffle(chosen)
            return chosen[:count]
        return [p for p in random.sample(pool, count + 1) if other(p)][:count]

    def _oldest_table(self) -> OrderedDict[str, SwarmPeer]:
        if not self.ws:
            return self.http
        if not self.http:
            return self.ws
        return self.ws if next(iter(self.ws.values())).seen <= next(iter(self.http.values())).seen else self.http

    def _uncount(self, peer: SwarmPeer) -> None:
        if peer.conn is None and self.http_names.get(peer.identity.name) == peer.peer_id:
            del self.http_names[peer.identity.name]
        if peer.complete:
            self.complete -= 1
        else:
            self.incomplete -= 1
