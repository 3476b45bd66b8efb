"""Asyncio carriers: move one DTLS packet per call between two peers (thin adapters over carrier.py).

A carrier is what stands in for ICE under aiortc's DTLS: `recv()` gives the next whole packet (raises
ConnectionError once closed), `send(packet)` never waits: like a UDP socket, a full carrier drops the
packet and SCTP retransmits it. Waiting there would deadlock: aiortc sends acknowledgements from the
same task that reads the carrier, so two peers blocked on full send queues would never read again.
Flow control is SCTP's window and the data channel's bufferedAmount, not the carrier.
Packets produced in one event-loop tick are written together (one SAM write or one datagram), which is
what keeps the router's per-message cost down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Protocol

from ..supervisor import wait_at_most
from .carrier import (
    CarrierError,
    DatagramLink,
    Impairment,
    LinkConfig,
    StreamFramer,
    parse_header,
)
from .stream import ByteStream
from .stripe import STRIPE_BYTES, Resequencer, Striper, split_frame

log = logging.getLogger(__name__)


class Carrier(Protocol):
    remote: str

    async def recv(self) -> bytes: ...

    async def send(self, packet: bytes) -> None: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------------------------------
# In memory (unit tests, the benchmark's reference figure)


class MemoryCarrier:
    """One end of an in-process pipe with bounded queues."""

    def __init__(self, inbox: asyncio.Queue[bytes | None], outbox: asyncio.Queue[bytes | None], remote: str) -> None:
        self._inbox, self._outbox = inbox, outbox
        self.remote = remote
        self._closed = False
        self.dropped = 0

    @classmethod
    def pair(cls, max_queue: int = 1024, remotes: tuple[str, str] = ("b", "a")) -> tuple[MemoryCarrier, MemoryCarrier]:
        q1: asyncio.Queue[bytes | None] = asyncio.Queue(max_queue)
        q2: asyncio.Queue[bytes | None] = asyncio.Queue(max_queue)
        return cls(q1, q2, remotes[0]), cls(q2, q1, remotes[1])

    async def recv(self) -> bytes:
        if self._closed:
            raise ConnectionError("carrier closed")
        packet = await self._inbox.get()
        if packet is None:
            self._closed = True
            raise ConnectionError("peer closed the carrier")
        return packet

    async def send(self, packet: bytes) -> None:
        if self._closed:
            raise ConnectionError("carrier closed")
        try:
            self._outbox.put_nowait(packet)
        except asyncio.QueueFull:
            self.dropped += 1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(None)  # wake our own reader


class DelayedCarrier:
    """Wraps a carrier and delivers each received packet `delay` seconds late, order kept (I2P-like RTT)."""

    def __init__(self, inner: Carrier, delay: float, max_queue: int = 4096) -> None:
        self._inner = inner
        self.remote = inner.remote
        self._delay = delay
        self._queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(max_queue)
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                packet = await self._inner.recv()
                await self._queue.put((loop.time() + self._delay, packet))
        except (ConnectionError, asyncio.CancelledError):
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait((loop.time() + self._delay, None))

    async def recv(self) -> bytes:
        due, packet = await self._queue.get()
        wait = due - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
        if packet is None:
            self._queue.put_nowait((0.0, None))
            raise ConnectionError("carrier closed")
        return packet

    async def send(self, packet: bytes) -> None:
        await self._inner.send(packet)

    async def close(self) -> None:
        self._task.cancel()
        await self._inner.close()


# --------------------------------------------------------------------------------------------------
# Over a SAM stream (or any ByteStream)


class StreamCarrier:
    """Length-prefixed DTLS packets over a reliable byte stream, coalesced per event-loop tick."""

    MAX_PENDING = 2 * 1024 * 1024
    """More than SCTP ever has in flight (its window is 1 MiB): reached only if the SAM stream stalls."""

    def __init__(self, stream: ByteStream, initial: bytes = b"") -> None:
        self._stream = stream
        self.remote = stream.remote
        self._framer = StreamFramer()
        self._framer.feed(initial)  # bytes a signaling reader took past its own message
        self._pending = bytearray()
        self._wake = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._writer = asyncio.ensure_future(self._write_loop())
        self.writes = 0  # SAM writes made (for the benchmark)
        self.dropped = 0

    async def _write_loop(self) -> None:
        try:
            while True:
                if not self._pending:
                    if self._closed:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = bytes(self._pending)
                self._pending.clear()
                self.writes += 1
                await self._stream.write(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a write failure closes the carrier; recv/send report it
            self._error = exc
            self._closed = True

    async def send(self, packet: bytes) -> None:
        if self._closed:
            raise ConnectionError("carrier closed") from self._error
        if len(self._pending) >= self.MAX_PENDING:
            self.dropped += 1
            return
        self._pending += StreamFramer.encode(packet)
        self._wake.set()

    async def recv(self) -> bytes:
        while True:
            if self._closed and self._error is not None:
                raise ConnectionError("carrier closed") from self._error
            try:
                packet = self._framer.next_packet()
            except CarrierError as exc:
                await self.close()
                raise ConnectionError(f"bad carrier framing: {exc}") from exc
            if packet is not None:
                return packet
            data = await self._stream.read(65536)
            if not data:
                self._closed = True
                self._wake.set()
                raise ConnectionError("stream closed by peer")
            self._framer.feed(data)

    async def close(self) -> None:
        if self._writer.done():
            await self._stream.close()
            return
        self._closed = True
        self._wake.set()
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
        self._writer.cancel()
        await self._stream.close()


# --------------------------------------------------------------------------------------------------
# Over several SAM streams to one peer


class StripedCarrier:
    """DTLS packets spread over several SAM streams ("lanes") and put back in order (see stripe.py).

    Each lane has its own writer (coalescing per event-loop tick, like StreamCarrier) and its own reader;
    readers stop while `MAX_READY` packets wait for DTLS, so a slow reader still closes SCTP's window.
    Lanes may join after the start (`add_lane`): the side that accepts them starts on the first one to
    arrive instead of waiting for the slowest (a new I2P stream's first packet takes 1-2 s to arrive, and
    the last of 8 lanes arrived up to 1 s after the first at 3 hops).
    """

    MAX_PENDING = 1024 * 1024
    """Per lane, unsent: reached only if that lane's stream stalls (then packets are dropped unnumbered)."""
    MAX_READY = 1024
    lossless = True
    """Every packet sent but those `dropped` arrives: SCTP's timeouts here are stalls (rtc.py)."""

    def __init__(self, lanes: list[tuple[ByteStream, bytes]], stripe_bytes: int = STRIPE_BYTES) -> None:
        if not lanes:
            raise ValueError("a striped carrier needs at least one lane")
        self.remote = lanes[0][0].remote
        self._streams: list[ByteStream] = []
        self._striper = Striper(len(lanes), stripe_bytes)
        self._reseq = Resequencer()
        self._framers: list[StreamFramer] = []
        self._pending: list[bytearray] = []
        self._wake: list[asyncio.Event] = []
        self._writers: list[asyncio.Future[None]] = []
        self._readers: list[asyncio.Future[None]] = []
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        self.writes = 0
        self.dropped = 0
        for stream, initial in lanes:
            self._start_lane(stream, initial)

    def _start_lane(self, stream: ByteStream, initial: bytes) -> None:
        lane = len(self._streams)
        self._streams.append(stream)
        framer = StreamFramer()
        framer.feed(initial)  # bytes a signaling reader took past its own message
        self._framers.append(framer)
        self._pending.append(bytearray())
        self._wake.append(asyncio.Event())
        self._writers.append(asyncio.ensure_future(self._write_loop(lane)))
        self._readers.append(asyncio.ensure_future(self._read_loop(lane)))

    def add_lane(self, stream: ByteStream, initial: bytes = b"") -> bool:
        """Take one more lane from the same peer; False (the caller closes it) once this carrier is closed."""
        if self._closed:
            return False
        if stream.remote != self.remote:
            raise ValueError(f"a lane from {stream.remote} joins a carrier to {self.remote}")
        self._striper.add_lane()
        self._start_lane(stream, initial)
        return True

    @property
    def lanes(self) -> int:
        return len(self._streams)

    @property
    def reordered(self) -> int:
        return self._reseq.reordered

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._closed = True
        self._readable.set()
        self._drained.set()
        for wake in self._wake:
            wake.set()

    async def _write_loop(self, lane: int) -> None:
        pending, wake, stream = self._pending[lane], self._wake[lane], self._streams[lane]
        try:
            while True:
                if not pending:
                    if self._closed:
                        return
                    wake.clear()
                    await wake.wait()
                    continue
                batch = bytes(pending)
                pending.clear()
                self.writes += 1
                await stream.write(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a lost lane leaves a gap that never fills: the carrier is done
            self._fail(ConnectionError(f"lane {lane} write failed: {exc}"))

    async def _read_loop(self, lane: int) -> None:
        framer, stream = self._framers[lane], self._streams[lane]
        try:
            while not self._closed:
                frame = framer.next_packet()
                if frame is not None:
                    seq, packet = split_frame(frame)
                    self._reseq.push(seq, packet)
                    if self._reseq.ready:
                        self._readable.set()
                    continue
                while self._reseq.ready >= self.MAX_READY and not self._closed:
                    self._drained.clear()
                    await self._drained.wait()
                data = await stream.read(65536)
                if not data:
                    self._fail(ConnectionError(f"lane {lane} closed by peer"))
                    return
                framer.feed(data)
        except asyncio.CancelledError:
            raise
        except CarrierError as exc:
            self._fail(ConnectionError(f"bad striped carrier data on lane {lane}: {exc}"))
        except Exception as exc:
            self._fail(ConnectionError(f"lane {lane} read failed: {exc}"))

    async def send(self, packet: bytes) -> None:
        if self._closed:
            raise ConnectionError("carrier closed") from self._error
        lane = self._striper.next_lane()
        if len(self._pending[lane]) >= self.MAX_PENDING:
            self.dropped += 1
            return
        self._pending[lane] += self._striper.frame(packet)
        self._wake[lane].set()

    async def recv(self) -> bytes:
        while True:
            packet = self._reseq.pop()
            if packet is not None:
                if self._reseq.ready < self.MAX_READY // 2:
                    self._drained.set()
                return packet
            if self._closed:
                raise ConnectionError(str(self._error or "carrier closed")) from self._error
            self._readable.clear()
            await self._readable.wait()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            for wake in self._wake:
                wake.set()
            self._drained.set()
            writers = [t for t in self._writers if not t.done()]
            if writers:  # DTLS's close_notify is in there
                with contextlib.suppress(Exception):
                    await asyncio.wait(writers, timeout=2.0)
            self._readable.set()
        tasks = self._writers + self._readers
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(s.close() for s in self._streams), return_exceptions=True)


