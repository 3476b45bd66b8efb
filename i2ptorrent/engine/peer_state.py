"""What the swarm core knows about one peer: its wire, its rates and its clocks. No I/O.

The clocks are the peer's timers, read by the core's `next_deadline()`:
- handshake: no handshake HANDSHAKE_TIMEOUT after the connection was attached -> close;
- idle: nothing received for IDLE_TIMEOUT -> close (a live peer sends keep-alives every 2 minutes);
- keep-alive: nothing sent for KEEPALIVE_INTERVAL -> send one, so the peer does not think us dead;
- snub: requests outstanding and no block for SNUB_TIMEOUT -> ask others for them.
While the adapter waits out the download limit the idle and snub clocks stop: the peer's data was
waiting on us, not the other way round (at a low limit it would look snubbed or dead).
"""

from __future__ import annotations

from collections.abc import Hashable

from ..wire.connection import PeerWire

HANDSHAKE_TIMEOUT = 90.0
IDLE_TIMEOUT = 300.0
KEEPALIVE_INTERVAL = 100.0
SNUB_TIMEOUT = 60.0
DEFAULT_REQQ = 250  # how many requests a peer lets us keep outstanding until it says (BEP 10 `reqq`)

PeerKey = Hashable


class RateMeter:
    """Bytes per second over the last few seconds (exponential decay, time passed in)."""

    def __init__(self, half_life: float = 2.0) -> None:
        self.total = 0
        self._rate = 0.0
        self._pending = 0
        self._last: float | None = None
        self._half_life = half_life

    def add(self, n: int) -> None:
        self.total += n
        self._pending += n

    def update(self, now: float) -> float:
        if self._last is None:
            self._last = now
            return self._rate
        dt = now - self._last
        if dt > 0:
            decay = 0.5 ** (dt / self._half_life)
            self._rate = self._rate * decay + (self._pending / dt) * (1 - decay)
            self._pending = 0
            self._last = now
        return self._rate

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def last_update(self) -> float:
        return self._last if self._last is not None else float("-inf")


class PeerState:
    """One attached peer, as the core sees it."""

    def __init__(self, key: PeerKey, remote: str, outgoing: bool, wire: PeerWire, now: float) -> None:
        self.key = key
        self.remote = remote
        self.outgoing = outgoing
        self.wire = wire
        self.down = RateMeter()  # payload from the peer
        self.up = RateMeter()  # payload to the peer
        self.peer_reqq = DEFAULT_REQQ
        self.bits = 0  # what the peer has, kept even before metadata (then replayed into the picker)
        self.have_all = False
        self.attached_at = now
        self.last_recv_at = now
        self.last_send_at = now
        self.last_block_at = now
        self.throttled_since: float | None = None

    def __repr__(self) -> str:
        return f"<Peer {self.remote[:12]}{' out' if self.outgoing else ' in'}>"

    def reading_paused(self, now: float) -> None:
        if self.throttled_since is None:
            self.throttled_since = now

    def reading_resumed(self, now: float) -> None:
        if self.throttled_since is None:
            return
        waited = now - self.throttled_since
        self.throttled_since = None
        self.last_recv_at = min(now, self.last_recv_at + waited)
        self.last_block_at = min(now, self.last_block_at + waited)

    def deadline(self, requests_outstanding: bool) -> float | None:
        """The earliest of this peer's timers, or None."""
        times = []
        if self.wire.peer_handshake is None:
            times.append(self.attached_at + HANDSHAKE_TIMEOUT)
        if self.throttled_since is None:
            times.append(self.last_recv_at + IDLE_TIMEOUT)
            if requests_outstanding:
                times.append(self.last_block_at + SNUB_TIMEOUT)
        if self.wire.handshake_sent:
            times.append(self.last_send_at + KEEPALIVE_INTERVAL)
        return min(times) if times else None
