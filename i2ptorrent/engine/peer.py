"""One peer's stream, driven for the swarm core by three small tasks (the I/O half of a peer).

- the reader hands stream bytes to the swarm (synchronously, so bookkeeping never interleaves with
  another peer's events half-way), then waits out the download limit before reading again;
- the writer sends whatever the core queued, in WRITE_SLICE slices, so the uploader refills while the rest
  drains; the reader never waits for it (two peers blocked writing to each other while neither reads
  would deadlock);
- the uploader answers the peer's block requests in order from the piece store, reading ahead a few
  pieces, and stops while UPLOAD_BUFFER bytes are waiting to be written (bounded memory).

The wire, the timers and every decision are the core's (swarm.py); this class holds no protocol state.
Every failure of the stream (EOF, an error, a storage error on the peer's behalf) is reported to the
swarm with `host.lost(...)`: the peer is dropped, never the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..transport.stream import ByteStream
from .actions import ServeBlock
from .storage import StorageError

if TYPE_CHECKING:
    from .ratelimit import RateLimits
    from .storage import PieceStore

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
UPLOAD_BUFFER = 4 * 1024 * 1024  # bytes waiting for the stream before the uploader pauses
WRITE_SLICE = 256 * 1024
READ_AHEAD_PIECES = 4
CLOSE_TIMEOUT = 10.0


class PeerHost(Protocol):
    """What a PeerConnection reports to (the swarm adapter, which passes it on to the core)."""

    def received(self, peer: "PeerConnection", data: bytes) -> None: ...

    def lost(self, peer: "PeerConnection", reason: str) -> None: ...

    def reading_paused(self, peer: "PeerConnection") -> None: ...

    def reading_resumed(self, peer: "PeerConnection") -> None: ...

    def upload_wanted(self, peer: "PeerConnection", req: ServeBlock) -> bool: ...

    def block_read(self, peer: "PeerConnection", req: ServeBlock, data: bytes) -> None: ...


class PeerConnection:
    """The stream of one attached peer and its tasks."""

    def __init__(self, stream: ByteStream, host: PeerHost, outgoing: bool,
                 store: Callable[[], "PieceStore | None"], limits: "RateLimits | None" = None) -> None:
        self.stream = stream
        self.remote = stream.remote
        self.outgoing = outgoing
        self._host = host
        self._store = store
        self.limits = limits
        self.closed = False
        self.close_reason = ""
        self._out = bytearray()
        self._send_wakeup = asyncio.Event()
        self._written = asyncio.Event()
        self._uploads: deque[ServeBlock] = deque()
        self._upload_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<Peer {self.remote[:12]}{' out' if self.outgoing else ' in'}>"

    def start(self, initial: bytes = b"") -> None:
        """Start the tasks; `initial` are bytes already read from the stream (the routed handshake)."""
        self._tasks = [asyncio.create_task(self._reader(initial), name=f"peer-read {self.remote[:12]}"),
                       asyncio.create_task(self._writer(), name=f"peer-write {self.remote[:12]}"),
                       asyncio.create_task(self._uploader(), name=f"peer-up {self.remote[:12]}")]

    # -- sending -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue bytes for the stream (never waits; the uploader is what keeps this bounded)."""
        if not self.closed:
            self._out += data
            self._send_wakeup.set()

    @property
    def unsent(self) -> int:
        return len(self._out)

    async def _writer(self) -> None:
        try:
            while True:
                await self._send_wakeup.wait()
                self._send_wakeup.clear()
                while self._out:
                    chunk = bytes(self._out[:WRITE_SLICE])
                    del self._out[:WRITE_SLICE]
                    await self.stream.write(chunk)
                    self._written.set()
        except (ConnectionError, OSError) as e:
            self._host.lost(self, f"write failed: {e}")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must cost this peer only
            log.exception("peer writer failed")
            self._host.lost(self, f"writer error: {e}")

    # -- receiving -----------------------------------------------------------------------------

    async def _reader(self, initial: bytes) -> None:
        limits = self.limits
        try:
            data = initial
            while True:
                if data:
                    self._host.received(self, data)
                    if self.closed:
                        return
                    if limits is not None:
                        self._host.reading_paused(self)
                        try:
                            await limits.acquire_download(len(data))
                        finally:
                            self._host.reading_resumed(self)
                data = await self.stream.read(limits.download_chunk(READ_SIZE) if limits else READ_SIZE)
                if not data:
                    self._host.lost(self, "closed by peer")
                    return
        except (ConnectionError, OSError) as e:
            self._host.lost(self, f"read failed: {e}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("peer reader failed")
            self._host.lost(self, f"reader error: {e}")

    # -- uploading -----------------------------------------------------------------------------

    def queue_upload(self, req: ServeBlock) -> None:
        self._uploads.append(req)
        self._upload_wakeup.set()

    async def _uploader(self) -> None:
        try:
            while True:
                if not self._uploads:
                    self._upload_wakeup.clear()
                    await self._upload_wakeup.wait()
                    continue
                store = self._store()
                if store is None:
                    self._uploads.clear()
                    continue
                self._read_ahead(store)
                req = self._uploads.popleft()
                if not self._host.upload_wanted(self, req):
                    continue  # cancelled or voided by a choke meanwhile
                data = await store.read_block(req.index, req.begin, req.length)
                if self.closed:
                    return
                if len(data) != req.length:
                    continue
                if self.limits is not None:
                    await self.limits.acquire_upload(len(data))
                    if self.closed:
                        return
                self._host.block_read(self, req, data)
                while len(self._out) > UPLOAD_BUFFER and not self.closed:
                    self._written.clear()
                    await self._written.wait()
        except StorageError as e:
            self._host.lost(self, f"storage: {e}")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("peer uploader failed")
            self._host.lost(self, f"uploader error: {e}")

    def _read_ahead(self, store: "PieceStore") -> None:
        seen: set[int] = set()
        for req in self._uploads:
            if req.index not in seen:
                seen.add(req.index)
                store.prefetch(req.index)
                if len(seen) >= READ_AHEAD_PIECES:
                    break

    # -- closing -------------------------------------------------------------------------------

    def close(self, reason: str) -> "asyncio.Task[None] | None":
        """Stop the tasks and close the stream in the background (idempotent): the task closing it, the
        first time, for the swarm to hold (the loop keeps only weak references to tasks). Only the swarm
        calls this, once the core has dropped the peer."""
        if self.closed:
            return None
        self.closed = True
        self.close_reason = reason
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current:
                t.cancel()
        self._written.set()
        self._out.clear()
        task = asyncio.get_running_loop().create_task(self._close_stream(), name=f"closing {self.remote[:12]}")
        task.add_done_callback(_log_failure)
        return task

    async def _close_stream(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError, OSError):
            await asyncio.wait_for(self.stream.close(), CLOSE_TIMEOUT)


def _log_failure(task: "asyncio.Task[object]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
