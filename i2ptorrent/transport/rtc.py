"""A WebRTC data channel over an I2P carrier, with no ICE at all, presented as a ByteStream.

aiortc's ORTC objects are used directly: RTCDtlsTransport over a stand-in for its ICE transport (it uses
only `.role`, `_recv()` and `_send()`), RTCSctpTransport over DTLS, one ordered reliable RTCDataChannel
over SCTP. Nothing here opens a socket; the carrier is the only way bytes leave.

The channel is a DataChannelStream (datachannel.py: backpressure both ways); here it gets the gate
that stops reading the carrier while its read buffer is full, so the peer's SCTP stops getting
acknowledgements and its window closes (aiortc's SCTP would otherwise re-open the window as soon as a
message is handed up, however slowly the application reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence

from aiortc import (
    RTCCertificate,
    RTCDataChannel,
    RTCDataChannelParameters,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCSctpCapabilities,
    RTCSctpTransport,
)

from .carrier_io import Carrier
from .datachannel import DataChannelStream
from .sdp import Fingerprint

log = logging.getLogger(__name__)

SCTP_PORT = 5000
MAX_MESSAGE_SIZE = 262144


class RTCError(ConnectionError):
    """The RTC connection could not be set up (timeout, carrier closed, DTLS failure)."""


class FingerprintMismatch(RTCError):
    """The peer's DTLS certificate does not match the fingerprint its SDP announced: refused."""


class _CarrierIce:
    """Stands in for RTCIceTransport: the three members RTCDtlsTransport uses, over a carrier."""

    def __init__(self, carrier: Carrier, dtls_server: bool, gate: asyncio.Event) -> None:
        # aiortc's ORTC rule: the 'controlling' side becomes the DTLS server.
        self.role = "controlling" if dtls_server else "controlled"
        self._carrier = carrier
        self._gate = gate

    async def _recv(self) -> bytes:
        await self._gate.wait()  # closed while our read buffer is full
        return await self._carrier.recv()

    async def _send(self, data: bytes) -> None:
        await self._carrier.send(data)


def local_fingerprints(certificate: RTCCertificate) -> tuple[Fingerprint, ...]:
    """The sha-256 fingerprint to put in our SDP (what browsers send too)."""
    return tuple(Fingerprint(f.algorithm, f.value) for f in certificate.getFingerprints() if f.algorithm == "sha-256")


