"""RTCStream (aiortc DTLS + SCTP + one data channel, no ICE) over in-memory carriers: bytes identical,
fingerprints enforced, bounded buffers, and the datagram carrier under injected loss/dup/reordering."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from aiortc import RTCCertificate

from i2ptorrent.transport.carrier import Impairment, LinkConfig
from i2ptorrent.transport.carrier_io import Carrier, DatagramMux, DelayedCarrier, MemoryCarrier, MemoryDatagramEndpoint
from i2ptorrent.transport.datachannel import DataChannelStream
from i2ptorrent.transport.rtc import (MAX_RECEIVE_WINDOW, RECEIVE_WINDOW, FingerprintMismatch, RTCError, RTCStream,
                                       local_fingerprints)
from i2ptorrent.transport.stream import ByteStream

CERT_A = RTCCertificate.generateCertificate()
CERT_B = RTCCertificate.generateCertificate()
CERT_X = RTCCertificate.generateCertificate()


def _pair(ca: Carrier, cb: Carrier, b_expects: RTCCertificate = CERT_A) -> tuple[RTCStream, RTCStream]:
    a = RTCStream(ca, remote="peer-b", certificate=CERT_A, remote_fingerprints=local_fingerprints(CERT_B),
                  dtls_server=True, initiator=True)
    b = RTCStream(cb, remote="peer-a", certificate=CERT_B, remote_fingerprints=local_fingerprints(b_expects),
                  dtls_server=False, initiator=False)
    return a, b


async def _read_all(s: ByteStream) -> bytes:
    out = bytearray()
    while chunk := await s.read(65536):
        out += chunk
    return bytes(out)


async def _exchange(a: RTCStream, b: RTCStream, size: int) -> None:
    """Both directions at once, then close: what each side reads is exactly what the other wrote."""
    da, db = os.urandom(size), os.urandom(size // 2)

    async def side(me: RTCStream, data: bytes) -> bytes:
        async def send() -> None:
            await me.write(data)
        writer = asyncio.ensure_future(send())
        got = bytearray()
        while len(got) < (len(db) if me is a else len(da)):
            chunk = await me.read()
            assert chunk, "stream ended early"
            got += chunk
        await writer
        return bytes(got)

    got_a, got_b = await asyncio.wait_for(asyncio.gather(side(a, da), side(b, db)), 120)
    assert hashlib.sha256(got_b).digest() == hashlib.sha256(da).digest()
    assert hashlib.sha256(got_a).digest() == hashlib.sha256(db).digest()


async def test_memory_pair_moves_bytes_both_ways_and_implements_bytestream() -> None:
    a, b = _pair(*MemoryCarrier.pair())
    assert isinstance(a, ByteStream)
    await asyncio.gather(a.start(10), b.start(10))
    await _exchange(a, b, 4 * 1024 * 1024)
    await a.close()
    assert await asyncio.wait_for(b.read(), 10) == b""  # the peer sees EOF
    with pytest.raises(ConnectionResetError):
        await b.write(b"late")
    await b.close()
    await b.close()  # twice is fine


async def test_fingerprint_mismatch_is_refused_on_both_sides() -> None:
    a, b = _pair(*MemoryCarrier.pair(), b_expects=CERT_X)
    ra, rb = await asyncio.gather(a.start(10), b.start(10), return_exceptions=True)
    assert isinstance(rb, FingerprintMismatch) and "does not match the SDP fingerprint" in str(rb)
    assert isinstance(ra, RTCError)  # the offerer's side fails too: the carrier was closed on it


async def test_setup_times_out_when_the_peer_never_answers() -> None:
    ca, _cb = MemoryCarrier.pair()
    a, _ = _pair(ca, _cb)
    with pytest.raises(RTCError, match="timed out"):
        await a.start(1.5)


async def test_read_buffer_is_bounded_while_the_reader_sleeps() -> None:
    a, b = _pair(*MemoryCarrier.pair(max_queue=64))
    await asyncio.gather(a.start(10), b.start(10))
    data = os.urandom(12 * 1024 * 1024)
    writer = asyncio.ensure_future(a.write(data))
    for _ in range(300):  # let the loop run a good while with nobody reading on b
        await asyncio.sleep(0.01)
    assert not writer.done()  # backpressure reached the writer
    assert a._data is not None and b._data is not None
    assert len(b._data._buf) <= DataChannelStream.READ_HIGH + 262144
    assert a._data.channel.bufferedAmount <= DataChannelStream.HIGH_WATER + 16384
    got = bytearray()
    while len(got) < len(data):
        got += await asyncio.wait_for(b.read(), 30)
    await writer
    assert bytes(got) == data
    await a.close()
    await b.close()


async def test_a_peer_that_ignores_flow_control_is_dropped() -> None:
    """Without a gate (a browser's channel: aiortc's ICE cannot stop reading), more than MAX_BUFFERED
    unread bytes end the channel instead of growing memory."""

    class Small(DataChannelStream):
        MAX_BUFFERED = 256 * 1024

    a, b = _pair(*MemoryCarrier.pair())
    await asyncio.gather(a.start(10), b.start(10))
    assert b._data is not None and a._data is not None
    ungated = Small(b._data.channel, "browser")  # nobody reads it
    writer = asyncio.ensure_future(a.write(os.urandom(4 * 1024 * 1024)))
    await asyncio.wait_for(ungated.wait_closed(), 30)
    assert ungated.error is not None and "unread bytes" in ungated.error
    assert await ungated.read() == b""
    with pytest.raises(ConnectionResetError):  # the peer sees its channel closed
        await asyncio.wait_for(writer, 30)
    await a.close()
    await b.close()


async def _datagram_pair(impair: float, seed: int) -> tuple[RTCStream, RTCStream, DatagramMux, DatagramMux]:
    ea, eb = MemoryDatagramEndpoint.pair("A", "B")
    ma, mb = DatagramMux(ea), DatagramMux(eb)
    cid = os.urandom(8)
    cfg = LinkConfig(rate=20e6, burst=256 * 1024)
    imp = (lambda s: Impairment(impair, impair, impair, seed=s)) if impair else (lambda s: None)
    ca = ma.open("B", cid, cfg, imp(seed))
    cb = mb.open("A", cid, LinkConfig(rate=20e6, burst=256 * 1024), imp(seed + 1))
    a, b = _pair(ca, cb)
    await asyncio.gather(a.start(20), b.start(20))
    return a, b, ma, mb


async def test_datagram_carrier_in_memory() -> None:
    a, b, ma, mb = await _datagram_pair(0.0, 1)
    await _exchange(a, b, 2 * 1024 * 1024)
    await a.close()
    assert await asyncio.wait_for(b.read(), 10) == b""
    await b.close()
    await ma.close()
    await mb.close()


async def test_datagram_carrier_survives_loss_duplication_and_reordering() -> None:
    a, b, ma, mb = await _datagram_pair(0.05, 7)
    await _exchange(a, b, 2 * 1024 * 1024)
    link = b.carrier.link  # type: ignore[attr-defined]
    assert link.stats.duplicates > 0 and link.stats.reordered > 0 and a.carrier.link.stats.repaired > 0  # type: ignore[attr-defined]
    await a.close()
    await b.close()
    await ma.close()
    await mb.close()


async def test_mux_drops_datagrams_from_unexpected_senders() -> None:
    net: dict[str, MemoryDatagramEndpoint] = {}
    ea, eb, ex = (MemoryDatagramEndpoint(n, net) for n in ("A", "B", "X"))
    ma = DatagramMux(ea)
    cid = os.urandom(8)
    carrier = ma.open("B", cid)
    mx = DatagramMux(ex)
    intruder = mx.open("A", cid)  # same connection id, wrong sender
    await intruder.send(b"\x16" + b"hello" * 10)
    async with asyncio.timeout(5):
        while not ma.dropped:
            await asyncio.sleep(0.005)
    assert carrier.link.stats.received_datagrams == 0 and ma.dropped >= 1
    await ma.close()
    await mx.close()


class _NoNetwork:
    """A stream connector for signaling checks that must fail before any connection is made."""

    b32 = "a" * 52 + ".b32.i2p"

    async def connect(self, peer: str) -> ByteStream:
        raise AssertionError("no connection expected")


def _answer_for(offer_signal: dict[str, str], **changes: str) -> dict[str, str]:
    from i2ptorrent.transport.sdp import RtcDescription, parse_signal, to_signal

    o = parse_signal(offer_signal, "offer")
    fields = dict(type="answer", fingerprints=local_fingerprints(CERT_B), setup="active", b32="b" * 52 + ".b32.i2p",
                  carriers=(o.carriers[0],), session=o.session)
    fields.update(changes)
    if isinstance(fields["carriers"], str):
        fields["carriers"] = (fields["carriers"],)
        fields["datagram_dest"] = "A" * 520
    return to_signal(RtcDescription(**fields))  # type: ignore[arg-type]


async def test_offerer_refuses_answers_that_do_not_fit_its_offer() -> None:
    from i2ptorrent.transport.sdp import SdpError
    from i2ptorrent.transport.signaling import RTCConfig, RTCEndpoint

    ep = RTCEndpoint(_NoNetwork(), config=RTCConfig(setup_timeout=2))
    assert ep.carriers == ("sam-stream", "sam-stripe")  # no datagram session: datagram carrier not offered
    offer = ep.make_offer()
    with pytest.raises(SdpError, match="another offer"):
        await offer.accept_answer(_answer_for(offer.signal, session="0" * 32))
    offer = ep.make_offer()
    with pytest.raises(SdpError, match="not offered"):
        await offer.accept_answer(_answer_for(offer.signal, carriers="sam-datagram"))
    with pytest.raises(RTCError, match="already answered"):
        await offer.accept_answer(_answer_for(offer.signal))
    with pytest.raises(SdpError):
        await ep.make_offer().accept_answer({"type": "answer", "sdp": "v=0\r\n"})
    await ep.close()


async def test_answerer_refuses_offers_it_cannot_take_and_offers_are_bounded() -> None:
    from i2ptorrent.transport.sdp import SdpError
    from i2ptorrent.transport.signaling import RTCConfig, RTCEndpoint

    ep = RTCEndpoint(_NoNetwork(), config=RTCConfig(max_pending=3))
    other = RTCEndpoint(_NoNetwork(), config=RTCConfig(carriers=("sam-stream",)))
    with pytest.raises(SdpError, match="needs a=x-i2p-dgram"):  # no datagram session, no datagram offer
        other._describe("offer", ["sam-datagram"], "1" * 32)
    with pytest.raises(SdpError, match="no common carrier"):
        ep.accept_offer({"type": "offer", "sdp": other.make_offer(carriers=["sam-stream"]).signal["sdp"]
                         .replace("a=x-i2p-carriers:sam-stream", "a=x-i2p-carriers:sam-pigeon")})
    for _ in range(3):
        ep.make_offer()
    with pytest.raises(RTCError, match="too many"):
        ep.make_offer()
    await ep.close()
    await other.close()


async def test_the_receive_window_we_set_is_what_the_peer_sends_against() -> None:
    """aiortc's sender takes the peer's advertised window as its slow-start threshold: a window set on one
    side must reach the other side's SCTP (set too late, after start, it would silently stay 1 MiB)."""
    ca, cb = MemoryCarrier.pair()
    a = RTCStream(ca, remote="peer-b", certificate=CERT_A, remote_fingerprints=local_fingerprints(CERT_B),
                  dtls_server=True, initiator=True)
    b = RTCStream(cb, remote="peer-a", certificate=CERT_B, remote_fingerprints=local_fingerprints(CERT_A),
                  dtls_server=False, initiator=False, receive_window=4 * 1024 * 1024)
    await asyncio.gather(a.start(10), b.start(10))
    sa, sb = a.sctp_state(), b.sctp_state()
    assert sa is not None and sb is not None
    assert sa["ssthresh"] == 4 * 1024 * 1024  # a sends against b's window
    assert sb["ssthresh"] == RECEIVE_WINDOW  # and b against a's default one
    await _exchange(a, b, 1024 * 1024)
    await a.close()
    await b.close()
    with pytest.raises(ValueError):
        RTCStream(ca, remote="x", certificate=CERT_A, remote_fingerprints=local_fingerprints(CERT_B),
                  dtls_server=True, initiator=True, receive_window=MAX_RECEIVE_WINDOW + 1)


