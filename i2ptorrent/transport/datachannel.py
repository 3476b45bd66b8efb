"""One ordered, reliable WebRTC data channel (aiortc's RTCDataChannel) used as a ByteStream.

WebTorrent uses its one channel as a plain byte stream; so do we, over an I2P carrier (rtc.py) and
towards a browser (bridge/channel.py). One class, one set of rules for both:

- Writes are cut into CHUNK-byte messages and wait while the channel holds more than HIGH_WATER unsent
  bytes (until aiortc's `bufferedamountlow`), so a fast writer cannot queue without bound.
- Reads come from a buffer. aiortc hands every message up at once, whatever the reader's pace, so the
  owner may pass a `gate`: it is cleared above READ_HIGH (rtc.py then stops reading its carrier, the
  peer's SCTP gets no acknowledgements and its window closes) and set again below READ_LOW. Whatever
  the owner, more than MAX_BUFFERED unread bytes means the peer ignored flow control: it is dropped.
- The listeners go on the channel in the constructor, so build this inside aiortc's own `open` /
  `datachannel` callback: a message that arrives in the same turn of the loop would otherwise be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiortc import RTCDataChannel

log = logging.getLogger(__name__)

CHUNK = 16384
"""Bytes per data-channel message: what WebTorrent peers send, and what every browser accepts."""


class DataChannelStream:
    """A data channel as a ByteStream; `close()` drains what was written, then calls `_release()`."""

    HIGH_WATER = 1024 * 1024
    """Write side: wait while more than this is queued in the channel (simple-peer waits at 64 KiB;
    SCTP's 1 MiB window needs more to stay busy over I2P round trips)."""
    LOW_WATER = 256 * 1024
    READ_HIGH = 2 * 1024 * 1024
    """Read side: close the gate above this; open it again at READ_LOW."""
    READ_LOW = 512 * 1024
    MAX_BUFFERED = 8 * 1024 * 1024
    """Unread bytes at most: a peer that sends more is dropped."""
    DRAIN_TIMEOUT = 5.0

    def __init__(self, channel: RTCDataChannel, remote: str, *, max_message: int = CHUNK,
                 gate: asyncio.Event | None = None, send_before_ack: bool = False) -> None:
        self._channel = channel
        self._send_before_ack = send_before_ack
        """We opened the channel: writes may follow our OPEN before the peer's ACK (RFC 8832 section 6)."""
        self._remote = remote
        self._chunk = min(CHUNK, max_message) if max_message else CHUNK
        self._gate = gate
        self._buf = bytearray()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._ended = asyncio.Event()
        self._eof = False
        self._closed = False
        self.error: str | None = None
        """Why we dropped the peer, if we did."""
        self.bytes_sent = 0
        self.bytes_received = 0
        channel.bufferedAmountLowThreshold = self.LOW_WATER
        channel.on("message", self._on_message)
        channel.on("bufferedamountlow", self._writable.set)
        channel.on("close", self.mark_eof)

    @property
    def remote(self) -> str:
        return self._remote

    @property
    def channel(self) -> RTCDataChannel:
        return self._channel

    async def read(self, n: int = 65536) -> bytes:
        while not self._buf:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        if self._gate is not None and len(self._buf) <= self.READ_LOW:
            self._gate.set()
        return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        channel = self._channel
        for pos in range(0, len(view), self._chunk):
            while True:
                state = channel.readyState
                if self._eof or not (state == "open" or state == "connecting" and self._send_before_ack):
                    raise ConnectionResetError(f"data channel to {self._remote} closed")
                if channel.bufferedAmount <= self.HIGH_WATER:
                    break
                self._writable.clear()
                await self._writable.wait()
            piece = bytes(view[pos:pos + self._chunk])
            if state == "open":
                channel.send(piece)
            else:  # aiortc's send() refuses before the ACK; its queue keeps our OPEN first (aiortc 1.16)
                channel.transport._data_channel_send(channel, piece)
            self.bytes_sent += len(piece)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.mark_eof()
        with contextlib.suppress(Exception):
            await self.drain(self.DRAIN_TIMEOUT)
        await self._release()

    async def _release(self) -> None:
        """What closing frees beyond the channel (a subclass's peer connection)."""

    async def wait_closed(self) -> None:
        """Until either side ended the channel (or we dropped the peer)."""
        await self._ended.wait()

    async def drain(self, timeout: float) -> None:
        """Give queued writes a chance to leave before the association goes (a final `have` or block)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        channel = self._channel
        while (channel.readyState == "open" and channel.bufferedAmount and channel.transport.state == "connected"
               and loop.time() < deadline):
            await asyncio.sleep(0.02)

    def mark_eof(self) -> None:
        """No more reads or writes: the channel or the transport under it ended."""
        self._eof = True
        self._ended.set()
        if self._gate is not None:
            self._gate.set()
        self._readable.set()
        self._writable.set()

    def _on_message(self, message: bytes | str) -> None:
        if self._eof:
            return
        data = message.encode() if isinstance(message, str) else message
        self._buf += data
        self.bytes_received += len(data)
        if len(self._buf) > self.MAX_BUFFERED:
            self.error = f"sent more than {self.MAX_BUFFERED} unread bytes"
            log.warning("peer %s %s: dropped", self._remote, self.error)
            self._buf.clear()
            self.mark_eof()
            with contextlib.suppress(Exception):
                self._channel.close()
            return
        if self._gate is not None and len(self._buf) >= self.READ_HIGH:
            self._gate.clear()
        self._readable.set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._remote}>"
