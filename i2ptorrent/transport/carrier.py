"""How DTLS packets cross I2P between two peers, as data: framing, sequencing, batching, pacing. No I/O.

aiortc's DTLS wants one whole DTLS packet per receive call, and its SCTP reads any reordering as loss
(its congestion window collapses). So:

- over a SAM stream (reliable, ordered) a packet only needs a 2-byte length prefix (`StreamFramer`);
- over SAM datagrams (lossy, reorderable, duplicable) `DatagramLink` numbers each datagram, holds early
  arrivals in a bounded reorder buffer until the gap fills or a short timeout passes, drops duplicates,
  packs several DTLS packets into one datagram (fewer, larger I2P messages), and paces what it sends
  with a token bucket so the router's UDP socket does not overflow. Loss it leaves to SCTP.

Time is always passed in (seconds, any monotonic origin); the asyncio adapters live in carrier_io.py.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from i2ptorrent.bucket import TokenBucket

MAX_PACKET = 2048
"""aiortc's DTLS never reads or writes more than 1500 bytes in one packet; leave room, refuse more."""


class CarrierError(ValueError):
    """The peer sent carrier bytes we cannot accept; the connection is dropped."""


# --------------------------------------------------------------------------------------------------
# Stream framing


class StreamFramer:
    """Length-prefixed packets over a byte stream, with a bounded receive buffer."""

    def __init__(self, max_buffer: int = 256 * 1024) -> None:
        self._buf = bytearray()
        self._max_buffer = max_buffer

    @staticmethod
    def encode(packet: bytes) -> bytes:
        if not 0 < len(packet) <= MAX_PACKET:
            raise ValueError(f"packet of {len(packet)} bytes (carrier packets are 1..{MAX_PACKET})")
        return struct.pack("!H", len(packet)) + packet

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def wants_data(self) -> bool:
        """False while a full buffer waits to be drained; the reader then stops reading (backpressure)."""
        return len(self._buf) < self._max_buffer

    def feed(self, data: bytes) -> None:
        if len(self._buf) + len(data) > self._max_buffer + 65536:
            raise CarrierError("stream carrier receive buffer overflow")
        self._buf += data

    def next_packet(self) -> bytes | None:
        """The next whole packet, or None until more bytes arrive."""
        if len(self._buf) < 2:
            return None
        size = struct.unpack_from("!H", self._buf)[0]
        if not 0 < size <= MAX_PACKET:
            raise CarrierError(f"bad frame length {size} (allowed 1..{MAX_PACKET})")
        if len(self._buf) < 2 + size:
            return None
        packet = bytes(self._buf[2 : 2 + size])
        del self._buf[: 2 + size]
        return packet


# --------------------------------------------------------------------------------------------------
# Datagram link

DGRAM_VERSION = 1
TYPE_DATA = 1
TYPE_PING = 2
TYPE_CLOSE = 3
TYPE_NACK = 4
_HEADER = struct.Struct("!BB8sI")  # version, type, connection id, sequence number
HEADER_SIZE = _HEADER.size  # 14
_SEQ_MOD = 1 << 32
MAX_NACK = 256
"""Sequence numbers per NACK datagram (4 bytes each)."""


@dataclass(frozen=True)
class DatagramHeader:
    type: int
    conn_id: bytes
    seq: int


def parse_header(datagram: bytes) -> DatagramHeader:
    """Header of a carrier datagram; raises CarrierError for anything else (the mux drops it)."""
    if len(datagram) < HEADER_SIZE:
        raise CarrierError(f"datagram too short ({len(datagram)} bytes)")
    version, kind, conn_id, seq = _HEADER.unpack_from(datagram)
    if version != DGRAM_VERSION:
        raise CarrierError(f"unknown carrier version {version}")
    if kind not in (TYPE_DATA, TYPE_PING, TYPE_CLOSE, TYPE_NACK):
        raise CarrierError(f"unknown datagram type {kind}")
    return DatagramHeader(kind, conn_id, seq)


def split_records(body: bytes) -> list[bytes]:
    """The DTLS packets batched in one datagram body (each with a 2-byte length)."""
    out: list[bytes] = []
    pos = 0
    while pos < len(body):
        if pos + 2 > len(body):
            raise CarrierError("truncated record length")
        size = struct.unpack_from("!H", body, pos)[0]
        pos += 2
        if not 0 < size <= MAX_PACKET or pos + size > len(body):
            raise CarrierError(f"bad record length {size}")
        out.append(body[pos : pos + size])
        pos += size
    return out


def _seq_list(body: bytes) -> list[int]:
    if len(body) % 4 or len(body) > 4 * MAX_NACK:
        raise CarrierError("bad NACK body")
    return [int.from_bytes(body[i : i + 4], "big") for i in range(0, len(body), 4)]


