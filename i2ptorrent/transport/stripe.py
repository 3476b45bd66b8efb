"""DTLS packets striped over several SAM streams to one peer, as data: lane choice, sequencing, reordering.

One I2P stream carries at most its streaming window per round trip (~75 KB over 3-hop tunnels at a
0.7 s round trip: ~0.12 MB/s), while the tunnels under it carry far more. Several streams ("lanes") to
the same peer multiply that window. Each lane is reliable and ordered, but lanes race each other, and
aiortc's SCTP reads reordering as loss (three misses and it halves its window), so every packet gets a
sequence number and the receiver hands packets up strictly in order. Lanes never lose a packet, so a
gap always fills: nothing waits on a timer. A lane that fails takes the whole carrier down (its packets
would leave a gap forever); the lanes share tunnels, so they mostly fail together anyway.

Frame on a lane: the stream carrier's 2-byte length, then a 4-byte sequence number and the packet.
No I/O here; the asyncio adapter is `StripedCarrier` in carrier_io.py.
"""

from __future__ import annotations

import struct

from .carrier import MAX_PACKET, CarrierError, StreamFramer

MAX_LANES = 16
"""Streams per carrier at most: each costs the router a stream and its buffers."""
_SEQ = struct.Struct("!I")
_SEQ_MOD = 1 << 32


STRIPE_BYTES = 4096
"""Bytes a lane carries before the next takes over: about three DTLS packets. A new I2P stream starts with
a window of a few packets, so a new peer's first piece crosses in fewer round trips spread thin over all
lanes than in 16 KiB runs on one or two (3 hops, 50 ms, side by side, 7 runs each: first piece 12.7-14.6 s,
median 13.2, against 13.2-16.7 s, median 14.2, with 16 KiB; throughput no lower)."""


class Striper:
    """Sending side: numbers packets and spreads them over the lanes, `stripe_bytes` to a lane in turn.

    Short runs of packets on one lane keep each lane's writes a few packets large (the router's cost is
    per message); turning after a fixed byte count keeps the lanes evenly loaded, since they share the
    same tunnels.
    """

    def __init__(self, lanes: int, stripe_bytes: int = STRIPE_BYTES) -> None:
        if not 1 <= lanes <= MAX_LANES:
            raise ValueError(f"lanes must be 1..{MAX_LANES}")
        self.lanes = lanes
        self.stripe_bytes = stripe_bytes
        self._seq = 0
        self._lane = 0
        self._used = 0

    def add_lane(self) -> None:
        """One more lane to spread over (a lane whose stream arrived after the carrier started)."""
        if self.lanes >= MAX_LANES:
            raise ValueError(f"at most {MAX_LANES} lanes")
        self.lanes += 1

    def next_lane(self) -> int:
        """The lane the next packet goes to (the caller may still drop it: see `frame`)."""
        if self._used >= self.stripe_bytes:
            self._lane = (self._lane + 1) % self.lanes
            self._used = 0
        return self._lane

    def frame(self, packet: bytes) -> bytes:
        """Number `packet` and frame it for the lane `next_lane` named. Only packets really written get a
        number: a dropped one must not leave a gap the receiver would wait on forever."""
        if not 0 < len(packet) <= MAX_PACKET - _SEQ.size:
            raise ValueError(f"packet of {len(packet)} bytes (striped packets are 1..{MAX_PACKET - _SEQ.size})")
        data = StreamFramer.encode(_SEQ.pack(self._seq) + packet)
        self._seq = (self._seq + 1) % _SEQ_MOD
        self._used += len(data)
        return data


def split_frame(frame: bytes) -> tuple[int, bytes]:
    """(sequence number, packet) of one lane frame (as StreamFramer.next_packet returns it)."""
    if len(frame) <= _SEQ.size:
        raise CarrierError("striped frame without a packet")
    return _SEQ.unpack_from(frame)[0], frame[_SEQ.size:]


class Resequencer:
    """Receiving side: packets from all lanes back into sending order, with a bounded hold for early ones.

    `max_held` bounds what waits for a gap: more than SCTP ever has in flight (we advertise at most a 4 MiB
    window, rtc.MAX_RECEIVE_WINDOW: ~3,600 packets), so only a peer that skips numbers reaches it, and it is
    then refused rather than buffered without end (~10 MB at most).
    """

    def __init__(self, max_held: int = 8192) -> None:
        self.max_held = max_held
        self._next = 0
        self._held: dict[int, bytes] = {}
        self._ready: list[bytes] = []
        self._ready_pos = 0
        self.reordered = 0
        """Packets that arrived before an earlier one (how much the lanes race)."""

    def push(self, seq: int, packet: bytes) -> None:
        ahead = (seq - self._next) % _SEQ_MOD
        if ahead >= _SEQ_MOD // 2 or seq in self._held:
            raise CarrierError(f"packet {seq} arrived twice (lanes never repeat one)")
        if ahead >= self.max_held:
            raise CarrierError(f"packet {seq} is {ahead} ahead of the next expected one")
        if ahead:
            self.reordered += 1
            self._held[seq] = packet
            return
        self._ready.append(packet)
        self._next = (self._next + 1) % _SEQ_MOD
        while self._next in self._held:
            self._ready.append(self._held.pop(self._next))
            self._next = (self._next + 1) % _SEQ_MOD

    def pop(self) -> bytes | None:
        """The next packet in order, or None until the gap before it fills."""
        if self._ready_pos >= len(self._ready):
            return None
        packet = self._ready[self._ready_pos]
        self._ready_pos += 1
        if self._ready_pos >= len(self._ready):
            self._ready.clear()
            self._ready_pos = 0
        return packet

    @property
    def ready(self) -> int:
        """Packets in order waiting to be read."""
        return len(self._ready) - self._ready_pos

    @property
    def held(self) -> int:
        """Packets waiting for an earlier one."""
        return len(self._held)
