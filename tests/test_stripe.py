"""The striped carrier: the sans-I/O core (lane choice, numbering, putting packets back in order) and the
asyncio carrier under an RTCStream over in-memory lanes that race each other."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random

import pytest
from aiortc import RTCCertificate
from hypothesis import given, settings
from hypothesis import strategies as st

from i2ptorrent.transport.carrier import CarrierError, StreamFramer
from i2ptorrent.transport.carrier_io import StripedCarrier
from i2ptorrent.transport.rtc import RECEIVE_WINDOW, RTCStream, local_fingerprints
from i2ptorrent.transport.stripe import MAX_LANES, Resequencer, Striper, split_frame


def _lanes_of(striper: Striper, packets: list[bytes]) -> list[list[bytes]]:
    """What each lane carries (frames) when `packets` are sent in order."""
    lanes: list[list[bytes]] = [[] for _ in range(striper.lanes)]
    for p in packets:
        lanes[striper.next_lane()].append(striper.frame(p))
    return lanes


def _unframe(data: bytes) -> tuple[int, bytes]:
    framer = StreamFramer()
    framer.feed(data)
    frame = framer.next_packet()
    assert frame is not None and framer.buffered == 0
    return split_frame(frame)


def test_striper_turns_lanes_after_stripe_bytes_and_numbers_in_send_order() -> None:
    striper = Striper(3, stripe_bytes=3000)
    lanes = _lanes_of(striper, [bytes([i]) * 1000 for i in range(12)])
    # 1006-byte frames: three to a lane (the third crosses 3000), then the next lane, round and round
    assert [[_unframe(f)[0] for f in lane] for lane in lanes] == [[0, 1, 2, 9, 10, 11], [3, 4, 5], [6, 7, 8]]
    assert _unframe(lanes[1][0]) == (3, bytes([3]) * 1000)


def test_striper_bounds() -> None:
    with pytest.raises(ValueError):
        Striper(0)
    with pytest.raises(ValueError):
        Striper(MAX_LANES + 1)
    with pytest.raises(ValueError):
        Striper(2).frame(b"x" * 2045)  # 4 bytes of number + packet must fit a carrier frame
    with pytest.raises(CarrierError):
        split_frame(b"\0\0\0\1")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, MAX_LANES), st.integers(1, 20000), st.integers(0, 2**32 - 1))
def test_any_interleaving_of_lanes_comes_out_in_order(lanes: int, stripe: int, seed: int) -> None:
    rng = random.Random(seed)
    packets = [os.urandom(rng.randint(1, 1400)) for _ in range(300)]
    queues = [list(q) for q in _lanes_of(Striper(lanes, stripe), packets)]
    reseq, out = Resequencer(), []
    while any(queues):  # each lane stays in order; which lane delivers next is random
        lane = rng.choice([q for q in queues if q])
        reseq.push(*split_frame(lane.pop(0)[2:]))
        while (p := reseq.pop()) is not None:
            out.append(p)
    assert out == packets and reseq.held == 0 and reseq.ready == 0


def test_resequencer_holds_early_packets_and_refuses_repeats_and_far_jumps() -> None:
    reseq = Resequencer(max_held=4)
    reseq.push(1, b"b")
    reseq.push(2, b"c")
    assert reseq.pop() is None and reseq.held == 2 and reseq.reordered == 2
    reseq.push(0, b"a")
    assert [reseq.pop(), reseq.pop(), reseq.pop(), reseq.pop()] == [b"a", b"b", b"c", None]
    with pytest.raises(CarrierError):
        reseq.push(1, b"again")  # already delivered
    reseq.push(5, b"f")
    with pytest.raises(CarrierError):
        reseq.push(5, b"f")  # already held
    with pytest.raises(CarrierError):
        reseq.push(7, b"h")  # 4 ahead of 3: a peer skipping numbers, not lanes racing


def test_resequencer_numbers_wrap() -> None:
    reseq = Resequencer()
    reseq._next = 2**32 - 1
    reseq.push(0, b"second")
    reseq.push(2**32 - 1, b"first")
    assert [reseq.pop(), reseq.pop()] == [b"first", b"second"]


# ---- the asyncio carrier ------------------------------------------------------------------------------


class _LaneEnd:
    """One end of an in-memory ordered byte pipe that delivers each write `delay` seconds late."""

    def __init__(self, remote: str, inbox: asyncio.Queue[tuple[float, bytes]],
                 outbox: asyncio.Queue[tuple[float, bytes]], delay: float) -> None:
        self.remote, self._inbox, self._outbox, self._delay = remote, inbox, outbox, delay
        self.written = 0
        self._rest = b""
        self.flowing = asyncio.Event()
        """Cleared: this end delivers nothing (a lane whose I2P stream waits on a retransmission)."""
        self.flowing.set()

    async def read(self, n: int = 65536) -> bytes:
        await self.flowing.wait()
        if not self._rest:
            due, data = await self._inbox.get()
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                return b""
            self._rest = data
        data, self._rest = self._rest[:n], self._rest[n:]
        return data

    async def write(self, data: bytes) -> None:
        self.written += len(data)
        await self._outbox.put((asyncio.get_running_loop().time() + self._delay, data))

    async def close(self) -> None:
        self._outbox.put_nowait((0.0, b""))


def _lanes(delays: list[float]) -> tuple[list[_LaneEnd], list[_LaneEnd]]:
    a, b = [], []
    for delay in delays:
        q1: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(4096)
        q2: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(4096)
        a.append(_LaneEnd("peer-b", q1, q2, delay))
        b.append(_LaneEnd("peer-a", q2, q1, delay))
    return a, b


CERT_A = RTCCertificate.generateCertificate()
CERT_B = RTCCertificate.generateCertificate()


async def _striped_pair(delays: list[float], receive_window: int = RECEIVE_WINDOW) -> tuple[
        list[_LaneEnd], list[_LaneEnd], StripedCarrier, StripedCarrier, RTCStream, RTCStream]:
    """Two connected RTCStreams over striped carriers on in-memory lanes; b advertises `receive_window`."""
    ends_a, ends_b = _lanes(delays)
    ca = StripedCarrier([(e, b"") for e in ends_a], stripe_bytes=4096)
    cb = StripedCarrier([(e, b"") for e in ends_b], stripe_bytes=4096)
    a = RTCStream(ca, remote="peer-b", certificate=CERT_A, remote_fingerprints=local_fingerprints(CERT_B),
                  dtls_server=True, initiator=True)
    b = RTCStream(cb, remote="peer-a", certificate=CERT_B, remote_fingerprints=local_fingerprints(CERT_A),
                  dtls_server=False, initiator=False, receive_window=receive_window)
    await asyncio.gather(a.start(20), b.start(20))
    return ends_a, ends_b, ca, cb, a, b


async def test_rtc_over_racing_lanes_is_bytes_identical_and_sctp_sees_no_loss() -> None:
    """Lanes 0-40 ms apart: packets arrive out of order all the time, yet DTLS/SCTP get them in order."""
    ends_a, ends_b, ca, cb, a, b = await _striped_pair([0.0, 0.04, 0.01, 0.03])
    data = os.urandom(3 * 1024 * 1024)
    writer = asyncio.ensure_future(a.write(data))
    got = bytearray()
    async with asyncio.timeout(120):
        while len(got) < len(data):
            chunk = await b.read()
            assert chunk, "stream ended early"
            got += chunk
        await writer
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert cb.reordered > 100, "the lanes did not race: the test proves nothing"
    assert all(e.written > len(data) // 8 for e in ends_a), "some lane carried (almost) nothing"
    sctp = a._sctp
    assert sctp is not None and all(c._sent_count == 1 for c in sctp._sent_queue)
    assert sctp._ssthresh >= 1024 * 1024, "SCTP took reordering for loss and halved its window"
    await a.close()
    assert await asyncio.wait_for(b.read(), 10) == b""
    await b.close()


async def test_a_stalled_lane_is_waited_for_not_taken_for_loss() -> None:
    """A lane that delivers nothing for longer than SCTP's retransmission timeout: SCTP resends nothing and
    keeps its window (aiortc alone would resend the whole flight and restart from one packet), and the bytes
    arrive identical once the lane flows again."""
    ends_a, ends_b, ca, cb, a, b = await _striped_pair([0.0, 0.01, 0.0, 0.01], receive_window=4 * 1024 * 1024)
    data = os.urandom(6 * 1024 * 1024)
    writer = asyncio.ensure_future(a.write(data))
    got = bytearray()
    stalled = False
    async with asyncio.timeout(120):
        while len(got) < len(data):
            chunk = await b.read()
            assert chunk, "stream ended early"
            got += chunk
            if not stalled and len(got) > len(data) // 3:
                stalled = True
                ends_b[1].flowing.clear()
                await asyncio.sleep(4.0)  # the RTO is 1 s here (its floor): several timeouts pass
                state = a.sctp_state()
                assert state is not None and state["stalls"] >= 1, "the lane never stalled SCTP"
                ends_b[1].flowing.set()
        await writer
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    state = a.sctp_state()
    assert state is not None
    assert state["ssthresh"] == 4 * 1024 * 1024, "SCTP took the stall for loss and cut its window"
    assert state["cwnd"] > 64 * 1024
    assert ca.dropped == 0
    await a.close()
    await b.close()


async def test_a_lane_closing_closes_the_carrier() -> None:
    ends_a, ends_b = _lanes([0.0, 0.0])
    ca = StripedCarrier([(e, b"") for e in ends_a])
    cb = StripedCarrier([(e, b"") for e in ends_b])
    await ca.send(b"hello")
    assert await asyncio.wait_for(cb.recv(), 5) == b"hello"
    await ends_a[1].close()  # lane 1 ends: what it held is gone, the order can never be restored
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(cb.recv(), 5)
    with pytest.raises(ConnectionError):
        await cb.send(b"more")
    await ca.close()
    await cb.close()


async def test_garbage_on_a_lane_closes_the_carrier() -> None:
    ends_a, ends_b = _lanes([0.0])
    cb = StripedCarrier([(e, b"") for e in ends_b])
    await ends_a[0].write(StreamFramer.encode(b"\0\0\0\5data"))  # number 5 before 0: fine, held
    await ends_a[0].write(StreamFramer.encode(b"\0\0\0\5data"))  # the same number again: refused
    with pytest.raises(ConnectionError, match="arrived twice"):
        await asyncio.wait_for(cb.recv(), 5)
    await cb.close()


async def test_lanes_that_join_later_carry_their_share_and_nothing_is_lost() -> None:
    """b starts on one lane of three (the side accepting lanes starts on the first to arrive): what a
    striped over the others waits, in order, until they join; b's own packets go over what it has."""
    ends_a, ends_b = _lanes([0.0, 0.01, 0.0])
    ca = StripedCarrier([(e, b"") for e in ends_a], stripe_bytes=64)
    cb = StripedCarrier([(ends_b[0], b"")], stripe_bytes=64)
    packets = [os.urandom(40) for _ in range(30)]  # ~2 packets a lane before the next
    for p in packets:
        await ca.send(p)
    assert await asyncio.wait_for(cb.recv(), 5) == packets[0]
    assert await asyncio.wait_for(cb.recv(), 5) == packets[1]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cb.recv(), 0.3)  # packet 2 is on lane 1, not joined yet
    for p in packets[:5]:
        await cb.send(p)  # one lane: all of it on lane 0
    assert [await asyncio.wait_for(ca.recv(), 5) for _ in range(5)] == packets[:5]
    stranger, _ = _lanes([0.0])
    stranger[0].remote = "peer-x"
    with pytest.raises(ValueError, match="peer-x"):
        cb.add_lane(stranger[0])  # a lane from another destination never joins
    assert cb.add_lane(ends_b[2]) and cb.add_lane(ends_b[1])  # in any order
    assert [await asyncio.wait_for(cb.recv(), 5) for _ in range(28)] == packets[2:]
    for p in packets:
        await cb.send(p)  # now over three lanes
    assert [await asyncio.wait_for(ca.recv(), 5) for _ in range(30)] == packets
    assert all(e.written for e in ends_b), "a joined lane carried nothing"
    await ca.close()
    await cb.close()
    assert not cb.add_lane(ends_b[1]), "a closed carrier took a lane"