# --------------------------------------------------------------------------------------------------
# Over SAM datagrams


class DatagramEndpoint(Protocol):
    """What DatagramMux needs of a SAM DatagramSession (or an in-memory stand-in)."""

    def max_payload(self, dest_b64: str) -> int: ...

    async def send(self, dest_b64: str, payload: bytes) -> None: ...

    async def recv(self) -> tuple[str | None, bytes]: ...


class DatagramMux:
    """Shares one datagram session among many carriers, keyed by (sender destination, connection id).

    The sender comes from the router (repliable datagrams are signed), so a carrier only ever gets
    datagrams from the destination its SDP named. Unknown keys are dropped.
    """

    MAX_LINKS = 1024

    def __init__(self, endpoint: DatagramEndpoint) -> None:
        self.endpoint = endpoint
        self._links: dict[tuple[str, bytes], DatagramCarrier] = {}
        self._task: asyncio.Task[None] | None = None
        self._early: dict[bytes, deque[tuple[str, bytes]]] = {}
        self.dropped = 0

    MAX_EXPECTED = 256
    EARLY_PER_CONN = 4
    EARLY_MAX_SIZE = 2048
    """Only handshake-sized datagrams are held early (DTLS flights are <= 782 bytes): <= 2 MB in all."""

    def expect(self, conn_id: bytes) -> None:
        """Hold a few datagrams for conn_id from any sender until `open` names the peer.

        The answerer's first DTLS flight can overtake the answer itself; keeping it saves a 1 s
        DTLS retransmission.
        """
        if conn_id not in self._early and len(self._early) < self.MAX_EXPECTED:
            self._early[conn_id] = deque(maxlen=self.EARLY_PER_CONN)
        self.start()

    def unexpect(self, conn_id: bytes) -> None:
        self._early.pop(conn_id, None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._recv_loop())

    async def _recv_loop(self) -> None:
        while True:
            try:
                sender, payload = await self.endpoint.recv()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("datagram session ended: %s", exc)
                for carrier in list(self._links.values()):
                    carrier._fail(ConnectionError("datagram session closed"))
                return
            if sender is None:
                self.dropped += 1
                continue
            try:
                header = parse_header(payload)
            except CarrierError:
                self.dropped += 1
                continue
            carrier = self._links.get((sender, header.conn_id))
            if carrier is None:
                early = self._early.get(header.conn_id)
                if early is not None and len(payload) <= self.EARLY_MAX_SIZE:
                    early.append((sender, payload))
                else:
                    self.dropped += 1
                continue
            carrier._on_datagram(payload)

    def open(self, peer_dest: str, conn_id: bytes, config: LinkConfig | None = None,
             impairment: Impairment | None = None) -> DatagramCarrier:
        """A carrier to `peer_dest` (full base64) for the session whose token starts with conn_id."""
        key = (peer_dest, conn_id)
        if key in self._links:
            raise ValueError("a carrier for this peer and connection id exists already")
        if len(self._links) >= self.MAX_LINKS:
            raise ConnectionError("too many datagram carriers")
        config = config or LinkConfig()
        config.max_datagram = min(config.max_datagram, self.endpoint.max_payload(peer_dest))
        carrier = DatagramCarrier(self, peer_dest, conn_id, config, impairment)
        self._links[key] = carrier
        for sender, payload in self._early.pop(conn_id, ()):
            if sender == peer_dest:
                carrier._on_datagram(payload)
        self.start()
        return carrier

    def _forget(self, carrier: DatagramCarrier) -> None:
        self._links.pop((carrier.peer_dest, carrier.link.conn_id), None)

    async def close(self) -> None:
        for carrier in list(self._links.values()):
            await carrier.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class DatagramCarrier:
    """One peer over the shared datagram session: the asyncio half of a DatagramLink."""

    def __init__(self, mux: DatagramMux, peer_dest: str, conn_id: bytes, config: LinkConfig,
                 impairment: Impairment | None) -> None:
        from .sam_protocol import b32_address

        self._mux = mux
        self.peer_dest = peer_dest
        try:
            self.remote = b32_address(peer_dest)
        except ValueError:
            self.remote = peer_dest[:60]
        self._loop = asyncio.get_running_loop()
        self.link = DatagramLink(conn_id, config, now=self._loop.time())
        self._impairment = impairment
        self._readable = asyncio.Event()
        self.dropped = 0
        self._wake_sender = asyncio.Event()
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._sender = asyncio.ensure_future(self._send_loop())

    # ---- receive ------------------------------------------------------------------------------

    def _on_datagram(self, payload: bytes) -> None:
        self.link.receive_datagram(payload, self._loop.time())
        if self.link.peer_closed:
            self._fail(ConnectionError("peer closed the carrier"))
            return
        self._arm_timer()
        if self.link.inbox_len:
            self._readable.set()
        if self.link.outbox_len:
            self._wake_sender.set()  # repairs asked for by a NACK

    def _arm_timer(self) -> None:
        deadline = self.link.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.link.on_timer(self._loop.time())
        self._arm_timer()
        if self.link.inbox_len:
            self._readable.set()
        if self.link.outbox_len:
            self._wake_sender.set()  # a NACK to send

    async def recv(self) -> bytes:
        while True:
            packet = self.link.pop_packet()
            if packet is not None:
                return packet
            if self._error is not None:
                raise ConnectionError(str(self._error)) from self._error
            self._readable.clear()
            await self._readable.wait()

    # ---- send ---------------------------------------------------------------------------------

    async def send(self, packet: bytes) -> None:
        if self._error is not None or self.link.closed:
            raise ConnectionError("carrier closed") from self._error
        if not self.link.can_queue():
            self.dropped += 1
            return
        self.link.queue_packet(packet)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.link.flush()
        self._wake_sender.set()

    async def _send_loop(self) -> None:
        try:
            while True:
                now = self._loop.time()
                if self.link.idle_expired(now):
                    self._fail(ConnectionError("peer silent for too long"))
                    return
                datagram, wait = self.link.next_datagram(now)
                if datagram is None:
                    self._wake_sender.clear()
                    await wait_at_most(self._wake_sender.wait(), max(wait, 0.001))
                    continue
                out = self._impairment.apply(datagram) if self._impairment else [datagram]
                for d in out:
                    await self._mux.endpoint.send(self.peer_dest, d)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    # ---- close --------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self.link.closed = True
        self._readable.set()
        self._mux._forget(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self) -> None:
        if self._error is None:
            # flush what DTLS already handed us (its close_notify), then say goodbye
            self.link.flush()
            deadline = self._loop.time() + 1.0
            while self.link.outbox_len and self._loop.time() < deadline and not self._sender.done():
                await asyncio.sleep(0.01)
            bye = self.link.close()
            with contextlib.suppress(Exception):
                await self._mux.endpoint.send(self.peer_dest, bye)
        self._fail(ConnectionError("carrier closed"))
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._sender


