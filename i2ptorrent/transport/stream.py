"""The one thing the engine knows about a peer: a reliable byte stream to a destination.

A SAM stream, a WebRTC data channel over a SAM carrier, and a browser's channel through the bridge all
present this interface, so the swarm logic never knows which one carries its bytes.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable


@runtime_checkable
class ByteStream(Protocol):
    """A reliable, ordered byte stream to one peer."""

    @property
    def remote(self) -> str:
        """The peer's address as `<52 chars>.b32.i2p` (or a label for a local bridge peer)."""
        ...

    async def read(self, n: int = 65536) -> bytes:
        """Up to n bytes; b'' once the peer has closed."""
        ...

    async def write(self, data: bytes) -> None:
        """Send all of data, waiting while the transport's buffer is full (backpressure)."""
        ...

    async def close(self) -> None:
        """Close both directions; safe to call twice."""
        ...


class AsyncioByteStream:
    """ByteStream over an asyncio reader/writer pair (SAM streams, loopback sockets)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str) -> None:
        self._reader = reader
        self._writer = writer
        self._remote = remote
        self._closed = False

    @property
    def remote(self) -> str:
        return self._remote

    async def read(self, n: int = 65536) -> bytes:
        try:
            return await self._reader.read(n)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("stream closed")
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class PrefixedStream:
    """A ByteStream whose first bytes were already read (to tell protocols apart): they are replayed first."""

    def __init__(self, stream: ByteStream, head: bytes) -> None:
        self._stream = stream
        self._head = head

    @property
    def remote(self) -> str:
        return self._stream.remote

    async def read(self, n: int = 65536) -> bytes:
        if self._head:
            data, self._head = self._head[:n], self._head[n:]
            return data
        return await self._stream.read(n)

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)

    async def close(self) -> None:
        await self._stream.close()
