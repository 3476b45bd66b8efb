"""One peer connection: a ByteStream driven by the sans-I/O PeerWire, with three small tasks.

- the reader feeds stream bytes to the wire and hands the resulting events to the swarm (synchronously,
  so bookkeeping never interleaves with another peer's events half-way);
- the writer sends whatever the wire queued, coalesced into one write per wake-up, so a burst of
  requests or haves costs one stream write; the reader never waits for it (two peers blocked writing to
  each other while neither reads would deadlock);
- the uploader answers the peer's block requests in order from the piece store, reading ahead a few
  pieces, and stops queueing when UPLOAD_BUFFER bytes are waiting to be written (bounded memory).

The engine's rate limits (ratelimit.py) pause the uploader before each block and the reader after each
read, so a limit never buffers more than one read or one block.

Every failure of the peer (ProtocolError, EOF, timeout, a storage error on its behalf) ends in close():
the peer is dropped, never the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..transport.stream import ByteStream
from ..wire.connection import PeerWire
from ..wire.errors import LocalProtocolError, ProtocolError
from ..wire.events import BlockRequested, Event
from .storage import StorageError

if TYPE_CHECKING:
    from .ratelimit import RateLimits
    from .storage import PieceStore

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
UPLOAD_BUFFER = 4 * 1024 * 1024  # answered blocks waiting for the stream (x 5 unchoked peers at most)
WRITE_SLICE = 256 * 1024
READ_AHEAD_PIECES = 4
IDLE_TIMEOUT = 300.0  # nothing at all from the peer for this long: drop it (keep-alives come every 2 min)
KEEPALIVE_INTERVAL = 100.0


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


class PeerConnection:
    """A connected, handshaking or handshaken peer of one torrent."""

    def __init__(self, stream: ByteStream, wire: PeerWire, on_events: Callable[["PeerConnection", list[Event]], None],
                 on_closed: Callable[["PeerConnection", str], None], outgoing: bool,
                 limits: "RateLimits | None" = None) -> None:
        self.stream = stream
        self.limits = limits
        self.wire = wire
        self.remote = stream.remote
        self.outgoing = outgoing
        self._on_events = on_events
        self._on_closed = on_closed
        self.store: PieceStore | None = None  # set by the swarm once the torrent has metadata
        self.down = RateMeter()  # payload from the peer
        self.up = RateMeter()  # payload to the peer
        self.peer_reqq = 250  # how many requests the peer lets us keep outstanding (BEP 10 `reqq`)
        self.bits = 0  # what the peer has, kept even before metadata (then replayed into the picker)
        self.have_all = False
        self.last_block_at = time.monotonic()
        self.last_recv_at = time.monotonic()
        self.throttled = False  # the reader is waiting out the download limit
        self._last_send_at = time.monotonic()
        self.closed = False
        self.close_reason = ""
        self._send_wakeup = asyncio.Event()
        self._uploads: deque[BlockRequested] = deque()
        self._upload_wakeup = asyncio.Event()
        self._queued_upload = 0  # bytes of blocks handed to the wire and not yet written
        self._written = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<Peer {self.remote[:12]}{' out' if self.outgoing else ' in'}>"

    def start(self, initial: bytes = b"") -> None:
        """Start the tasks; `initial` are bytes already read from the stream (the routed handshake)."""
        self._tasks = [asyncio.create_task(self._reader(initial), name=f"peer-read {self.remote[:12]}"),
                       asyncio.create_task(self._writer(), name=f"peer-write {self.remote[:12]}"),
                       asyncio.create_task(self._uploader(), name=f"peer-up {self.remote[:12]}")]

    # -- sending -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Something was queued on the wire: have the writer send it."""
        self._send_wakeup.set()

    async def _writer(self) -> None:
        try:
            while True:
                await self._send_wakeup.wait()
                self._send_wakeup.clear()
                data = self.wire.data_to_send()
                # in slices, so the uploader refills while the rest drains: no bubble in the stream
                for off in range(0, len(data), WRITE_SLICE):
                    piece = data[off:off + WRITE_SLICE]
                    await self.stream.write(piece)
                    self._last_send_at = time.monotonic()
                    self._queued_upload = max(0, self._queued_upload - len(piece))
                    self._written.set()
        except (ConnectionError, OSError) as e:
            self.close(f"write failed: {e}")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must cost this peer only
            log.exception("peer writer failed")
            self.close(f"writer error: {e}")

    # -- receiving -----------------------------------------------------------------------------

    async def _reader(self, initial: bytes) -> None:
        try:
            data = initial
            while True:
                if data:
                    self.last_recv_at = time.monotonic()
                    try:
                        events = self.wire.receive_data(data)
                    except ProtocolError as e:
                        if e.events:
                            self._on_events(self, e.events)
                        self.close(f"protocol error: {e}")
                        return
                    if events:
                        self._on_events(self, events)
                        if self.closed:
                            return
                    self.flush()
                    if self.limits is not None:
                        await self._throttle_reading(len(data))
                data = await self.stream.read(self.limits.download.chunk(READ_SIZE) if self.limits else READ_SIZE)
                if not data:
                    self.close("closed by peer")
                    return
        except (ConnectionError, OSError) as e:
            self.close(f"read failed: {e}")
        except asyncio.CancelledError:
            raise
        except LocalProtocolError as e:
            log.exception("local protocol misuse with %s", self)
            self.close(f"local error: {e}")
        except Exception as e:
            log.exception("peer reader failed")
            self.close(f"reader error: {e}")

    async def _throttle_reading(self, n: int) -> None:
        """Wait out the download limit. The idle and snub clocks skip that time: the peer's data was
        waiting on us, not the other way round (at a low limit it would look snubbed or dead)."""
        assert self.limits is not None
        started = time.monotonic()
        self.throttled = True
        try:
            await self.limits.download.acquire(n)
        finally:
            self.throttled = False
        now = time.monotonic()
        self.last_recv_at = min(now, self.last_recv_at + now - started)
        self.last_block_at = min(now, self.last_block_at + now - started)  # the swarm may have reset it meanwhile

    # -- uploading -----------------------------------------------------------------------------

    def queue_upload(self, req: BlockRequested) -> None:
        self._uploads.append(req)
        self._upload_wakeup.set()

    async def _uploader(self) -> None:
        try:
            while True:
                if not self._uploads:
                    self._upload_wakeup.clear()
                    await self._upload_wakeup.wait()
                    continue
                store = self.store
                if store is None:
                    self._uploads.clear()
                    continue
                self._read_ahead(store)
                req = self._uploads.popleft()
                if (req.index, req.begin, req.length) not in self.wire.peer_requests:
                    continue  # cancelled or voided by a choke meanwhile
                data = await store.read_block(req.index, req.begin, req.length)
                if self.closed:
                    return
                if self.limits is not None and len(data) == req.length:
                    await self.limits.upload.acquire(len(data))
                    if self.closed:
                        return
                if len(data) == req.length and self.wire.send_piece(req.index, req.begin, data):
                    self.up.add(len(data))
                    self._queued_upload += len(data) + 13
                    self.flush()
                while self._queued_upload > UPLOAD_BUFFER and not self.closed:
                    self._written.clear()
                    await self._written.wait()
        except StorageError as e:
            self.close(f"storage: {e}")
        except LocalProtocolError as e:
            self.close(f"local error: {e}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("peer uploader failed")
            self.close(f"uploader error: {e}")

    def _read_ahead(self, store: "PieceStore") -> None:
        seen: set[int] = set()
        for req in self._uploads:
            if req.index not in seen:
                seen.add(req.index)
                store.prefetch(req.index)
                if len(seen) >= READ_AHEAD_PIECES:
                    break

    # -- timers, closing -----------------------------------------------------------------------

    def tick(self, now_mono: float) -> None:
        if now_mono - self.last_recv_at > IDLE_TIMEOUT and not self.throttled:
            self.close("idle timeout")
            return
        if now_mono - self._last_send_at > KEEPALIVE_INTERVAL and self.wire.handshake_sent:
            self._last_send_at = now_mono
            self.wire.send_keepalive()
            self.flush()

    def close(self, reason: str) -> None:
        """Drop the peer (idempotent); tasks are cancelled and the stream closed in the background."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        log.debug("%s closed: %s", self, reason)
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current:
                t.cancel()
        self._written.set()
        self._on_closed(self, reason)
        asyncio.get_running_loop().create_task(self._close_stream())

    async def _close_stream(self) -> None:
        try:
            await asyncio.wait_for(self.stream.close(), 10)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
