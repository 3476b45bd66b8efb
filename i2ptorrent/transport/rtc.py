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
from collections.abc import Callable, Sequence

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
from aiortc.rtcsctptransport import SCTP_RTO_MAX

from .carrier_io import Carrier
from .datachannel import DataChannelStream
from .sdp import Fingerprint

log = logging.getLogger(__name__)

SCTP_PORT = 5000
MAX_MESSAGE_SIZE = 262144
RECEIVE_WINDOW = 1024 * 1024
"""The SCTP receive window we advertise unless told otherwise (aiortc's own). aiortc's sender takes the
peer's window as its slow-start threshold and ignores it otherwise, so it caps the flight only loosely.
It is memory we promise: a peer may keep this much in flight to us, which piles up in the carrier and
SCTP's reassembly while our reader is slow, per connection."""
MAX_RECEIVE_WINDOW = 4 * 1024 * 1024
"""The most a caller may promise (stripe.Resequencer's hold is sized for it)."""


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


class _Sctp(RTCSctpTransport):
    """aiortc's SCTP with one thing it does not expose: the moment the association is established.

    The channel's opener may send right behind its DATA_CHANNEL_OPEN (RFC 8832 section 6: ordered
    messages cannot overtake it), so it need not wait a round trip for the ACK; over I2P that round trip
    is 1-3 s on every new WebRTC peer."""

    def __init__(self, transport: RTCDtlsTransport, port: int) -> None:
        super().__init__(transport, port)
        self.established: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _set_state(self, state: "RTCSctpTransport.State") -> None:
        super()._set_state(state)
        if state == self.State.ESTABLISHED and not self.established.done():
            self.established.set_result(None)


class _LosslessCarrierSctp(_Sctp):
    """aiortc's SCTP over a carrier that loses nothing it took (a striped carrier's lanes are reliable).

    There a T3 timeout means a lane stalled (an I2P stream waiting on its own retransmission) while the
    others' packets wait behind it in order, not loss: aiortc would send the whole flight again into the same
    lanes and restart from one packet with ssthresh at its floor (4 packets), from where the window grows one
    packet per round trip (measured at 3 hops: ssthresh 5 KB 20 s into a transfer, ~1 KB/s of growth, 0.87x a
    raw stream where the same pair without a timeout made 2.5-2.7x). So a timeout while the carrier dropped
    nothing only backs the timer off; a drop (a lane's bounded queue was full: congestion) takes aiortc's
    full back-off and resend. Each lane still backs off on loss itself.
    """

    INITIAL_WINDOW = 64 * 1024
    """Bytes SCTP may send before its first acknowledgement. aiortc starts at 3 packets (3.6 KB) and
    grows one packet per acknowledged packet, so at a 1-2 s round trip a new peer's first 16 KiB block
    waited 3 round trips (5.3 s measured at 3 hops, 50 ms per link). Over stripes it is the lanes that
    meet the network, each an I2P stream with its own congestion control (i2pd 2.45: one packet at first,
    one more per acknowledged packet up to six); 64 KiB over 16 lanes asks each for 4 KiB, 2-3 packets."""

    ESTABLISH_ON_COOKIE_ECHO = True
    """See `_set_state` (benchmarks turn it off to measure what it saves)."""

    def __init__(self, transport: RTCDtlsTransport, port: int, carrier_drops: Callable[[], int]) -> None:
        super().__init__(transport, port)
        self._cwnd = self.INITIAL_WINDOW
        self._carrier_drops = carrier_drops
        self._drops_seen = carrier_drops()
        self.stalls = 0
        """T3 timeouts taken for a stall (nothing resent)."""

    async def _transmit(self) -> None:
        """aiortc lets at most 4 packets beyond the flight leave per call (Max.Burst, RFC 4960 section 6.1:
        a MAY), so a fresh window or one a SACK opened fills 4.8 KB at a time, one call per write or SACK.
        Over lanes that pace themselves a burst hurts nothing: send until the window is full. During fast
        recovery aiortc's own rule stands."""
        while True:
            before = self._flight_size
            await super()._transmit()
            if (self._flight_size <= before or self._flight_size >= self._cwnd or not self._outbound_queue
                    or self._fast_recovery_exit is not None):
                return

    def _set_state(self, state: "RTCSctpTransport.State") -> None:
        """Established once our COOKIE ECHO is out, not a round trip later when its COOKIE ACK is back.

        aiortc keeps the channel's OPEN and every message until the ACK (1-3 s over I2P, on every new
        peer). RFC 9260 section 5.1 lets DATA go with the COOKIE ECHO in one packet, so the peer has the
        association before the data; aiortc sends one chunk per packet, and over this carrier, which loses
        nothing and keeps the order, DATA right behind the COOKIE ECHO reaches the peer after it just the
        same. The peer needs nothing new: it is aiortc's own receive path. With the COOKIE ECHO unable to
        get lost, its retransmission timer goes; a COOKIE ACK arriving later changes nothing."""
        if state == self.State.COOKIE_ECHOED and self.ESTABLISH_ON_COOKIE_ECHO:
            self._t1_cancel()
            state = self.State.ESTABLISHED
        super()._set_state(state)

    def _t3_expired(self) -> None:
        drops = self._carrier_drops()
        if drops != self._drops_seen:
            self._drops_seen = drops
            super()._t3_expired()
            return
        self.stalls += 1
        self._t3_handle = None
        self._rto = min(self._rto * 2, SCTP_RTO_MAX)  # RFC 9260 6.3.3 E2, as a resend would
        self._t3_start()


