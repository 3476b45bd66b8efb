"""Setting up RTC connections between I2P peers: offers and answers, carriers chosen and attached.

Two ways to signal, one set of rules:

- through a WebTorrent tracker: `make_offer()` gives `{type:'offer', sdp}` for an announce;
  `accept_offer(signal)` gives the answer to send back and finishes the connection; the offerer's
  `offer.accept_answer(signal)` finishes its side. The answerer opens the carrier: for `sam-stream` it
  connects to the offerer's .b32 and names the session with `I2PRTC/1 ATTACH <token>`; for
  `sam-stripe` it opens `stripe_lanes` such streams at once, each named `I2PRTC/1 ATTACH <token> <i>/<n>`,
  and DTLS packets are spread over them (stripe.py; the offerer starts on the first lane to arrive and
  the others join as they come); for `sam-datagram` it sends to the offerer's
  datagram destination with the token's first 8 bytes as the connection id.
- directly, when the .b32 is known: `connect(peer_b32)` opens a SAM stream, sends `I2PRTC/1 SIGNAL`,
  the offer and reads the answer; with `sam-stream` that same stream then carries DTLS; with `sam-stripe`
  the answerer attaches its lanes as on the tracker path.

Roles are fixed: the offerer is the DTLS server (answers say `a=setup:active`) and opens the data
channel, as simple-peer's initiator does. Identities: a stream's remote .b32 is what the router reports
and must equal the SDP's; datagrams are only accepted from the destination the SDP named.

An incoming SAM stream is recognised by its first bytes (`RTC_MAGIC`); whoever accepts streams (the
engine, or `serve()` here) hands those to `handle_stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCCertificate

from ..supervisor import Supervisor
from .accepting import accept_forever
from .carrier import Impairment, LinkConfig
from .carrier_io import Carrier, DatagramEndpoint, DatagramMux, StreamCarrier, StripedCarrier
from .rtc import MAX_MESSAGE_SIZE, RECEIVE_WINDOW, SCTP_PORT, RTCError, RTCStream, local_fingerprints
from .sdp import (
    CARRIER_DATAGRAM,
    CARRIER_STREAM,
    CARRIER_STRIPE,
    MAX_SDP_BYTES,
    RtcDescription,
    SdpError,
    build_sdp,
    new_session_token,
    parse_sdp,
    parse_signal,
    to_signal,
)
from .stream import ByteStream
from .stripe import MAX_LANES, STRIPE_BYTES

log = logging.getLogger(__name__)

RTC_MAGIC = b"I2PRTC/1 "
MAX_LINE = 128


class SignalingError(ConnectionError):
    """The peer refused our offer, or sent something that is not a valid signaling message."""


class StreamConnector(Protocol):
    """What the endpoint needs of a SAM StreamSession."""

    @property
    def b32(self) -> str: ...

    async def connect(self, peer: str) -> ByteStream: ...


@dataclass
class RTCConfig:
    carriers: tuple[str, ...] = (CARRIER_STREAM, CARRIER_DATAGRAM, CARRIER_STRIPE)
    """Carriers we accept, preferred first (an answerer picks the first of ours the offer lists)."""
    setup_timeout: float = 30.0
    offer_ttl: float = 60.0
    """WebTorrent gives up on an unanswered offer after 50 s."""
    max_pending: int = 256
    max_accept_queue: int = 64
    max_handshakes: int = 32
    """Incoming signaling streams handled at once; more wait (a flood cannot start unbounded tasks)."""
    stripe_lanes: int = 16
    """SAM streams an answerer opens for sam-stripe (at most stripe.MAX_LANES, what offerers accept).

    Each adds a streaming window, and on i2pd 2.45 a window grows by one packet per round trip after its
    first six, so N lanes open N times faster. At 3 hops, 8 MiB: 16 raw streams carried 4.0x one, 8 carried
    3.1x (bench/parallel_streams.py); striped, 16 lanes made 3.3-4.4x a raw stream (median 3.9, 5 runs)
    against 8 lanes' 2.7-3.0x (bench/testnet.py, side by side, README)."""
    stripe_bytes: int = STRIPE_BYTES
    """Bytes sent on one lane before the next (stripe.STRIPE_BYTES)."""
    stripe_window: int = RECEIVE_WINDOW
    """SCTP receive window we advertise on a sam-stripe connection (at most rtc.MAX_RECEIVE_WINDOW): the peer's
    SCTP takes it as its slow-start threshold. 4 MiB was measured no faster at 3 hops (README): the flight
    grew past 1 MiB, but the round trip grew with it as the lanes queued (5-8 s)."""
    link: LinkConfig = field(default_factory=LinkConfig)
    impairment: Callable[[], Impairment] | None = None
    """Tests and benchmarks only: loss/duplication/reordering injected into each datagram carrier."""