@dataclass
class LinkConfig:
    max_datagram: int = 30000
    """Batch up to this many bytes per datagram (header included; the mux caps it at the SAM max_payload).
    i2pd's cost is per datagram: on a 0-hop i2pd 2.45, 30 KB datagrams kept up at 4 MB/s where 16 KB
    ones queued for 200+ ms inside the router at 3.5 MB/s."""
    rate: float = 4_000_000.0
    """Pacing rate in bytes per second (i2pd drops or queues unpaced bursts)."""
    burst: int = 65536
    """Token bucket depth in bytes: how much may leave back to back after an idle period."""
    reorder_window: int = 128
    """Datagrams held while waiting for a gap; an arrival further ahead counts the gap as lost.
    SCTP's 1 MiB window is ~35 full datagrams in flight, so 128 leaves room and bounds a hostile peer
    to 128 x max_datagram (~3.8 MB) held for at most reorder_timeout."""
    reorder_timeout: float = 0.5
    """How long an early datagram waits for a missing one (and its repair) before the gap is given up, at
    least; never less than `reorder_rtts` round trips, since a repair needs one."""
    nack_delay: float = 0.02
    """A gap this old is not reordering any more: ask the sender to repeat the missing datagrams."""
    nack_interval: float = 0.15
    """Ask again this often while the gap stays open, at least; never sooner than `nack_rtts` round trips
    (asking again before the repair could be back only sends the same datagram twice)."""
    initial_rtt: float = 1.0
    """The round trip assumed until a repair measures it. A 3-hop I2P round trip is 1-3 s: with the 0-hop
    figures above, every repair came too late, the gap was given up, and SCTP's window collapsed to its
    floor for the rest of the transfer (0.4x a raw stream at 3 hops)."""
    reorder_rtts: float = 3.0
    nack_rtts: float = 1.2
    max_rtt: float = 5.0
    """A measured round trip is capped here, so a peer cannot make us hold datagrams for long."""
    retain_bytes: int = 1536 * 1024
    """Sent datagrams kept for repair (about SCTP's 1 MiB window plus batching slack)."""
    max_outbox: int = 128
    """Sealed datagrams waiting for pacing; when full, new packets are dropped like a full UDP queue."""
    max_inbox: int = 1024
    """Received packets waiting for DTLS to read them; beyond this they are dropped (SCTP retransmits)."""
    ping_interval: float = 15.0
    idle_timeout: float = 90.0


@dataclass
class LinkStats:
    sent_datagrams: int = 0
    sent_packets: int = 0
    repaired: int = 0
    nacks_sent: int = 0
    received_datagrams: int = 0
    delivered_packets: int = 0
    duplicates: int = 0
    reordered: int = 0
    gaps_skipped: int = 0
    inbox_dropped: int = 0
    malformed: int = 0


