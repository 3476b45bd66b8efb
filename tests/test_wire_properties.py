"""Property tests of the peer wire: random message sequences round-trip, and any split of the byte stream
gives the same events as the whole stream."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from i2ptorrent.wire import (
    AllowedFast, BitfieldReceived, BlockReceived, BlockRequested, Choke, ExtensionHandshake, HaveAll, HaveNone,
    HaveReceived, Interested, KeepAlive, MetadataRequested, NotInterested, PeerWire, Request, RequestCancelled,
    RequestRejected, Suggest, Unchoke,
)

INFO_HASH = hashlib.sha1(b"property torrent").digest()
NUM_PIECES, PIECE_LENGTH = 37, 65536
TOTAL = (NUM_PIECES - 1) * PIECE_LENGTH + 1000  # short last piece


def setup() -> tuple[PeerWire, PeerWire]:
    """Two connected wires, extensions exchanged, B unchoking A. Deterministic, so it can be repeated."""
    geo = dict(num_pieces=NUM_PIECES, piece_length=PIECE_LENGTH, total_length=TOTAL)
    a = PeerWire(INFO_HASH, b"A" * 20, **geo)
    b = PeerWire(INFO_HASH, b"B" * 20, **geo)
    for w in (a, b):
        w.send_handshake()
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    a.send_extension_handshake()
    b.send_extension_handshake()
    b.receive_data(a.data_to_send())
    b.send_unchoke()
    a.receive_data(b.data_to_send())
    return a, b


def piece_size(index: int) -> int:
    return TOTAL - index * PIECE_LENGTH if index == NUM_PIECES - 1 else PIECE_LENGTH


@st.composite
def block(draw) -> Request:
    index = draw(st.integers(0, NUM_PIECES - 1))
    size = piece_size(index)
    begin = draw(st.integers(0, size - 1))
    length = draw(st.integers(1, min(16384, size - begin)))
    return Request(index, begin, length)


index = st.integers(0, NUM_PIECES - 1)
op = st.one_of(
    st.tuples(st.sampled_from(["keepalive", "interested", "not_interested", "choke", "unchoke", "ext"])),
    st.tuples(st.sampled_from(["have", "suggest", "allowed_fast"]), index),
    st.tuples(st.just("metadata_request"), st.integers(0, 600)),
    st.tuples(st.just("request"), block()),
    st.tuples(st.just("cancel"), st.integers(0, 1000)),
    st.tuples(st.just("serve"), st.integers(0, 1000), st.binary(max_size=16)),
)
first = st.sampled_from(["none", "bitfield", "have_all", "have_none"])


def apply(a: PeerWire, b: PeerWire, first_msg: str, ops: list[tuple], bitfield: bytes) -> list[tuple[list, list]]:
    """Run ops from A's side (B answers 'serve'); return, per step, (events expected at B, events at A)."""
    steps = []
    if first_msg == "bitfield":
        a.send_bitfield(bitfield)
        steps.append(([BitfieldReceived(bitfield)], []))
    elif first_msg == "have_all":
        a.send_have_all()
        steps.append(([HaveAll()], []))
    elif first_msg == "have_none":
        a.send_have_none()
        steps.append(([HaveNone()], []))
    for o in ops:
        kind = o[0]
        at_b: list = []
        at_a: list = []
        if kind == "keepalive":
            a.send_keepalive()
            at_b = [KeepAlive()]
        elif kind == "interested":
            a.send_interested()
            at_b = [Interested()]
        elif kind == "not_interested":
            a.send_not_interested()
            at_b = [NotInterested()]
        elif kind == "choke":
            a.send_choke()
            at_b = [Choke(())]
        elif kind == "unchoke":
            a.send_unchoke()
            at_b = [Unchoke()]
        elif kind == "ext":
            a.send_extension_handshake(client="prop")
            at_b = [ExtensionHandshake({b"m": {b"ut_metadata": 3}, b"reqq": 250, b"v": b"prop"},
                                       {"ut_metadata": 3}, None, "prop")]
        elif kind in ("have", "suggest", "allowed_fast"):
            getattr(a, "send_" + kind)(o[1])
            at_b = [{"have": HaveReceived, "suggest": Suggest, "allowed_fast": AllowedFast}[kind](o[1])]
        elif kind == "metadata_request":
            a.send_metadata_request(o[1])
            at_b = [MetadataRequested(o[1])]
        elif kind == "request":
            if o[1] in a.our_requests:
                continue
            a.send_request(*o[1])
            at_b = [BlockRequested(*o[1])]
        elif kind == "cancel":
            if not a.our_requests:
                continue
            req = sorted(a.our_requests)[o[1] % len(a.our_requests)]
            a.send_cancel(*req)
            at_b = [RequestCancelled(*req)]
            at_a = [RequestRejected(*req)]  # fast is on: BEP 6 answers a cancel with a reject
        elif kind == "serve":
            if not b.peer_requests:
                continue
            req = sorted(b.peer_requests)[o[1] % len(b.peer_requests)]
            data = (o[2] * (req.length // max(1, len(o[2])) + 1))[: req.length] if o[2] else bytes(req.length)
            assert b.send_piece(req.index, req.begin, data)
            at_a = [BlockReceived(req.index, req.begin, data)]
        steps.append((at_b, at_a))
    return steps


bitfields = st.binary(min_size=5, max_size=5).map(lambda bf: bf[:4] + bytes([bf[4] & 0xE0]))


@settings(max_examples=150, deadline=None, database=None)
@given(first, st.lists(op, max_size=40), bitfields)
def test_random_sequences_round_trip(first_msg, ops, bitfield):
    a, b = setup()
    expected = apply(a, b, first_msg, ops, bitfield)
    got_b = b.receive_data(a.data_to_send())
    got_a = a.receive_data(b.data_to_send())
    assert got_b == [e for at_b, _ in expected for e in at_b]
    assert got_a == [e for _, at_a in expected for e in at_a]
    assert not a.our_requests ^ {r for r in b.peer_requests}  # both sides agree what is outstanding


@settings(max_examples=150, deadline=None, database=None)
@given(first, st.lists(op, max_size=40), bitfields, st.lists(st.integers(0, 200_000), max_size=30))
def test_any_split_of_the_stream_gives_the_same_events(first_msg, ops, bitfield, cuts):
    a, b = setup()
    apply(a, b, first_msg, ops, bitfield)
    stream = a.data_to_send()
    whole = setup()[1].receive_data(stream)
    receiver = setup()[1]
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[i:j] for i, j in zip([0, *points], [*points, len(stream)])]
    split_events = []
    for chunk in pieces:
        split_events += receiver.receive_data(chunk)
        assert len(receiver._in) <= 4 + 2 + 16384 + 1024  # never more than one maximal message buffered
    assert split_events == whole