class _LineReader:
    """Reads a line and an exact byte count from a ByteStream, keeping what it read past them."""

    def __init__(self, stream: ByteStream, head: bytes = b"") -> None:
        self.stream = stream
        self.buf = bytearray(head)

    async def line(self, limit: int = MAX_LINE) -> bytes:
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise SignalingError("signaling line too long")
            data = await self.stream.read(4096)
            if not data:
                raise SignalingError("stream closed during signaling")
            self.buf += data
        end = self.buf.index(b"\n")
        if end > limit:
            raise SignalingError("signaling line too long")
        line = bytes(self.buf[:end])
        del self.buf[: end + 1]
        return line

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = await self.stream.read(max(4096, n - len(self.buf)))
            if not data:
                raise SignalingError("stream closed during signaling")
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def rest(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


def _length(text: bytes) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_SDP_BYTES:
        raise SignalingError(f"bad SDP length {text[:12]!r}")
    return int(text)


Lane = tuple[ByteStream, bytes]
"""An attached carrier stream and the bytes a signaling reader took past its ATTACH line."""


class Offer:
    """An offer we made; finished by the answer (tracker path) and, for the stream carriers, by the
    ATTACH streams: one for sam-stream, `lane/count` numbered ones for sam-stripe. The carrier starts on
    the first stream to arrive; later lanes join it (StripedCarrier.add_lane), and the offer stays in the
    endpoint's table until the last one has (or the offer expires).

    `offer_id` is its id in a tracker's `offers` list and `tag` what the caller made it for (an info
    hash): the endpoint's table is the one record of pending offers, found by token or by offer_id."""

    def __init__(self, endpoint: RTCEndpoint, description: RtcDescription, tag: object = None) -> None:
        self._endpoint = endpoint
        self.description = description
        self.token = description.session
        self.offer_id = secrets.token_bytes(20)
        self.tag = tag
        self.created = time.monotonic()
        self._attached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done when the first stream has come."""
        self._lanes: dict[int, Lane] = {}
        self._lane_count: int | None = None
        self._carrier: StripedCarrier | None = None
        """Set once the carrier runs: lanes that come later join it."""
        self._done = False
        self._answered = False

    def _attach(self, stream: ByteStream, rest: bytes, lane: int, count: int) -> None:
        if not 0 <= lane < count <= MAX_LANES or self._lane_count not in (None, count) or lane in self._lanes:
            raise SignalingError(f"bad ATTACH lane {lane}/{count}")
        if self._done and self._carrier is None:
            raise SignalingError("ATTACH for an attached offer")
        self._lane_count = count
        if self._carrier is not None:
            try:
                joined = self._carrier.add_lane(stream, rest)
            except ValueError as exc:
                raise SignalingError(str(exc)) from None
            self._lanes[lane] = (stream, rest)
            if not joined:  # the connection is gone already
                self._endpoint._spawn(stream.close(), "close a lane of a closed carrier")
            if not joined or not self.awaiting_lanes:
                self._endpoint._drop_offer(self)
            return
        self._lanes[lane] = (stream, rest)
        if not self._attached.done():
            self._attached.set_result(None)

    @property
    def awaiting_lanes(self) -> bool:
        """The carrier runs and some of its lanes have not come yet."""
        return self._carrier is not None and len(self._lanes) < (self._lane_count or 0)

    def _streams(self) -> list[ByteStream]:
        return [stream for stream, _ in self._lanes.values()]

    @property
    def signal(self) -> dict[str, str]:
        """`{type: 'offer', sdp}` for the tracker's `offers` list."""
        return to_signal(self.description)

    async def accept_answer(self, signal: object) -> RTCStream:
        """Finish the connection with the answer the tracker relayed; raises SdpError/RTCError."""
        answer = parse_signal(signal, "answer")
        return await self._endpoint._finish_offer(self, answer)

    def cancel(self) -> None:
        self._endpoint._drop_offer(self)


class RTCEndpoint:
    """Our side of RTC connections: one certificate, one stream session, optionally a datagram session."""

    def __init__(self, streams: StreamConnector, datagrams: DatagramEndpoint | None = None, *,
                 datagram_dest: str | None = None, config: RTCConfig | None = None,
                 certificate: RTCCertificate | None = None) -> None:
        self.config = config or RTCConfig()
        self.streams = streams
        self.b32 = streams.b32
        self.certificate = certificate or RTCCertificate.generateCertificate()
        self.mux = DatagramMux(datagrams) if datagrams is not None else None
        if datagrams is not None and datagram_dest is None:
            datagram_dest = datagrams.destination.public  # type: ignore[attr-defined]
        self.datagram_dest = datagram_dest
        carriers = tuple(c for c in self.config.carriers if c != CARRIER_DATAGRAM or self.mux is not None)
        if not carriers:
            raise ValueError("no usable carrier (sam-datagram needs a datagram session)")
        self.carriers = carriers
        self._offers: dict[str, Offer] = {}  # token -> offer: the one table of our pending offers
        self._offer_ids: dict[bytes, str] = {}  # its index by offer_id
        self._accepted: asyncio.Queue[RTCStream] = asyncio.Queue(self.config.max_accept_queue)
        self._handshakes = asyncio.Semaphore(self.config.max_handshakes)
        self._tasks = Supervisor(log)
        self.refused = 0  # incoming signaling refused (bad SDP, wrong identity, ...)

    # ---- descriptions ---------------------------------------------------------------------------

    def _describe(self, kind: str, carriers: Sequence[str], session: str) -> RtcDescription:
        return RtcDescription(
            type=kind,  # type: ignore[arg-type]
            fingerprints=local_fingerprints(self.certificate),
            setup="actpass" if kind == "offer" else "active",
            b32=self.b32,
            carriers=tuple(carriers),
            session=session,
            sctp_port=SCTP_PORT,
            max_message_size=MAX_MESSAGE_SIZE,
            datagram_dest=self.datagram_dest if CARRIER_DATAGRAM in carriers else None,
        )

    def _choose(self, offer: RtcDescription) -> str:
        for carrier in self.carriers:
            if carrier in offer.carriers:
                return carrier
        raise SdpError(f"no common carrier: peer offers {list(offer.carriers)}, we accept {list(self.carriers)}")

    def _stream_for(self, carrier: Carrier, peer: RtcDescription, *, offerer: bool) -> RTCStream:
        return RTCStream(carrier, remote=peer.b32, certificate=self.certificate,
                         remote_fingerprints=peer.fingerprints, dtls_server=offerer, initiator=offerer,
                         remote_sctp_port=peer.sctp_port, remote_max_message_size=peer.max_message_size,
                         receive_window=self.config.stripe_window if isinstance(carrier, StripedCarrier)
                         else RECEIVE_WINDOW)

    def _datagram_carrier(self, peer: RtcDescription, token: str) -> Carrier:
        assert self.mux is not None and peer.datagram_dest is not None
        link = LinkConfig(**vars(self.config.link))
        impairment = self.config.impairment() if self.config.impairment else None
        return self.mux.open(peer.datagram_dest, bytes.fromhex(token[:16]), link, impairment)

    # ---- tracker path: offerer ------------------------------------------------------------------

    def make_offer(self, carriers: Sequence[str] | None = None, tag: object = None) -> Offer:
        """A new offer for the tracker; answer it with `offer.accept_answer(signal)`."""
        self._expire_offers()
        if len(self._offers) >= self.config.max_pending:
            raise RTCError("too many unanswered offers")
        offer = Offer(self, self._describe("offer", carriers or self.carriers, new_session_token()), tag)
        self._offers[offer.token] = offer
        self._offer_ids[offer.offer_id] = offer.token
        if self.mux is not None and CARRIER_DATAGRAM in offer.description.carriers:
            self.mux.expect(bytes.fromhex(offer.token[:16]))
        return offer

    def pending_offer(self, offer_id: bytes) -> Offer | None:
        """The unanswered, unexpired offer with this tracker offer id."""
        self._expire_offers()
        token = self._offer_ids.get(offer_id)
        return self._offers.get(token) if token is not None else None

    def _expire_offers(self) -> None:
        now = time.monotonic()
        for offer in [o for o in self._offers.values() if now - o.created > self.config.offer_ttl]:
            self._drop_offer(offer)

    def _drop_offer(self, offer: Offer) -> None:
        self._offers.pop(offer.token, None)
        self._offer_ids.pop(offer.offer_id, None)
        if self.mux is not None:
            self.mux.unexpect(bytes.fromhex(offer.token[:16]))
        if not offer._attached.done():
            offer._attached.cancel()
        if not offer._done:
            for stream in offer._streams():
                self._spawn(stream.close(), "close an unused carrier stream")

    async def _finish_offer(self, offer: Offer, answer: RtcDescription) -> RTCStream:
        if self._offers.get(offer.token) is not offer or offer._answered:
            raise RTCError("offer expired or already answered")
        offer._answered = True
        try:
            if answer.session != offer.token:
                raise SdpError("answer is for another offer (a=x-i2p-session differs)")
            if answer.setup != "active":
                raise SdpError("answer must take a=setup:active (the offerer is the DTLS server)")
            (chosen,) = answer.carriers
            if chosen not in offer.description.carriers:
                raise SdpError(f"answer chose carrier {chosen!r}, which was not offered")
            if chosen == CARRIER_DATAGRAM:
                carrier: Carrier = self._datagram_carrier(answer, offer.token)
            else:
                carrier = await self._attached_carrier(offer, chosen, answer.b32)
        finally:
            if not offer.awaiting_lanes:
                self._drop_offer(offer)
        return await self._stream_for(carrier, answer, offerer=True).start(self.config.setup_timeout)

    async def _attached_carrier(self, offer: Offer, chosen: str, peer_b32: str) -> Carrier:
        """The carrier over the streams the answerer attached to `offer` (all from the answer's .b32), as
        soon as the first has come; the rest of a striped carrier's lanes join it as they come."""
        try:
            await asyncio.wait_for(asyncio.shield(offer._attached), self.config.setup_timeout)
        except asyncio.TimeoutError:
            raise RTCError("the answerer never opened the carrier streams") from None
        offer._done = True
        lanes = [offer._lanes[i] for i in sorted(offer._lanes)]
        streams = [stream for stream, _ in lanes]
        try:
            for stream in streams:
                if stream.remote != peer_b32:
                    raise RTCError(f"carrier stream came from {stream.remote}, answer claims {peer_b32}")
            if chosen == CARRIER_STREAM and offer._lane_count != 1:
                raise RTCError(f"sam-stream takes one stream, the answerer attached {offer._lane_count}")
        except BaseException:
            await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
            raise
        if chosen == CARRIER_STREAM:
            return StreamCarrier(*lanes[0])
        offer._carrier = StripedCarrier(lanes, self.config.stripe_bytes)
        return offer._carrier

    async def _open_lanes(self, peer_b32: str, token: str) -> list[Lane]:
        """Answerer, sam-stripe: connect all lanes to the offerer at once, each named by ATTACH lane/count."""
        count = max(1, min(self.config.stripe_lanes, MAX_LANES))

        async def lane(i: int) -> ByteStream:
            stream = await self.streams.connect(peer_b32)
            try:
                await stream.write(RTC_MAGIC + b"ATTACH %s %d/%d\n" % (token.encode(), i, count))
            except BaseException:
                await stream.close()
                raise
            return stream

        tasks = [asyncio.ensure_future(lane(i)) for i in range(count)]
        try:
            streams = await asyncio.wait_for(asyncio.gather(*tasks), self.config.setup_timeout)
        except BaseException:
            for task in tasks:
                task.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(s.close() for s in done if not isinstance(s, BaseException)),
                                 return_exceptions=True)
            raise
        return [(stream, b"") for stream in streams]

    # ---- tracker path: answerer -----------------------------------------------------------------

    def accept_offer(self, signal: object) -> tuple[dict[str, str], Awaitable[RTCStream]]:
        """(answer signal to send back now, awaitable of the connected RTCStream).

        Raises SdpError at once for an offer we cannot take.
        """
        offer = parse_signal(signal, "offer")
        chosen = self._choose(offer)
        answer = self._describe("answer", [chosen], offer.session)
        return to_signal(answer), self._answer(offer, chosen)

    async def _answer(self, offer: RtcDescription, chosen: str) -> RTCStream:
        if chosen == CARRIER_STREAM:
            stream = await asyncio.wait_for(self.streams.connect(offer.b32), self.config.setup_timeout)
            try:
                await stream.write(RTC_MAGIC + b"ATTACH " + offer.session.encode() + b"\n")
            except BaseException:
                await stream.close()
                raise
            carrier: Carrier = StreamCarrier(stream)
        elif chosen == CARRIER_STRIPE:
            carrier = StripedCarrier(await self._open_lanes(offer.b32, offer.session), self.config.stripe_bytes)
        else:
            carrier = self._datagram_carrier(offer, offer.session)
        return await self._stream_for(carrier, offer, offerer=False).start(self.config.setup_timeout)

    # ---- direct path ----------------------------------------------------------------------------

    async def connect(self, peer_b32: str, carriers: Sequence[str] | None = None) -> RTCStream:
        """RTC to a peer whose .b32 we know, signaled over a SAM stream (no tracker)."""
        description = self._describe("offer", carriers or self.carriers, new_session_token())
        lanes: Offer | None = None
        if CARRIER_STRIPE in description.carriers:  # the answerer attaches lanes as on the tracker path
            lanes = Offer(self, description)
            lanes._answered = True
            self._offers[lanes.token] = lanes
        try:
            return await self._connect(peer_b32, description, lanes)
        finally:
            if lanes is not None and not lanes.awaiting_lanes:
                self._drop_offer(lanes)

    async def _connect(self, peer_b32: str, description: RtcDescription, lanes: Offer | None) -> RTCStream:
        stream = await asyncio.wait_for(self.streams.connect(peer_b32), self.config.setup_timeout)
        try:
            sdp = build_sdp(description).encode()
            await stream.write(RTC_MAGIC + b"SIGNAL %d\n" % len(sdp) + sdp)
            reader = _LineReader(stream)
            line = await asyncio.wait_for(reader.line(512), self.config.setup_timeout)
            if line.startswith(b"ERROR "):
                raise SignalingError(f"{peer_b32} refused the offer: {line[6:].decode('ascii', 'replace')}")
            if not line.startswith(b"OK "):
                raise SignalingError(f"unexpected signaling reply {line[:40]!r}")
            answer = parse_sdp(await reader.exactly(_length(line[3:])), "answer")
            if answer.b32 != stream.remote or answer.session != description.session:
                raise SignalingError("answer names another peer or session")
            if answer.setup != "active" or answer.carriers[0] not in description.carriers:
                raise SignalingError("answer takes a role or carrier we did not offer")
        except BaseException:
            await stream.close()
            raise
        if answer.carriers[0] == CARRIER_STREAM:
            carrier: Carrier = StreamCarrier(stream, reader.rest())
        else:
            await stream.close()
            if answer.carriers[0] == CARRIER_STRIPE:
                assert lanes is not None
                carrier = await self._attached_carrier(lanes, CARRIER_STRIPE, answer.b32)
            else:
                carrier = self._datagram_carrier(answer, description.session)
        return await self._stream_for(carrier, answer, offerer=True).start(self.config.setup_timeout)

    # ---- incoming streams -----------------------------------------------------------------------

    async def accept(self) -> RTCStream:
        """The next RTC connection a peer opened to us by direct signaling."""
        return await self._accepted.get()

    async def handle_stream(self, stream: ByteStream, head: bytes = b"") -> None:
        """Serve one incoming SAM stream that starts with RTC_MAGIC (`head`: bytes already read from it).

        Never raises: a bad peer gets an ERROR line (when it can be told) and its stream closed.
        """
        async with self._handshakes:
            try:
                await asyncio.wait_for(self._handle(stream, _LineReader(stream, head)), self.config.setup_timeout)
            except (SdpError, SignalingError, RTCError, asyncio.TimeoutError, ConnectionError, OSError) as exc:
                self.refused += 1
                log.info("refused RTC signaling from %s: %s", stream.remote, exc)
                await stream.close()
            except Exception:  # a bug must not take the listener down with it
                self.refused += 1
                log.exception("RTC signaling from %s failed", stream.remote)
                await stream.close()

    async def _handle(self, stream: ByteStream, reader: _LineReader) -> None:
        line = await reader.line()
        if not line.startswith(RTC_MAGIC):
            raise SignalingError("not an RTC signaling stream")
        verb, _, arg = line[len(RTC_MAGIC):].partition(b" ")
        if verb == b"ATTACH":
            token, _, lane = arg.decode("ascii", "replace").partition(" ")
            offer = self._offers.get(token)
            if offer is None:
                raise SignalingError("ATTACH for an unknown offer")
            index, _, count = lane.partition("/") if lane else ("0", "", "1")
            if not (index.isdigit() and count.isdigit()):
                raise SignalingError(f"bad ATTACH lane {lane[:16]!r}")
            offer._attach(stream, reader.rest(), int(index), int(count))
            return
        if verb != b"SIGNAL":
            raise SignalingError(f"unknown verb {verb[:16]!r}")
        sdp = await reader.exactly(_length(arg))
        try:
            offer_desc = parse_sdp(sdp, "offer")
            if offer_desc.b32 != stream.remote:
                raise SdpError(f"offer claims {offer_desc.b32} but the stream comes from {stream.remote}")
            chosen = self._choose(offer_desc)
        except SdpError as exc:
            with contextlib.suppress(Exception):
                await stream.write(b"ERROR " + str(exc).encode("ascii", "replace")[:200].replace(b"\n", b" ") + b"\n")
            raise
        answer = build_sdp(self._describe("answer", [chosen], offer_desc.session)).encode()
        await stream.write(b"OK %d\n" % len(answer) + answer)
        if chosen == CARRIER_STREAM:
            carrier: Carrier | None = StreamCarrier(stream, reader.rest())
        else:
            await stream.close()
            carrier = None if chosen == CARRIER_STRIPE else self._datagram_carrier(offer_desc, offer_desc.session)
        # Lanes and DTLS are set up outside the handshake slot so that slow peers cannot hold it.
        self._spawn(self._finish_incoming(offer_desc, carrier), f"RTC setup with {stream.remote}")

    async def _finish_incoming(self, offer: RtcDescription, carrier: Carrier | None) -> None:
        try:
            if carrier is None:
                carrier = StripedCarrier(await self._open_lanes(offer.b32, offer.session), self.config.stripe_bytes)
            rtc = self._stream_for(carrier, offer, offerer=False)
            await rtc.start(self.config.setup_timeout)
        except (RTCError, ConnectionError, asyncio.TimeoutError) as exc:
            self.refused += 1
            log.info("RTC setup with %s failed: %s", offer.b32, exc)
            return
        try:
            self._accepted.put_nowait(rtc)
        except asyncio.QueueFull:
            log.warning("RTC accept queue full; dropping %s", rtc.remote)
            await rtc.close()

    def _spawn(self, coro: Coroutine[Any, Any, object], name: str) -> None:
        self._tasks.spawn(coro, name)

    async def serve(self, accept: Callable[[], Awaitable[ByteStream]],
                    other: Callable[[ByteStream, bytes], Awaitable[None]] | None,
                    closed: Callable[[], bool]) -> None:
        """Accept loop for a session only we use: RTC streams to handle_stream, the rest to `other`.
        A failed accept is retried (see accepting.py); the loop ends when `closed()` or when cancelled."""

        async def admit(stream: ByteStream) -> None:
            if len(self._tasks) >= 4 * self.config.max_handshakes:
                log.warning("too many streams being set up; closing one from %s", stream.remote)
                await stream.close()
                return
            self._spawn(self._dispatch(stream, other), f"incoming stream from {stream.remote}")

        await accept_forever(accept, admit, closed, "SAM accept")

    async def _dispatch(self, stream: ByteStream, other: Callable[[ByteStream, bytes], Awaitable[None]] | None) -> None:
        head = b""
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError, OSError):
            while len(head) < len(RTC_MAGIC):
                data = await asyncio.wait_for(stream.read(len(RTC_MAGIC) - len(head)), 30.0)
                if not data:
                    break
                head += data
        if head == RTC_MAGIC:
            await self.handle_stream(stream, head)
        elif other is not None:
            await other(stream, head)
        else:
            await stream.close()

    async def close(self) -> None:
        for offer in list(self._offers.values()):
            self._drop_offer(offer)
        await self._tasks.close()
        while not self._accepted.empty():
            await self._accepted.get_nowait().close()
        if self.mux is not None:
            await self.mux.close()
