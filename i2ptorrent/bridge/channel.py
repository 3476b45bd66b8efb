"""A browser's data channel (aiortc RTCPeerConnection) presented as a ByteStream.

WebTorrent uses its one ordered, reliable channel as a plain byte stream, so this is all the engine (or a
splice to a remote I2P peer) needs. Writes wait while the channel holds more than HIGH_WATER unsent bytes.
aiortc hands every received message up at once, whatever the reader's pace; the browser only sends what
it was asked for, but a peer that sends more than MAX_BUFFERED unread bytes is a bad peer and is dropped,
so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiortc import RTCDataChannel, RTCPeerConnection

log = logging.getLogger(__name__)

CHUNK = 16384
"""Bytes per data-channel message: what WebTorrent sends, and what every browser accepts."""


class ChannelStream:
    """One browser data channel as a ByteStream; closing it closes its peer connection."""

    HIGH_WATER = 1024 * 1024
    LOW_WATER = 256 * 1024
    MAX_BUFFERED = 8 * 1024 * 1024

    def __init__(self, pc: RTCPeerConnection, channel: RTCDataChannel, remote: str) -> None:
        self._pc = pc
        self._channel = channel
        self._remote = remote
        self._buf = bytearray()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._eof = False
        self._ended = asyncio.Event()
        self._closed = False
        self.error: str | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        channel.bufferedAmountLowThreshold = self.LOW_WATER
        channel.on("message", self._on_message)
        channel.on("bufferedamountlow", self._writable.set)
        channel.on("close", self._mark_eof)
        pc.on("connectionstatechange", self._on_state)

    @property
    def remote(self) -> str:
        return self._remote

    async def read(self, n: int = 65536) -> bytes:
        while not self._buf:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        for pos in range(0, len(view), CHUNK):
            while True:
                if self._eof or self._channel.readyState != "open":
                    raise ConnectionResetError("browser channel closed")
                if self._channel.bufferedAmount <= self.HIGH_WATER:
                    break
                self._writable.clear()
                await self._writable.wait()
            piece = bytes(view[pos:pos + CHUNK])
            self._channel.send(piece)
            self.bytes_sent += len(piece)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._mark_eof()
        with contextlib.suppress(Exception):
            await self._drain(timeout=2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pc.close(), 5.0)

    async def wait_closed(self) -> None:
        """Until either side ended the channel."""
        await self._ended.wait()

    async def _drain(self, timeout: float) -> None:
        """Let queued writes leave before the association goes (a final `have` or block)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._channel.readyState == "open" and self._channel.bufferedAmount and loop.time() < deadline:
            await asyncio.sleep(0.02)

    def _on_message(self, message: bytes | str) -> None:
        if self._eof:
            return
        data = message.encode() if isinstance(message, str) else message
        self._buf += data
        self.bytes_received += len(data)
        if len(self._buf) > self.MAX_BUFFERED:
            self.error = f"sent more than {self.MAX_BUFFERED} unread bytes"
            log.warning("browser peer %s %s: dropped", self._remote, self.error)
            self._buf.clear()
            self._mark_eof()
            asyncio.get_running_loop().create_task(self.close())
            return
        self._readable.set()

    def _on_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._mark_eof()

    def _mark_eof(self) -> None:
        self._eof = True
        self._ended.set()
        self._readable.set()
        self._writable.set()

    def __repr__(self) -> str:
        return f"<ChannelStream {self._remote}>"