def local_fingerprints(certificate: RTCCertificate) -> tuple[Fingerprint, ...]:
    """The sha-256 fingerprint to put in our SDP (what browsers send too)."""
    return tuple(Fingerprint(f.algorithm, f.value) for f in certificate.getFingerprints() if f.algorithm == "sha-256")


class RTCStream:
    """One ordered, reliable data channel to a peer over a carrier, used as a byte stream (a ByteStream)."""

    def __init__(self, carrier: Carrier, *, remote: str, certificate: RTCCertificate,
                 remote_fingerprints: Sequence[Fingerprint], dtls_server: bool, initiator: bool,
                 remote_sctp_port: int = SCTP_PORT, remote_max_message_size: int = MAX_MESSAGE_SIZE,
                 label: str | None = None, receive_window: int = RECEIVE_WINDOW) -> None:
        if not remote_fingerprints:
            raise ValueError("the peer's DTLS fingerprint is required")
        if not 65536 <= receive_window <= MAX_RECEIVE_WINDOW:
            raise ValueError(f"receive window of {receive_window} bytes (64 KiB..4 MiB)")
        self._receive_window = receive_window
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
        self._sctp: _Sctp | None = None
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

    def sctp_state(self) -> dict[str, float] | None:
        """SCTP's sending state (bytes in flight, window, threshold, smoothed round trip in s), for benchmarks:
        what bounds a transfer. aiortc keeps these private; None before the association exists."""
        sctp = self._sctp
        if sctp is None:
            return None
        return {"flight": sctp._flight_size, "cwnd": sctp._cwnd, "ssthresh": getattr(sctp, "_ssthresh", 0),
                "srtt": sctp._srtt or 0.0, "rwnd": sctp._advertised_rwnd, "stalls": getattr(sctp, "stalls", 0)}

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
        if getattr(self._carrier, "lossless", False):
            self._sctp = _LosslessCarrierSctp(self._dtls, SCTP_PORT, lambda: getattr(self._carrier, "dropped", 0))
        else:
            self._sctp = _Sctp(self._dtls, SCTP_PORT)
        # aiortc has no setting for it: the attribute is what its INIT/INIT ACK and SACKs advertise, read
        # from start() on, so it is set before start() like every other aiortc setting.
        self._sctp._advertised_rwnd = self._receive_window
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
            self._attach(channel, send_before_ack=True)
            # Open for us once the association is: our OPEN is first in aiortc's queue, what we write
            # follows it (see _Sctp). The peer's ACK still comes; nothing waits for it.
            opened = self._sctp.established
        dead = asyncio.ensure_future(self._dead.wait())
        try:
            done, _ = await asyncio.wait({opened, dead}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dead.cancel()
            opened.cancel()
        if opened not in done:
            raise RTCError(f"connection to {self._remote} closed during setup")

    def _attach(self, channel: RTCDataChannel, send_before_ack: bool = False) -> None:
        self._data = DataChannelStream(channel, self._remote, max_message=self._remote_mms, gate=self._gate,
                                       send_before_ack=send_before_ack)
        channel.on("close", self._mark_eof)

    def _on_dtls_state(self) -> None:
        if self._dtls.state in ("closed", "failed"):
            if self._sctp is not None:
                # The association is over with the DTLS under it. aiortc leaves SCTP's timers running, and
                # a retransmission timer firing then fails in a task of aiortc's own that nobody awaits
                # ("Task exception was never retrieved" when a peer went away mid-flight); closing the
                # association stops them.
                self._sctp._set_state(RTCSctpTransport.State.CLOSED)
            self._mark_eof()

    def _mark_eof(self) -> None:
        self._dead.set()
        self._gate.set()
        if self._data is not None:
            self._data.mark_eof()

    def __repr__(self) -> str:
        return f"<RTCStream {self._remote} over {type(self._carrier).__name__}>"