class _HeldNet:
    """In-memory SAM streams between endpoints by .b32: a connect hands the far end to that endpoint's
    listener, except that the far ends of the connects numbered in `held` wait for `release` (lanes whose
    first packet is slow to cross I2P)."""

    def __init__(self) -> None:
        self.endpoints: dict[str, object] = {}
        self.release = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def connector(self, b32: str, held: frozenset[int] = frozenset()) -> object:
        net = self

        class Connector:
            def __init__(self) -> None:
                self.b32 = b32
                self.connects = 0

            async def connect(self, peer: str) -> _LaneEnd:
                q1: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(4096)
                q2: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(4096)
                near, far = _LaneEnd(peer, q1, q2, 0.0), _LaneEnd(b32, q2, q1, 0.0)
                hold = self.connects in held
                self.connects += 1

                async def deliver() -> None:
                    if hold:
                        await net.release.wait()
                    await net.endpoints[peer]._dispatch(far, None)  # type: ignore[attr-defined]
                net.tasks.append(asyncio.ensure_future(deliver()))
                return near
        return Connector()


async def test_an_offerer_starts_on_the_first_lane_and_the_rest_join_as_they_come() -> None:
    """Direct signaling over sam-stripe where only one of the answerer's lanes arrives: the connection is up
    and moves bytes on that lane; the other seven join when they come, the bytes arrive identical, and
    the offer leaves the endpoint's table once every lane is in."""
    from i2ptorrent.transport.sdp import CARRIER_STRIPE
    from i2ptorrent.transport.signaling import RTCConfig, RTCEndpoint

    net = _HeldNet()
    a_b32, b_b32 = "a" * 52 + ".b32.i2p", "b" * 52 + ".b32.i2p"
    config = RTCConfig(carriers=(CARRIER_STRIPE,), stripe_lanes=8, setup_timeout=20)
    a = RTCEndpoint(net.connector(a_b32), config=config, certificate=CERT_A)  # type: ignore[arg-type]
    b = RTCEndpoint(net.connector(b_b32, held=frozenset(range(1, 8))), config=config,  # type: ignore[arg-type]
                    certificate=CERT_B)
    net.endpoints = {a_b32: a, b_b32: b}
    try:
        async with asyncio.timeout(60):
            # a dials b with its offer (SIGNAL); b dials its 8 lanes back: lane 0 (the DTLS handshake's)
            # arrives, lanes 1-7 wait
            ra = await a.connect(b_b32)
            rb = await b.accept()
            carrier = ra.carrier
            assert isinstance(carrier, StripedCarrier) and carrier.lanes < 8, "the offerer waited for every lane"
            await rb.write(b"first")
            assert await ra.read() == b"first"
            data = os.urandom(512 * 1024)  # over every lane of b's: stuck behind lane 1 until it comes
            writer = asyncio.ensure_future(rb.write(data))
            await ra.write(b"up")
            assert await rb.read() == b"up"
            net.release.set()
            got = bytearray()
            while len(got) < len(data):
                chunk = await ra.read()
                assert chunk, "stream ended early"
                got += chunk
            await writer
        assert bytes(got) == data
        assert carrier.lanes == 8
        assert not a._offers, "the offer stayed in the table after its last lane came"
        await ra.close()
        await rb.close()
    finally:
        net.release.set()
        await a.close()
        await b.close()
        for t in net.tasks:
            t.cancel()
