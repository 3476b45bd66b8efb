"""The testnet hub's core: which packet leaves when, and which is lost (sans-I/O, time passed in).

This machine's kernel has no netem, so a userspace hub forwards every IPv4 packet between the routers'
namespaces (transport/testnet_hub.py). This module decides, for each packet, whether the link drops it and
at what time it is delivered; the hub only reads, writes and sleeps until `next_due()`. A link is one
direction between two routers; its delay is one-way.

Packets on one link are never reordered: with jitter, a packet is delivered no earlier than the one before
it on the same link (netem reorders by default; TCP over I2P's NTCP2 would only see that as loss).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_QUEUED_BYTES = 8 << 20
"""Bound on bytes waiting in the hub over all links; past it new packets are dropped (a full queue)."""


@dataclass(frozen=True)
class LinkParams:
    """One direction of a router-to-router link."""

    delay: float = 0.0
    """One-way delay in seconds."""
    jitter: float = 0.0
    """Each packet's delay is delay + uniform(-jitter, +jitter), never below 0."""
    loss: float = 0.0
    """Share of packets dropped, 0..1."""

    def __post_init__(self) -> None:
        if self.delay < 0 or self.jitter < 0 or not 0 <= self.loss <= 1:
            raise ValueError(f"bad link parameters: {self}")


@dataclass
class LinkCounters:
    packets: int = 0
    bytes: int = 0
    dropped: int = 0


@dataclass(order=True)
class _Queued:
    due: float
    seq: int
    dst: int = field(compare=False)
    packet: bytes = field(compare=False)


class LinkScheduler:
    """Delay, jitter and loss for packets between numbered endpoints.

    `submit(src, dst, packet, now)` queues (or drops) a packet; `due(now)` yields (dst, packet) whose time
    has come, in delivery order; `next_due()` says when to wake up next.
    """

    def __init__(self, default: LinkParams = LinkParams(), *, seed: int | None = None,
                 max_queued_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.default = default
        self._links: dict[tuple[int, int], LinkParams] = {}
        self._last_due: dict[tuple[int, int], float] = {}
        self._heap: list[_Queued] = []
        self._seq = 0
        self._queued_bytes = 0
        self._max_queued_bytes = max_queued_bytes
        self._rng = random.Random(seed)
        self.sent: dict[int, LinkCounters] = {}
        """Per source endpoint: what it sent (delivered or queued) and what was dropped."""
        self.received: dict[int, LinkCounters] = {}
        """Per destination endpoint: what was delivered to it."""

    def set_all(self, params: LinkParams) -> None:
        """Every link, present and future, gets `params` (per-link settings are forgotten)."""
        self.default = params
        self._links.clear()

    def set_link(self, src: int, dst: int, params: LinkParams) -> None:
        self._links[(src, dst)] = params

    def params(self, src: int, dst: int) -> LinkParams:
        return self._links.get((src, dst), self.default)

    def submit(self, src: int, dst: int, packet: bytes, now: float) -> bool:
        """Queue a packet from `src` to `dst`; False when the link (or a full hub) dropped it."""
        counters = self.sent.setdefault(src, LinkCounters())
        p = self.params(src, dst)
        if (p.loss and self._rng.random() < p.loss) or self._queued_bytes + len(packet) > self._max_queued_bytes:
            counters.dropped += 1
            return False
        delay = p.delay
        if p.jitter:
            delay = max(0.0, delay + self._rng.uniform(-p.jitter, p.jitter))
        due = max(now + delay, self._last_due.get((src, dst), 0.0))
        self._last_due[(src, dst)] = due
        self._seq += 1
        heapq.heappush(self._heap, _Queued(due, self._seq, dst, packet))
        self._queued_bytes += len(packet)
        counters.packets += 1
        counters.bytes += len(packet)
        return True

    def due(self, now: float) -> Iterator[tuple[int, bytes]]:
        """Packets whose delivery time has come, oldest due first."""
        while self._heap and self._heap[0].due <= now:
            q = heapq.heappop(self._heap)
            self._queued_bytes -= len(q.packet)
            rx = self.received.setdefault(q.dst, LinkCounters())
            rx.packets += 1
            rx.bytes += len(q.packet)
            yield q.dst, q.packet

    def next_due(self) -> float | None:
        return self._heap[0].due if self._heap else None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes


def ipv4_destination(packet: bytes) -> bytes | None:
    """The destination address of an IPv4 packet (4 bytes), or None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    return packet[16:20]
