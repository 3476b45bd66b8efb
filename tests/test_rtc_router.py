"""RTC data channels between two peers on the real private i2pd: over a SAM stream, over several
(striped) and over SAM datagrams, signaled directly or tracker-style; fingerprints enforced; injected loss survived; bad SDP
refused with a clear error while the listener keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from i2ptorrent.transport.carrier import Impairment
from i2ptorrent.transport.rtc import FingerprintMismatch, RTCError, RTCStream
from i2ptorrent.transport.router import ManagedRouter
from i2ptorrent.transport.sam import DatagramSession, StreamSession, new_destination
from i2ptorrent.transport.sdp import CARRIER_DATAGRAM, CARRIER_STREAM, CARRIER_STRIPE
from i2ptorrent.transport.signaling import RTC_MAGIC, RTCConfig, RTCEndpoint, SignalingError

MiB = 1024 * 1024


@dataclass
class Peer:
    streams: StreamSession
    datagrams: DatagramSession
    endpoint: RTCEndpoint
    server: asyncio.Task[None]


async def _peer(router: ManagedRouter, config: RTCConfig | None = None) -> Peer:
    assert router.sam is not None
    opts = router.session_options
    sd, dd = await asyncio.gather(new_destination(router.sam), new_destination(router.sam))
    streams, datagrams = await asyncio.gather(StreamSession.create(router.sam, sd, opts),
                                              DatagramSession.create(router.sam, dd, opts))
    endpoint = RTCEndpoint(streams, datagrams, config=config)
    server = asyncio.ensure_future(endpoint.serve(streams.accept, None, lambda: streams.closed))
    return Peer(streams, datagrams, endpoint, server)


@pytest_asyncio.fixture(scope="module")
async def peers(router: ManagedRouter) -> AsyncIterator[tuple[Peer, Peer, Peer]]:
    """Three peers (sessions created together: one 20 s wait); the third injects 5 % loss/dup/reorder."""
    lossy = RTCConfig(impairment=lambda: Impairment(0.05, 0.05, 0.05, seed=int.from_bytes(os.urandom(4), "big")))
    made = await asyncio.gather(_peer(router), _peer(router), _peer(router, lossy), return_exceptions=True)
    good = [p for p in made if isinstance(p, Peer)]
    try:
        for p in made:
            if isinstance(p, BaseException):
                raise p
        yield made  # type: ignore[misc]
    finally:
        for p in good:
            p.server.cancel()
            with contextlib.suppress(BaseException):
                await p.server
            await p.endpoint.close()
            await p.streams.close()
            await p.datagrams.close()


async def _exchange(a: RTCStream, b: RTCStream, size: int) -> None:
    """size bytes a->b and size/2 b->a at the same time; each side must read exactly the other's bytes."""
    da, db = os.urandom(size), os.urandom(size // 2)

    async def side(me: RTCStream, data: bytes, expect: int) -> bytes:
        writer = asyncio.ensure_future(me.write(data))
        got = bytearray()
        while len(got) < expect:
            chunk = await me.read()
            assert chunk, "stream ended early"
            got += chunk
        await writer
        return bytes(got)

    got_a, got_b = await asyncio.wait_for(asyncio.gather(side(a, da, len(db)), side(b, db, len(da))), 240)
    assert hashlib.sha256(got_b).hexdigest() == hashlib.sha256(da).hexdigest()
    assert hashlib.sha256(got_a).hexdigest() == hashlib.sha256(db).hexdigest()


async def _close(*streams: RTCStream) -> None:
    for s in streams:
        await s.close()


@pytest.mark.parametrize("carrier", [CARRIER_STREAM, CARRIER_DATAGRAM, CARRIER_STRIPE])
async def test_direct_signaling_moves_mebibytes_over_each_carrier(peers: tuple[Peer, Peer, Peer], carrier: str) -> None:
    a, b, _ = peers
    ra = await asyncio.wait_for(a.endpoint.connect(b.streams.b32, carriers=[carrier]), 60)
    rb = await asyncio.wait_for(b.endpoint.accept(), 60)
    assert ra.remote == b.streams.b32 and rb.remote == a.streams.b32
    assert type(ra.carrier).__name__ == {"sam-stream": "StreamCarrier", "sam-datagram": "DatagramCarrier",
                                     "sam-stripe": "StripedCarrier"}[carrier]
    await _exchange(ra, rb, 6 * MiB)
    await ra.close()
    assert await asyncio.wait_for(rb.read(), 30) == b""
    await rb.close()


@pytest.mark.parametrize("carrier", [CARRIER_STREAM, CARRIER_DATAGRAM, CARRIER_STRIPE])
async def test_tracker_style_offer_answer(peers: tuple[Peer, Peer, Peer], carrier: str) -> None:
    a, b, _ = peers
    offer = a.endpoint.make_offer(carriers=[carrier])
    relayed_offer = json.loads(json.dumps({"offer": offer.signal}))["offer"]  # what a tracker forwards
    assert set(relayed_offer) == {"type", "sdp"} and "a=candidate" not in relayed_offer["sdp"]
    answer, connecting = b.endpoint.accept_offer(relayed_offer)
    relayed_answer = json.loads(json.dumps(answer))
    ra, rb = await asyncio.wait_for(asyncio.gather(offer.accept_answer(relayed_answer), connecting), 60)
    assert ra.remote == b.streams.b32 and rb.remote == a.streams.b32
    await _exchange(ra, rb, 2 * MiB)
    await _close(ra, rb)


async def test_fingerprint_mismatch_is_refused(peers: tuple[Peer, Peer, Peer]) -> None:
    """A tracker (or anyone on the path) swapping the offer's fingerprint cannot get a channel."""
    a, b, _ = peers
    offer = a.endpoint.make_offer(carriers=[CARRIER_STREAM])
    signal = dict(offer.signal)
    fake = ":".join(f"{x:02X}" for x in os.urandom(32))
    signal["sdp"] = re.sub(r"a=fingerprint:sha-256 \S+", f"a=fingerprint:sha-256 {fake}", signal["sdp"])
    answer, connecting = b.endpoint.accept_offer(signal)
    ra, rb = await asyncio.wait_for(
        asyncio.gather(offer.accept_answer(answer), connecting, return_exceptions=True), 90)
    assert isinstance(rb, FingerprintMismatch), rb
    assert isinstance(ra, RTCError), ra


async def test_datagram_carrier_with_injected_loss_duplication_reordering(peers: tuple[Peer, Peer, Peer]) -> None:
    """The third peer's datagram carriers drop, double and swap 5 % each of what they send."""
    a, _, lossy = peers
    ra = await asyncio.wait_for(lossy.endpoint.connect(a.streams.b32, carriers=[CARRIER_DATAGRAM]), 90)
    ra_peer = await asyncio.wait_for(a.endpoint.accept(), 60)
    await _exchange(ra, ra_peer, 3 * MiB)
    link = ra.carrier.link  # type: ignore[attr-defined]
    impairment = ra.carrier._impairment  # type: ignore[attr-defined]
    assert impairment.dropped and impairment.doubled and impairment.swapped
    assert link.stats.repaired > 0
    assert ra_peer.carrier.link.stats.duplicates > 0  # type: ignore[attr-defined]
    await _close(ra, ra_peer)


async def _raw_signal(peer_from: Peer, to: Peer, payload: bytes) -> bytes:
    stream = await peer_from.streams.connect(to.streams.b32)
    try:
        await stream.write(payload)
        reply = bytearray()
        while b"\n" not in reply:
            chunk = await asyncio.wait_for(stream.read(), 60)
            if not chunk:
                break
            reply += chunk
        return bytes(reply)
    finally:
        await stream.close()


async def test_malformed_sdp_gets_a_clear_error_and_the_listener_keeps_serving(peers: tuple[Peer, Peer, Peer]) -> None:
    a, b, _ = peers
    refused = b.endpoint.refused
    bad = b"v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=candidate:1 1 udp 1 8.8.8.8 9 typ host\r\n"
    reply = await _raw_signal(a, b, RTC_MAGIC + b"SIGNAL %d\n" % len(bad) + bad)
    assert reply.startswith(b"ERROR ") and b"ICE candidates are refused" in reply
    # an offer naming another peer than the stream it came on is refused too
    offer = a.endpoint.make_offer().signal["sdp"].replace(a.streams.b32, b.streams.b32).encode()
    reply = await _raw_signal(a, b, RTC_MAGIC + b"SIGNAL %d\n" % len(offer) + offer)
    assert reply.startswith(b"ERROR ") and b"stream comes from" in reply
    # a signaling line that never ends is cut off at its bound, and the stream closed without an answer
    reply = await _raw_signal(a, b, RTC_MAGIC + b"SIGNAL " + b"9" * 4000)
    assert reply == b""
    for _ in range(100):
        if b.endpoint.refused == refused + 3:
            break
        await asyncio.sleep(0.05)
    assert b.endpoint.refused == refused + 3
    # and the listener still serves a good peer
    ra = await asyncio.wait_for(a.endpoint.connect(b.streams.b32, carriers=[CARRIER_STREAM]), 60)
    rb = await asyncio.wait_for(b.endpoint.accept(), 60)
    await _exchange(ra, rb, 256 * 1024)
    await _close(ra, rb)


async def test_direct_connect_reports_the_refusal(peers: tuple[Peer, Peer, Peer]) -> None:
    a, b, _ = peers
    with pytest.raises(SignalingError, match="no common carrier"):
        await asyncio.wait_for(a.endpoint.connect(b.streams.b32, carriers=["sam-carrier-pigeon"]), 60)


async def _read_expecting(s: RTCStream, expected: bytes, timeout: float = 20.0) -> bytes:
    """What arrives, until it is `expected`, stops being a prefix of it, or nothing more comes within
    `timeout` (a lost message shows as what was read instead, not as a bare timeout)."""
    got = bytearray()
    with contextlib.suppress(asyncio.TimeoutError):
        while len(got) < len(expected) and expected.startswith(got):
            chunk = await asyncio.wait_for(s.read(len(expected) - len(got)), timeout)
            if not chunk:
                break
            got += chunk
    return bytes(got)


@pytest.mark.parametrize("carrier", [CARRIER_STREAM, CARRIER_DATAGRAM, CARRIER_STRIPE])
async def test_first_message_of_every_channel_arrives_first(peers: tuple[Peer, Peer, Peer], carrier: str) -> None:
    """Each side writes as soon as its channel is up (as the engine writes its handshake): the other
    side must read that message first, on every one of 20 channels (issue #10: the seeder's handshake
    was lost and its HAVE ALL read as the first message, `bad protocol string`)."""
    a, b, _ = peers

    async def up_and_write(connecting: Awaitable[RTCStream], first: bytes, then: bytes) -> RTCStream:
        s = await connecting
        await s.write(first)
        await s.write(then)
        return s

    for i in range(20):
        hs_a, hs_b = b"\x13BitTorrent protocol" + os.urandom(48), b"\x13BitTorrent protocol" + os.urandom(48)
        more_a, more_b = b"\x00\x00\x00\x01\x0e" + os.urandom(20), b"\x00\x00\x00\x01\x0e" + os.urandom(20)
        offer = a.endpoint.make_offer(carriers=[carrier])
        answer, connecting = b.endpoint.accept_offer(offer.signal)
        ra, rb = await asyncio.wait_for(asyncio.gather(
            up_and_write(offer.accept_answer(answer), hs_a, more_a), up_and_write(connecting, hs_b, more_b)), 60)
        try:
            got_a, got_b = await asyncio.gather(_read_expecting(ra, hs_b + more_b), _read_expecting(rb, hs_a + more_a))
            assert got_a == hs_b + more_b, f"channel {i}: the offerer lost the answerer's first message"
            assert got_b == hs_a + more_a, f"channel {i}: the answerer lost the offerer's first message"
        finally:
            await _close(ra, rb)