class RTCStream:
    """One ordered, reliable data channel to a peer over a carrier, used as a byte stream (a ByteStream)."""

    def __init__(self, carrier: Carrier, *, remote: str, certificate: RTCCertificate,
                 remote_fingerprints: Sequence[Fingerprint], dtls_server: bool, initiator: bool,
                 remote_sctp_port: int = SCTP_PORT, remote_max_message_size: int = MAX_MESSAGE_SIZE,
                 label: str | None = None) -> None:
        if not remote_fingerprints:
            raise ValueError("the peer's DTLS fingerprint is required")
        self._remote = remote
        self._carrier = carrier
        self._gate = asyncio.Event()
        self._gate.set()
        self._ice = _CarrierIce(carrier, dtls_server, self._gate)
        self._dtls = RTCDtlsTransport(self._ice, [certificate])  # type: ignore[arg-type]
        self._remote_fps = [RTCDtlsFingerprint(f.algorithm, f.value) for f in remote_fingerprints]
        self._initiator = initiator
        self._remote_port = remote_sctp_port
        self._remote_mms = remote_max_message_size
        self._label = label or secrets.token_hex(10)
        self._sctp: RTCSctpTransport | None = None
        self._data: DataChannelStream | None = None
        self._dead = asyncio.Event()
        self._closed = False

    # ---- ByteStream -----------------------------------------------------------------------------

    @property
    def remote(self) -> str:
        return self._remote

    @property
    def carrier(self) -> Carrier:
        return self._carrier

    @property
    def bytes_sent(self) -> int:
        return self._data.bytes_sent if self._data is not None else 0

    @property
    def bytes_received(self) -> int:
        return self._data.bytes_received if self._data is not None else 0

    async def read(self, n: int = 65536) -> bytes:
        if self._data is None:
            return b""
        return await self._data.read(n)

    async def write(self, data: bytes) -> None:
        if self._data is None:
            raise ConnectionResetError("RTC channel not open")
        await self._data.write(data)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._mark_eof()
        if self._data is not None:
            with contextlib.suppress(Exception):
                await self._data.close()  # drains the channel's own queue
            with contextlib.suppress(Exception):
                await self._drain(timeout=5.0)
        for stop in (self._sctp.stop if self._sctp else None, self._dtls.stop):
            if stop is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stop(), 2.0)
        with contextlib.suppress(Exception):
            await self._carrier.close()

    async def _drain(self, timeout: float) -> None:
        """Give sent messages a chance to be acknowledged before the association is torn down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sctp = self._sctp
        # aiortc has no public "all acknowledged" signal; its sent queue is the only witness.
        while sctp is not None and getattr(sctp, "_sent_queue", None) and sctp.state == "connected" and loop.time() < deadline:
            await asyncio.sleep(0.02)

    # ---- setup ----------------------------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> "RTCStream":
        """DTLS handshake (fingerprint enforced), SCTP association, data channel open."""
        try:
            await asyncio.wait_for(self._start(), timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise RTCError(f"RTC setup with {self._remote} timed out after {timeout:.0f} s") from None
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self) -> None:
        self._dtls.on("statechange", self._on_dtls_state)
        await self._dtls.start(RTCDtlsParameters(fingerprints=self._remote_fps))
        if self._dtls.state != "connected":
            if self._dtls.encrypted:
                # The handshake itself finished: aiortc refused the certificate against the SDP.
                raise FingerprintMismatch(
                    f"{self._remote}: DTLS certificate does not match the SDP fingerprint; refused")
            raise RTCError(f"DTLS handshake with {self._remote} failed ({self._dtls.state})")
        self._sctp = RTCSctpTransport(self._dtls, SCTP_PORT)
        # Our listeners go on the channel inside aiortc's own callback, never after an await: aiortc
        # hands up every message of a packet (and of a carrier read) without yielding, so the peer's
        # first message can come right behind the channel's open or ack, and a channel with no
        # "message" listener drops it (issue #10: a lost BitTorrent handshake).
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._initiator:
            @self._sctp.on("datachannel")
            def on_datachannel(channel: RTCDataChannel) -> None:
                if self._data is None and not opened.done():
                    self._attach(channel)
                    opened.set_result(None)
                else:  # one channel per connection: close any extra the peer opens
                    channel.close()
        await self._sctp.start(RTCSctpCapabilities(maxMessageSize=self._remote_mms), self._remote_port)
        if self._initiator:
            channel = RTCDataChannel(self._sctp, RTCDataChannelParameters(label=self._label, ordered=True))
            self._attach(channel)

            @channel.on("open")
            def on_open() -> None:
                if not opened.done():
                    opened.set_result(None)
        dead = asyncio.ensure_future(self._dead.wait())
        try:
            done, _ = await asyncio.wait({opened, dead}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dead.cancel()
        if opened not in done:
            raise RTCError(f"connection to {self._remote} closed during setup")

    def _attach(self, channel: RTCDataChannel) -> None:
        self._data = DataChannelStream(channel, self._remote, max_message=self._remote_mms, gate=self._gate)
        channel.on("close", self._mark_eof)

    def _on_dtls_state(self) -> None:
        if self._dtls.state in ("closed", "failed"):
            self._mark_eof()

    def _mark_eof(self) -> None:
        self._dead.set()
        self._gate.set()
        if self._data is not None:
            self._data.mark_eof()

    def __repr__(self) -> str:
        return f"<RTCStream {self._remote} over {type(self._carrier).__name__}>"