class _LosslessDelayed(DelayedCarrier):
    """A delayed carrier that, like a striped one, never drops what it took."""

    lossless = True
    dropped = 0


def _delayed_pair(delay: float) -> tuple[RTCStream, RTCStream]:
    ca, cb = MemoryCarrier.pair()
    return _pair(_LosslessDelayed(ca, delay), _LosslessDelayed(cb, delay))


async def test_the_channel_opener_writes_behind_its_open_without_waiting_a_round_trip_for_the_ack() -> None:
    """Over I2P a round trip is 1-3 s: the opener's BitTorrent handshake goes out right behind the
    DATA_CHANNEL_OPEN (RFC 8832 section 6), arrives first and intact, and the ACK comes later."""
    a, b = _delayed_pair(0.3)
    await asyncio.gather(a.start(20), b.start(20))
    assert a._data is not None
    # a's start returned when the association was up; b's ACK is still 0.3 s away
    assert a._data.channel.readyState == "connecting"
    await a.write(b"first")
    await a.write(b" second")
    got = bytearray()
    while len(got) < len(b"first second"):
        got += await asyncio.wait_for(b.read(), 10)
    assert bytes(got) == b"first second"
    await b.write(b"reply")
    assert await asyncio.wait_for(a.read(), 10) == b"reply"
    assert a._data.channel.readyState == "open"  # the ACK came and changed nothing
    await a.close()
    await b.close()


