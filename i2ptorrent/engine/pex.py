"""When to send i2p_pex and which incoming messages to believe: the swarm's sans-I/O PEX policy.

We tell each peer that speaks i2p_pex which destinations we are connected to: the full list first, then
what changed, at most once a minute (libtorrent's pace; it drops a peer that sends more than six a
minute), and nothing when nothing changed. From each peer we take one message per MIN_RECEIVE_GAP and
ignore the rest, so a chatty or hostile peer cannot flood our candidate list (which is bounded as well).
Private torrents never get here (BEP 27): the swarm asks `allowed` first.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from ..wire.pex import MAX_PEX_PEERS

SEND_INTERVAL = 60.0
FIRST_SEND_DELAY = 2.0  # after the peer's extension handshake: let the first connections settle
MIN_RECEIVE_GAP = 20.0


@dataclass
class _PeerPex:
    since: float
    next_send: float
    told: set[str] = field(default_factory=set)  # what this peer now believes we are connected to
    last_received: float | None = None


class PexPolicy:
    """Per swarm; peers are any hashable key (the engine's PeerConnection)."""

    def __init__(self, send_interval: float = SEND_INTERVAL, first_delay: float = FIRST_SEND_DELAY,
                 min_receive_gap: float = MIN_RECEIVE_GAP) -> None:
        self.send_interval = send_interval
        self.first_delay = first_delay
        self.min_receive_gap = min_receive_gap
        self._peers: dict[Hashable, _PeerPex] = {}

    def peer_ready(self, peer: Hashable, now: float) -> None:
        """The peer advertised i2p_pex in its extension handshake."""
        if peer not in self._peers:
            self._peers[peer] = _PeerPex(since=now, next_send=now + self.first_delay)

    def forget(self, peer: Hashable) -> None:
        self._peers.pop(peer, None)

    def due(self, peer: Hashable, now: float, connected: Iterable[str], own: str) -> tuple[list[str], list[str]] | None:
        """(added, dropped) to send to `peer` now, or None. `connected`: the .b32 addresses of our
        handshaken peers; `own`: the receiving peer's address (never told about itself)."""
        state = self._peers.get(peer)
        if state is None or now < state.next_send:
            return None
        current = [a for a in dict.fromkeys(connected) if a != own]
        added = [a for a in current if a not in state.told][:MAX_PEX_PEERS]
        now_set = set(current)
        dropped = [a for a in state.told if a not in now_set][:MAX_PEX_PEERS]
        if not added and not dropped:
            return None
        state.told.update(added)
        state.told.difference_update(dropped)
        state.next_send = now + self.send_interval
        return added, dropped

    def accept(self, peer: Hashable, now: float) -> bool:
        """True if a PEX message from `peer` arriving now is to be used (False: ignore it)."""
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _PeerPex(since=now, next_send=now + self.first_delay)
        if state.last_received is not None and now - state.last_received < self.min_receive_gap:
            return False
        state.last_received = now
        return True
