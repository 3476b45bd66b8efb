"""Whom we upload to: tit-for-tat among interested peers plus one optimistic unchoke.

Sans-I/O: time and rates are passed in, decisions come back as lists of peers to unchoke and to choke.
Leeching, the peers that give us the most get our regular slots (reciprocation); seeding, the peers we
upload to fastest keep them (they use the bandwidth best). One extra slot rotates every
`optimistic_interval` seconds to a random choked, interested peer, so a newcomer with nothing to offer
yet gets a chance to show it can trade. A peer that becomes interested while a slot is free is unchoked
at once instead of waiting for the next round.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

PeerId = Hashable


@dataclass
class Decisions:
    unchoke: list[PeerId] = field(default_factory=list)
    choke: list[PeerId] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.unchoke or self.choke)


@dataclass
class _Peer:
    interested: bool = False
    unchoked: bool = False
    added: float = 0.0


class Choker:
    def __init__(self, slots: int = 4, rechoke_interval: float = 10.0, optimistic_interval: float = 30.0,
                 rng: random.Random | None = None) -> None:
        if slots < 1:
            raise ValueError("at least one upload slot")
        self.slots = slots  # regular slots; the optimistic one comes on top
        self.rechoke_interval = rechoke_interval
        self.optimistic_interval = optimistic_interval
        self._rng = rng or random.Random()
        self._peers: dict[PeerId, _Peer] = {}
        self._optimistic: PeerId | None = None
        self._next_rechoke = 0.0
        self._next_optimistic = 0.0

    def unchoked(self) -> set[PeerId]:
        return {p for p, s in self._peers.items() if s.unchoked}

    @property
    def optimistic(self) -> PeerId | None:
        return self._optimistic

    def add_peer(self, peer: PeerId, now: float) -> None:
        self._peers.setdefault(peer, _Peer(added=now))

    def remove_peer(self, peer: PeerId, now: float) -> Decisions:
        """Forget a peer; its slot goes straight to a waiting peer."""
        state = self._peers.pop(peer, None)
        if self._optimistic == peer:
            self._optimistic = None
        if state is None or not state.unchoked:
            return Decisions()
        return self._fill_free_slots()

    def set_interested(self, peer: PeerId, interested: bool, now: float) -> Decisions:
        state = self._peers.get(peer)
        if state is None:
            return Decisions()
        state.interested = interested
        if interested and not state.unchoked:
            return self._fill_free_slots()
        return Decisions()

    def _fill_free_slots(self) -> Decisions:
        d = Decisions()
        free = self.slots + 1 - len(self.unchoked())
        waiting = [p for p, s in self._peers.items() if s.interested and not s.unchoked]
        for p in waiting[:max(free, 0)]:
            self._peers[p].unchoked = True
            d.unchoke.append(p)
        return d

    def tick(self, now: float, rates: Mapping[PeerId, float]) -> Decisions:
        """Run due choke rounds. `rates`: per peer, bytes/s received from it (leeching) or sent to it
        (seeding); the caller picks which, the ranking is the same."""
        d = Decisions()
        if now < self._next_rechoke:
            return d
        self._next_rechoke = now + self.rechoke_interval
        interested = [p for p, s in self._peers.items() if s.interested]
        # ties broken randomly so equal peers share the slots over time
        ranked = sorted(interested, key=lambda p: (-rates.get(p, 0.0), self._rng.random()))
        regular = set(ranked[: self.slots])
        if now >= self._next_optimistic or self._optimistic not in self._peers or self._optimistic in regular \
                or not self._peers[self._optimistic].interested:
            self._next_optimistic = now + self.optimistic_interval
            rest = [p for p in interested if p not in regular]
            self._optimistic = self._rng.choice(rest) if rest else None
        keep = regular | ({self._optimistic} if self._optimistic is not None else set())
        for p, s in self._peers.items():
            if p in keep and not s.unchoked:
                s.unchoked = True
                d.unchoke.append(p)
            elif p not in keep and s.unchoked:
                s.unchoked = False
                d.choke.append(p)
        return d