async def test_over_a_lossless_carrier_the_openers_first_message_does_not_wait_for_the_cookie_ack(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc held the channel's OPEN and the first message until its COOKIE ECHO was answered: one more
    round trip (1-3 s over I2P) on every new peer. Over a carrier that keeps order and loses nothing, they
    go right behind the COOKIE ECHO: the peer has them before the opener has heard anything back for its
    cookie (neither the peer's COOKIE ACK nor the peer's own COOKIE ECHO of the crossed INITs)."""
    from i2ptorrent.transport import rtc

    heard: list[tuple[object, str]] = []
    receive = rtc._LosslessCarrierSctp._receive_chunk

    async def recording(self: rtc._LosslessCarrierSctp, chunk: object) -> None:
        heard.append((self, type(chunk).__name__))
        await receive(self, chunk)

    monkeypatch.setattr(rtc._LosslessCarrierSctp, "_receive_chunk", recording)
    a, b = _delayed_pair(0.3)

    async def opener() -> None:
        await a.start(20)
        await a.write(b"handshake")  # as soon as a may, as the engine does

    async def answerer() -> list[str]:
        await b.start(20)
        assert await asyncio.wait_for(b.read(), 10) == b"handshake"
        return [name for sctp, name in heard if sctp is a._sctp]  # what a had heard by then

    _, heard_by_a = await asyncio.gather(opener(), answerer())
    assert "CookieAckChunk" not in heard_by_a and "CookieEchoChunk" not in heard_by_a, heard_by_a
    await b.write(b"reply")  # and the association goes on as usual both ways
    assert await asyncio.wait_for(a.read(), 10) == b"reply"
    await a.close()
    await b.close()


async def test_a_peer_that_vanishes_mid_flight_leaves_no_sctp_timer_to_fire() -> None:
    """The peer's process dies with our data in flight: its carrier closes, DTLS ends. aiortc kept SCTP's
    retransmission timer running, and when it fired its resend failed in a task nobody awaited ("Task
    exception was never retrieved", seen when WebRTC seeders went away in the testnet bench)."""
    ca, cb = MemoryCarrier.pair()
    a, b = _pair(DelayedCarrier(ca, 0.3), DelayedCarrier(cb, 0.3))
    await asyncio.gather(a.start(20), b.start(20))
    await a.write(os.urandom(32 * 1024))
    assert a._sctp is not None and a._sctp._t3_handle is not None  # in flight: the timer runs
    await cb.close()  # b's process is gone: nothing more from it, no ABORT
    async with asyncio.timeout(10):
        while a._dtls.state not in ("closed", "failed"):
            await asyncio.sleep(0.01)
    assert a._sctp._t3_handle is None and a._sctp._t1_handle is None and a._sctp._t2_handle is None
    assert await a.read() == b""
    await a.close()
    await b.close()


async def test_over_a_lossless_carrier_a_new_association_sends_a_whole_block_in_its_first_flight() -> None:
    """aiortc starts at 3 packets, so a new peer's first 16 KiB block waited 3 round trips (5.3 s at
    3 hops); over lanes that bound themselves the first flight carries 64 KiB."""
    a, b = _delayed_pair(0.3)
    await asyncio.gather(a.start(20), b.start(20))
    sent = os.urandom(48 * 1024)
    await b.write(sent)
    await asyncio.sleep(0.05)  # well inside the 0.6 s before any acknowledgement can come back
    state = b.sctp_state()
    assert state is not None and state["flight"] >= len(sent), state
    got = bytearray()
    while len(got) < len(sent):
        got += await asyncio.wait_for(a.read(), 10)
    assert bytes(got) == sent
    await a.close()
    await b.close()
