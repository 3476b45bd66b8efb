"""The sans-I/O carrier logic: stream framing, and the datagram link's sequencing, reorder buffer,
duplicate drop, batching and pacing (time passed in)."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2ptorrent.transport.carrier import (
    HEADER_SIZE,
    MAX_PACKET,
    CarrierError,
    DatagramLink,
    Impairment,
    LinkConfig,
    StreamFramer,
    parse_header,
)

CID = b"12345678"


def test_stream_framing_survives_any_split() -> None:
    packets = [os.urandom(random.randint(1, MAX_PACKET)) for _ in range(50)]
    wire = b"".join(StreamFramer.encode(p) for p in packets)
    framer = StreamFramer()
    got = []
    pos = 0
    rng = random.Random(4)
    while pos < len(wire):
        step = rng.randint(1, 3000)
        framer.feed(wire[pos : pos + step])
        pos += step
        while (p := framer.next_packet()) is not None:
            got.append(p)
    assert got == packets


def test_stream_framing_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError):
        StreamFramer.encode(b"")
    with pytest.raises(ValueError):
        StreamFramer.encode(b"x" * (MAX_PACKET + 1))
    framer = StreamFramer()
    framer.feed(b"\xff\xff" + b"x" * 10)
    with pytest.raises(CarrierError, match="bad frame length"):
        framer.next_packet()


def test_stream_framer_buffer_is_bounded() -> None:
    framer = StreamFramer(max_buffer=1000)
    framer.feed(b"\x00\x05" * 500)
    assert not framer.wants_data()
    with pytest.raises(CarrierError, match="overflow"):
        framer.feed(b"x" * 70000)


def _pair(**kw: object) -> tuple[DatagramLink, DatagramLink]:
    cfg = LinkConfig(**kw)  # type: ignore[arg-type]
    return DatagramLink(CID, cfg), DatagramLink(CID, LinkConfig(**kw))  # type: ignore[arg-type]


def _sent_one_by_one(a: DatagramLink, count: int) -> list[bytes]:
    """`count` small packets, each flushed into a datagram of its own (so each can be lost alone)."""
    ds: list[bytes] = []
    for i in range(count):
        a.queue_packet(bytes([i]) * 10)
        a.flush()
        ds += _drain(a, 0.0)
    return ds


def _drain(link: DatagramLink, now: float) -> list[bytes]:
    out = []
    while True:
        d, _ = link.next_datagram(now)
        if d is None:
            return out
        out.append(d)


def _packets(link: DatagramLink) -> list[bytes]:
    out = []
    while (p := link.pop_packet()) is not None:
        out.append(p)
    return out


def test_batching_packs_records_up_to_the_size_limit() -> None:
    a, _ = _pair(max_datagram=4096, rate=1e9, burst=10**9)
    packets = [os.urandom(1200) for _ in range(10)]
    for p in packets:
        a.queue_packet(p)
    a.flush()
    datagrams = _drain(a, 0.0)
    assert len(datagrams) == 4  # 3 records of 1202 bytes per 4096-byte datagram, 3+3+3+1
    assert all(len(d) <= 4096 for d in datagrams)
    assert [parse_header(d).seq for d in datagrams] == [0, 1, 2, 3]


def test_in_order_delivery_reorder_and_duplicates() -> None:
    a, b = _pair(rate=1e9, burst=10**9)
    packets = [bytes([i]) * 100 for i in range(6)]
    datagrams = []
    for p in packets:
        a.queue_packet(p)
        a.flush()
        datagrams += _drain(a, 0.0)
    assert len(datagrams) == 6
    order = [datagrams[i] for i in (1, 0, 0, 3, 2, 2, 5, 4, 1)]
    for d in order:
        b.receive_datagram(d, 0.0)
    assert _packets(b) == packets
    assert b.stats.duplicates == 3 and b.stats.reordered == 3


def test_gap_is_given_up_after_the_reorder_timeout() -> None:
    a, b = _pair(rate=1e9, burst=10**9, reorder_timeout=0.1, nack_delay=5.0, initial_rtt=0.0)
    ds = _sent_one_by_one(a, 4)
    b.receive_datagram(ds[0], 0.0)
    b.receive_datagram(ds[2], 1.0)
    b.receive_datagram(ds[3], 1.01)
    assert _packets(b) == [b"\x00" * 10]
    assert b.next_deadline() == pytest.approx(1.1)
    b.on_timer(1.05)
    assert _packets(b) == []
    b.on_timer(1.1)
    assert _packets(b) == [b"\x02" * 10, b"\x03" * 10]
    assert b.stats.gaps_skipped == 1
    b.receive_datagram(ds[1], 1.2)  # too late: dropped, never delivered out of order
    assert _packets(b) == [] and b.stats.duplicates == 1


def test_gap_is_nacked_and_repaired_from_the_sender_store() -> None:
    a, b = _pair(rate=1e9, burst=10**9, nack_delay=0.02, nack_interval=0.1, reorder_timeout=1.0)
    ds = _sent_one_by_one(a, 5)
    for i in (0, 3, 4):  # 1 and 2 lost
        b.receive_datagram(ds[i], 0.0)
    b.on_timer(0.01)
    assert _drain(b, 0.01) == []  # could still be reordering
    assert b.next_deadline() == pytest.approx(0.02)
    b.on_timer(0.02)
    nacks = _drain(b, 0.02)
    assert len(nacks) == 1 and b.stats.nacks_sent == 1
    b.on_timer(0.05)
    assert _drain(b, 0.05) == []  # not asked again before nack_interval
    a.receive_datagram(nacks[0], 0.03)
    repairs = _drain(a, 0.03)
    assert repairs == [ds[1], ds[2]] and a.stats.repaired == 2
    for d in repairs:
        b.receive_datagram(d, 0.04)
    assert _packets(b) == [bytes([i]) * 10 for i in range(5)]
    assert b.stats.gaps_skipped == 0 and b.next_deadline() is None


def test_a_repair_one_i2p_round_trip_away_still_fills_its_gap() -> None:
    """At 3 hops a NACK's repair comes back 1-3 s later. The 0-hop timeouts (give up after 0.5 s, ask again
    every 0.15 s) gave every such gap up and sent each NACK ten times; SCTP then saw a loss and its window
    collapsed for the rest of the transfer. The link waits a few round trips, measured by the repairs."""
    a, b = _pair(rate=1e9, burst=10**9)
    ds = _sent_one_by_one(a, 6)
    b.receive_datagram(ds[0], 0.0)
    b.receive_datagram(ds[2], 0.0)  # 1 lost
    b.on_timer(0.02)
    first = _drain(b, 0.02)
    assert len(first) == 1  # NACKed at once: a gap this old is not reordering
    for now in (0.5, 1.0, 1.2):
        b.on_timer(now)
        assert _drain(b, now) == [] and b.stats.gaps_skipped == 0  # waiting: the repair cannot be back yet
    a.receive_datagram(first[0], 0.75)
    repair = _drain(a, 0.75)
    b.receive_datagram(repair[0], 1.5)
    assert _packets(b) == [bytes([i]) * 10 for i in range(3)] and b.stats.gaps_skipped == 0
    assert b.rtt == pytest.approx(1.48)
    # the measured round trip now paces the next gap: asked again only after 1.2 round trips
    b.receive_datagram(ds[4], 2.0)  # 3 lost
    b.on_timer(2.02)
    assert len(_drain(b, 2.02)) == 1
    assert b.next_deadline() == pytest.approx(2.02 + 1.2 * 1.48)
    b.on_timer(2.02 + 1.2 * 1.48)
    assert b.stats.nacks_sent == 3 and b.stats.gaps_skipped == 0
    b.on_timer(2.0 + 3 * 1.48)  # three round trips without a repair: given up
    assert b.stats.gaps_skipped == 1 and _packets(b) == [bytes([4]) * 10]


def test_round_trip_estimate_falls_slowly_and_is_capped() -> None:
    _, b = _pair(initial_rtt=1.0, max_rtt=5.0)
    b._rtt_sample(0.2)  # a late original rather than a repair: only a slow fall
    assert b.rtt == pytest.approx(0.9)
    b._rtt_sample(60.0)  # a peer that sits on NACKs cannot make us hold datagrams for a minute
    assert b.rtt == 5.0


def test_sender_store_is_bounded() -> None:
    a, _ = _pair(retain_bytes=10_000)
    for _ in range(50):
        a.queue_packet(b"r" * 1000)
        a.flush()
    assert a._retained_bytes <= 10_000 and len(a._retained) == 9


def test_arrival_beyond_the_window_skips_the_gap() -> None:
    a, b = _pair(rate=1e9, burst=10**9, reorder_window=4)
    ds = []
    for i in range(8):
        a.queue_packet(bytes([i]))
        a.flush()
        ds += _drain(a, 0.0)
    for i in (1, 2, 3, 6):
        b.receive_datagram(ds[i], 0.0)
    assert _packets(b) == [b"\x01", b"\x02", b"\x03"]  # seq 0 given up when 6 arrived (window 4)
    b.receive_datagram(ds[4], 0.0)
    b.receive_datagram(ds[5], 0.0)
    assert _packets(b) == [b"\x04", b"\x05", b"\x06"]


def test_pacing_spaces_datagrams_by_rate() -> None:
    a, _ = _pair(rate=10_000.0, burst=5000, max_datagram=4096)
    for _ in range(6):
        a.queue_packet(b"x" * 2000)
        a.flush()
    first = _drain(a, 0.0)
    size = len(first[0])
    assert len(first) == 2 and size == 2000 + 2 + HEADER_SIZE  # two fit the 5000-byte bucket
    d, wait = a.next_datagram(0.0)
    assert d is None and wait == pytest.approx((size - (5000 - 2 * size)) / 10_000.0)
    assert a.next_datagram(wait)[0] is not None
    assert len(_drain(a, wait + 10.0)) == 2  # a full bucket again, never more than `burst` at once
    assert len(_drain(a, wait + 20.0)) == 1


def test_outbox_is_bounded_for_backpressure() -> None:
    a, _ = _pair(max_outbox=3, rate=1.0, burst=1)
    n = 0
    while a.can_queue():
        a.queue_packet(b"y" * 100)
        a.flush()
        n += 1
    assert n == 3 and a.outbox_len == 3


def test_malformed_and_foreign_datagrams_are_counted_and_dropped() -> None:
    _, b = _pair()
    for junk in (b"", b"\x01", os.urandom(40), b"\x09" + b"\x01" + CID + b"\0\0\0\0"):
        b.receive_datagram(junk, 0.0)
    other = DatagramLink(b"87654321")
    other.queue_packet(b"zz")
    other.flush()
    b.receive_datagram(other.next_datagram(0.0)[0], 0.0)  # type: ignore[arg-type]
    assert b.pop_packet() is None and b.stats.malformed == 5


def test_close_and_ping() -> None:
    a, b = _pair(ping_interval=10.0, idle_timeout=30.0)
    ping, _ = a.next_datagram(10.0)
    assert ping is not None and len(ping) == HEADER_SIZE
    b.receive_datagram(ping, 10.0)
    assert not b.idle_expired(39.0) and b.idle_expired(41.0)
    b.receive_datagram(a.close(), 11.0)
    assert b.peer_closed
    with pytest.raises(ConnectionError):
        a.queue_packet(b"x")


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10**6), loss=st.floats(0, 0.3), dup=st.floats(0, 0.3), swap=st.floats(0, 0.3))
def test_impaired_link_delivers_in_order_without_duplicates(seed: int, loss: float, dup: float, swap: float) -> None:
    a, b = _pair(rate=1e9, burst=10**9, max_datagram=4096)
    imp = Impairment(loss, dup, swap, seed=seed)
    sent = [i.to_bytes(4, "big") * 10 for i in range(300)]
    rng = random.Random(seed)
    now = 0.0
    for p in sent:
        a.queue_packet(p)
        if rng.random() < 0.3:
            a.flush()
            for d in _drain(a, now):
                for x in imp.apply(d):
                    b.receive_datagram(x, now)
        now += 0.001
        b.on_timer(now)
    a.flush()
    for d in _drain(a, now):
        for x in imp.apply(d):
            b.receive_datagram(x, now)
    for x in imp.release():
        b.receive_datagram(x, now)
    b.on_timer(now + 10.0)
    got = _packets(b)
    index = [sent.index(p) for p in got]
    assert index == sorted(set(index))  # strictly increasing: in order, no duplicates
    if loss == 0.0:
        assert got == sent