class DatagramLink:
    """One carrier association over datagrams: both directions, sans-I/O.

    Sending: `queue_packet` -> (end of tick) `flush` -> `next_datagram(now)` gives paced datagrams.
    Receiving: `receive_datagram(data, now)` -> `pop_packet()` in order; `on_timer(now)` at `next_deadline()`.
    A gap older than `nack_delay` is NACKed and the sender repeats those datagrams from a bounded store,
    so SCTP mostly sees a short delay instead of a loss (its reaction to loss, a 1 s RTO and a collapsed
    window, is what makes lossy links crawl). A gap still open after the reorder timeout is given up. Both
    the timeout and the NACK repeat follow the round trip that repairs measure (I2P: 1-3 s).
    """

    def __init__(self, conn_id: bytes, config: LinkConfig | None = None, now: float = 0.0) -> None:
        if len(conn_id) != 8:
            raise ValueError("conn_id must be 8 bytes")
        self.conn_id = conn_id
        self.config = config or LinkConfig()
        if self.config.max_datagram < HEADER_SIZE + 2 + MAX_PACKET:
            raise ValueError(f"max_datagram must be at least {HEADER_SIZE + 2 + MAX_PACKET}")
        self.stats = LinkStats()
        self.closed = False
        self.peer_closed = False
        # send side
        self._tx_seq = 0
        self._batch: list[bytes] = []
        self._batch_size = HEADER_SIZE
        self._outbox: deque[bytes] = deque()
        self._urgent: deque[bytes] = deque()  # NACKs and repairs go first
        self._retained: dict[int, bytes] = {}  # insertion order = send order
        self._retained_bytes = 0
        self._pacer = TokenBucket(self.config.rate, self.config.burst, now)
        self._last_sent = now
        # receive side
        self._rx_next = 0
        self._held: dict[int, tuple[float, list[bytes]]] = {}
        self._missing: dict[int, list[float]] = {}  # seq -> [first noticed, last NACKed, first NACKed]
        self.rtt = self.config.initial_rtt
        """Round-trip estimate from NACK to repair: rises at once with a slower sample, falls slowly."""
        self._inbox: deque[bytes] = deque()
        self._last_heard = now

    # ---- send ---------------------------------------------------------------------------------

    def can_queue(self) -> bool:
        return not self.closed and len(self._outbox) < self.config.max_outbox

    def queue_packet(self, packet: bytes) -> None:
        """Add one DTLS packet to the current batch (sealed when full or at `flush`)."""
        if self.closed:
            raise ConnectionError("carrier closed")
        if not 0 < len(packet) <= MAX_PACKET:
            raise ValueError(f"packet of {len(packet)} bytes (carrier packets are 1..{MAX_PACKET})")
        if self._batch_size + 2 + len(packet) > self.config.max_datagram:
            self.flush()
        self._batch.append(struct.pack("!H", len(packet)) + packet)
        self._batch_size += 2 + len(packet)
        self.stats.sent_packets += 1

    def flush(self) -> None:
        """Seal the current batch into a datagram (call once per event-loop tick)."""
        if not self._batch:
            return
        seq = self._tx_seq
        self._tx_seq = (self._tx_seq + 1) % _SEQ_MOD
        datagram = _HEADER.pack(DGRAM_VERSION, TYPE_DATA, self.conn_id, seq) + b"".join(self._batch)
        self._batch = []
        self._batch_size = HEADER_SIZE
        self._outbox.append(datagram)
        self._retained[seq] = datagram
        self._retained_bytes += len(datagram)
        while self._retained_bytes > self.config.retain_bytes:
            old = self._retained.pop(next(iter(self._retained)))
            self._retained_bytes -= len(old)

    def close(self) -> bytes:
        """Mark closed; returns a CLOSE datagram to send (best effort) to the peer."""
        self.closed = True
        self._batch = []
        return _HEADER.pack(DGRAM_VERSION, TYPE_CLOSE, self.conn_id, self._tx_seq)

    def next_datagram(self, now: float) -> tuple[bytes | None, float]:
        """(datagram to send now, 0) or (None, seconds to wait): the pacing decision."""
        queue = self._urgent if self._urgent else self._outbox
        if not queue:
            if now - self._last_sent >= self.config.ping_interval and not self.closed:
                self._last_sent = now
                return _HEADER.pack(DGRAM_VERSION, TYPE_PING, self.conn_id, self._tx_seq), 0.0
            return None, max(0.0, self.config.ping_interval - (now - self._last_sent))
        size = len(queue[0])
        if not self._pacer.take(now, size):
            return None, self._pacer.wait(size, now)
        self._last_sent = now
        self.stats.sent_datagrams += 1
        return queue.popleft(), 0.0

    @property
    def outbox_len(self) -> int:
        return len(self._outbox) + len(self._urgent)

    def _on_nack(self, seqs: list[int]) -> None:
        for seq in seqs:
            datagram = self._retained.get(seq)
            if datagram is not None and len(self._urgent) < self.config.max_outbox:
                self._urgent.append(datagram)
                self.stats.repaired += 1

    # ---- receive ------------------------------------------------------------------------------

    def receive_datagram(self, datagram: bytes, now: float) -> None:
        """Take one datagram addressed to this link (the mux checked sender and conn id)."""
        try:
            header = parse_header(datagram)
            body = datagram[HEADER_SIZE:]
            records = split_records(body) if header.type == TYPE_DATA else []
            nacked = _seq_list(body) if header.type == TYPE_NACK else []
        except CarrierError:
            self.stats.malformed += 1
            return
        if header.conn_id != self.conn_id:
            self.stats.malformed += 1
            return
        self._last_heard = now
        self.stats.received_datagrams += 1
        if header.type == TYPE_CLOSE:
            self.peer_closed = True
            return
        if header.type == TYPE_NACK:
            self._on_nack(nacked)
            return
        if header.type == TYPE_PING:
            return
        ahead = (header.seq - self._rx_next) % _SEQ_MOD
        if ahead >= _SEQ_MOD // 2 or header.seq in self._held:
            self.stats.duplicates += 1
            return
        gap = self._missing.pop(header.seq, None)
        if gap is not None and gap[2] >= 0:
            self._rtt_sample(now - gap[2])
        if ahead == 0:
            self._deliver(records)
            self._rx_next = (self._rx_next + 1) % _SEQ_MOD
            self._release_consecutive()
            return
        self.stats.reordered += 1
        self._held[header.seq] = (now, records)
        if ahead >= self.config.reorder_window:
            # too far ahead: the gap is lost; move the window so that this datagram is its last slot
            self._skip_to((header.seq - self.config.reorder_window + 1) % _SEQ_MOD)
            ahead = (header.seq - self._rx_next) % _SEQ_MOD
        for i in range(ahead):
            seq = (self._rx_next + i) % _SEQ_MOD
            if seq not in self._held and seq not in self._missing:
                self._missing[seq] = [now, -1.0, -1.0]

    def _rtt_sample(self, sample: float) -> None:
        """A gap filled `sample` s after its first NACK: the repair's round trip, or less when the original
        was only late (hence the slow fall)."""
        sample = min(sample, self.config.max_rtt)
        self.rtt = sample if sample > self.rtt else 0.875 * self.rtt + 0.125 * sample

    def _reorder_timeout(self) -> float:
        return max(self.config.reorder_timeout, self.config.reorder_rtts * self.rtt)

    def _nack_interval(self) -> float:
        return max(self.config.nack_interval, self.config.nack_rtts * self.rtt)

    def _deliver(self, records: list[bytes]) -> None:
        for record in records:
            if len(self._inbox) >= self.config.max_inbox:
                self.stats.inbox_dropped += 1
                continue
            self._inbox.append(record)
            self.stats.delivered_packets += 1

    def _release_consecutive(self) -> None:
        while self._rx_next in self._held:
            _, records = self._held.pop(self._rx_next)
            self._deliver(records)
            self._rx_next = (self._rx_next + 1) % _SEQ_MOD

    def _skip_to(self, seq: int) -> None:
        """Give up on everything before `seq`: deliver what is held there in order, count the rest lost."""
        while (seq - self._rx_next) % _SEQ_MOD and (seq - self._rx_next) % _SEQ_MOD < _SEQ_MOD // 2:
            held = self._held.pop(self._rx_next, None)
            if held is None:
                self.stats.gaps_skipped += 1
                self._missing.pop(self._rx_next, None)
            else:
                self._deliver(held[1])
            self._rx_next = (self._rx_next + 1) % _SEQ_MOD
        self._release_consecutive()

    def on_timer(self, now: float) -> None:
        """Give up gaps older than the reorder timeout; NACK the ones old enough to be losses."""
        timeout, interval = self._reorder_timeout(), self._nack_interval()
        while self._held:
            oldest_seq = min(self._held, key=lambda s: (s - self._rx_next) % _SEQ_MOD)
            arrived, _ = self._held[oldest_seq]
            if now - arrived < timeout:
                break
            self._skip_to(oldest_seq)
        due = [seq for seq, (first, last, _) in self._missing.items()
               if now - first >= self.config.nack_delay and (last < 0 or now - last >= interval)]
        for i in range(0, len(due), MAX_NACK):
            part = due[i : i + MAX_NACK]
            for seq in part:
                gap = self._missing[seq]
                gap[1] = now
                if gap[2] < 0:
                    gap[2] = now
            body = b"".join(seq.to_bytes(4, "big") for seq in part)
            if len(self._urgent) < self.config.max_outbox:
                self._urgent.append(_HEADER.pack(DGRAM_VERSION, TYPE_NACK, self.conn_id, 0) + body)
                self.stats.nacks_sent += 1

    def next_deadline(self) -> float | None:
        """When on_timer must run next (absolute time), or None if nothing is waiting."""
        timeout, interval = self._reorder_timeout(), self._nack_interval()
        times = [arrived + timeout for arrived, _ in self._held.values()]
        times += [first + self.config.nack_delay if last < 0 else last + interval
                  for first, last, _ in self._missing.values()]
        return min(times) if times else None

    def idle_expired(self, now: float) -> bool:
        return now - self._last_heard > self.config.idle_timeout

    def pop_packet(self) -> bytes | None:
        return self._inbox.popleft() if self._inbox else None

    @property
    def inbox_len(self) -> int:
        return len(self._inbox)


# --------------------------------------------------------------------------------------------------
# Fault injection (tests and benchmarks): loss, duplication and reordering at the carrier boundary


class Impairment:
    """Decides the fate of each outgoing datagram: dropped, doubled, or swapped with the next one."""

    def __init__(self, loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0, seed: int = 1) -> None:
        import random

        self._rng = random.Random(seed)
        self.loss, self.duplicate, self.reorder = loss, duplicate, reorder
        self._held: bytes | None = None
        self.dropped = self.doubled = self.swapped = 0

    def apply(self, datagram: bytes) -> list[bytes]:
        """The datagrams to send now, in order, in place of `datagram`."""
        out: list[bytes] = []
        r = self._rng.random()
        if r < self.loss:
            self.dropped += 1
        elif r < self.loss + self.duplicate:
            self.doubled += 1
            out += [datagram, datagram]
        elif r < self.loss + self.duplicate + self.reorder and self._held is None:
            self.swapped += 1
            self._held = datagram
            return out
        else:
            out.append(datagram)
        if self._held is not None:
            out.append(self._held)
            self._held = None
        return out

    def release(self) -> list[bytes]:
        """The datagram held back for a swap, if any (at the end of a run)."""
        held, self._held = self._held, None
        return [held] if held is not None else []