__all__ = [
    "Carrier", "MemoryCarrier", "DelayedCarrier", "StreamCarrier", "StripedCarrier", "DatagramMux", "DatagramCarrier",
    "DatagramEndpoint", "MemoryDatagramEndpoint",
]


class MemoryDatagramEndpoint:
    """An in-process stand-in for a repliable DatagramSession (unit tests, benchmarks): bounded, lossy when full."""

    def __init__(self, name: str, network: dict[str, "MemoryDatagramEndpoint"], max_queue: int = 4096,
                 limit: int = 31 * 1024) -> None:
        self.name = name
        self._network = network
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(max_queue)
        self._limit = limit
        self.dropped = 0
        network[name] = self

    @classmethod
    def pair(cls, a: str, b: str) -> tuple["MemoryDatagramEndpoint", "MemoryDatagramEndpoint"]:
        network: dict[str, MemoryDatagramEndpoint] = {}
        return cls(a, network), cls(b, network)

    def max_payload(self, dest_b64: str) -> int:
        return self._limit

    async def send(self, dest_b64: str, payload: bytes) -> None:
        if len(payload) > self._limit:
            raise ValueError("datagram too large")
        peer = self._network.get(dest_b64)
        if peer is None:
            return
        try:
            peer._queue.put_nowait((self.name, payload))
        except asyncio.QueueFull:
            peer.dropped += 1
        await asyncio.sleep(0)

    async def recv(self) -> tuple[str | None, bytes]:
        return await self._queue.get()
