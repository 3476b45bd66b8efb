"""A browser's data channel (aiortc RTCPeerConnection) presented as a ByteStream.

The stream itself is transport/datachannel.py's, with the same backpressure as our I2P channels; aiortc's
own ICE transport cannot stop reading, so its bound on unread bytes is what protects us here: the
browser only sends what it was asked for, and one that sends more than MAX_BUFFERED unread bytes is
dropped. Closing the stream closes its peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiortc import RTCDataChannel, RTCPeerConnection

from ..transport.datachannel import DataChannelStream


class ChannelStream(DataChannelStream):
    """One browser data channel as a ByteStream; build it in the `datachannel` callback (see datachannel.py)."""

    DRAIN_TIMEOUT = 2.0

    def __init__(self, pc: RTCPeerConnection, channel: RTCDataChannel, remote: str) -> None:
        super().__init__(channel, remote)
        self._pc = pc
        pc.on("connectionstatechange", self._on_state)

    async def _release(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pc.close(), 5.0)

    def _on_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self.mark_eof()
