"""The peer wire tested with bytes alone: two PeerWire objects talking, and hand-made hostile bytes."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import bencodepy
import libtorrent as lt
import pytest

from i2ptorrent.wire import (
    AllowedFast, BitfieldReceived, BlockReceived, BlockRequested, Choke, ExtensionHandshake, HandshakeReceived,
    HaveAll, HaveNone, HaveReceived, Interested, KeepAlive, LocalProtocolError, MetadataAssembler, MetadataError,
    MetadataPieceReceived, MetadataRejected, MetadataRequested, NotInterested, PeerWire, ProtocolError, Request,
    RequestCancelled, RequestRejected, Suggest, Unchoke, bdecode, bencode, metadata_piece, metadata_piece_count,
    peek_info_hash,
)

INFO_HASH = hashlib.sha1(b"test torrent").digest()
ID_A, ID_B = b"-AA0001-" + b"a" * 12, b"-BB0001-" + b"b" * 12
# 3 pieces of 32 KiB, the last one short (4464 bytes)
GEOMETRY = dict(num_pieces=3, piece_length=32768, total_length=2 * 32768 + 4464)


def make(peer_id: bytes = ID_A, **kw) -> PeerWire:
    return PeerWire(INFO_HASH, peer_id, **{**GEOMETRY, **kw})


def pump(src: PeerWire, dst: PeerWire) -> list:
    return dst.receive_data(src.data_to_send())


def pair(fast_a: bool = True, fast_b: bool = True, **kw) -> tuple[PeerWire, PeerWire]:
    a, b = make(ID_A, fast=fast_a, **kw), make(ID_B, fast=fast_b, **kw)
    a.send_handshake()
    b.send_handshake()
    pump(a, b)
    pump(b, a)
    return a, b


def frame(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", len(payload) + 1, msg_id) + payload


def after_handshake(wire: PeerWire, fast: bool = True, ext: bool = True) -> None:
    """Feed `wire` a hand-made handshake from ID_B."""
    reserved = bytearray(8)
    if ext:
        reserved[5] |= 0x10
    if fast:
        reserved[7] |= 0x04
    wire.receive_data(b"\x13BitTorrent protocol" + bytes(reserved) + INFO_HASH + ID_B)


def raw(wire_fast: bool = True, **kw) -> PeerWire:
    wire = make(ID_A, **kw)
    wire.send_handshake()
    after_handshake(wire, fast=wire_fast)
    wire.data_to_send()
    return wire


# ---------------------------------------------------------------- handshake


def test_handshake_bytes_are_bep3_with_extension_and_fast_bits_and_never_dht():
    a = make()
    a.send_handshake()
    data = a.data_to_send()
    assert data == b"\x13BitTorrent protocol" + bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04]) + INFO_HASH + ID_A
    assert not data[27] & 0x01  # DHT bit


@pytest.mark.parametrize("order", ["a_first", "b_first", "simultaneous"])
def test_handshake_either_order(order):
    a, b = make(ID_A), make(ID_B)
    if order == "a_first":
        a.send_handshake()
        ev_b = pump(a, b)
        b.send_handshake()
        ev_a = pump(b, a)
    elif order == "b_first":
        b.send_handshake()
        ev_a = pump(b, a)
        a.send_handshake()
        ev_b = pump(a, b)
    else:
        a.send_handshake()
        b.send_handshake()
        ev_a, ev_b = pump(b, a), pump(a, b)
    assert ev_a == [HandshakeReceived(ID_B, bytes([0, 0, 0, 0, 0, 0x10, 0, 4]), True, True)]
    assert ev_b == [HandshakeReceived(ID_A, bytes([0, 0, 0, 0, 0, 0x10, 0, 4]), True, True)]


def test_handshake_byte_by_byte_and_messages_in_the_same_chunk():
    a, b = make(ID_A), make(ID_B)
    a.send_handshake()
    a.send_interested()
    data = a.data_to_send()
    events = []
    for i in range(len(data)):
        events += b.receive_data(data[i : i + 1])
    assert [type(e) for e in events] == [HandshakeReceived, Interested]
    assert b.peer_interested


def test_peek_info_hash_routes_before_a_wire_exists():
    a = make()
    a.send_handshake()
    data = a.data_to_send()
    assert peek_info_hash(data[:47]) is None
    assert peek_info_hash(data[:48]) == INFO_HASH
    assert peek_info_hash(data) == INFO_HASH
    with pytest.raises(ProtocolError, match="protocol string"):
        peek_info_hash(b"GET / HTTP/1.1\r\n")


def test_wrong_info_hash_is_refused_as_soon_as_it_arrives():
    other = PeerWire(hashlib.sha1(b"other").digest(), ID_B)
    other.send_handshake()
    a = make()
    with pytest.raises(ProtocolError, match="different info-hash"):
        a.receive_data(other.data_to_send()[:48])


def test_garbage_instead_of_handshake_and_self_connection():
    with pytest.raises(ProtocolError, match="protocol string"):
        make().receive_data(b"\x13BitTorrent protocoX")
    a = make()
    a.send_handshake()
    with pytest.raises(ProtocolError, match="ourselves"):
        a.receive_data(a.data_to_send())


def test_dead_after_protocol_error():
    a = make()
    with pytest.raises(ProtocolError):
        a.receive_data(b"junk")
    with pytest.raises(ProtocolError, match="already failed"):
        a.receive_data(b"\x13")
    with pytest.raises(LocalProtocolError):
        a.send_handshake()


def test_sending_before_handshake_is_local_misuse():
    with pytest.raises(LocalProtocolError):
        make().send_interested()


# ---------------------------------------------------------------- every message round-trips


def test_core_messages_round_trip():
    a, b = pair(fast_a=False)
    assert not a.fast and not b.fast
    a.send_bitfield(bytes([0b10100000]))
    a.send_keepalive()
    a.send_interested()
    a.send_not_interested()
    a.send_have(1)
    a.send_unchoke()
    a.send_choke()
    assert pump(a, b) == [BitfieldReceived(bytes([0b10100000])), KeepAlive(), Interested(), NotInterested(),
                          HaveReceived(1), Unchoke(), Choke(())]
    assert b.peer_choking and not b.peer_interested
    b.send_interested()
    a.send_unchoke()
    pump(b, a)
    pump(a, b)
    b.send_request(0, 16384, 16384)
    b.send_request(2, 0, 4464)
    b.send_request(1, 0, 16384)
    b.send_cancel(1, 0, 16384)
    assert pump(b, a) == [BlockRequested(0, 16384, 16384), BlockRequested(2, 0, 4464),
                          BlockRequested(1, 0, 16384), RequestCancelled(1, 0, 16384)]
    block = bytes(range(256)) * 64
    assert a.send_piece(0, 16384, block) is True
    assert a.send_piece(2, 0, b"z" * 4464) is True
    assert a.send_piece(1, 0, block) is False  # cancelled: nothing sent
    assert pump(a, b) == [BlockReceived(0, 16384, block), BlockReceived(2, 0, b"z" * 4464)]
    assert not b.our_requests and not a.peer_requests


def test_piece_message_bytes():
    a, b = pair()
    a.send_unchoke()
    pump(a, b)
    b.send_request(2, 16, 4)
    assert b.data_to_send() == b"\x00\x00\x00\x0d\x06" + struct.pack(">III", 2, 16, 4)
    b.receive_data(b"")  # nothing happens
    a.receive_data(b"\x00\x00\x00\x0d\x06" + struct.pack(">III", 2, 16, 4))
    a.send_piece(2, 16, b"abcd")
    assert a.data_to_send() == b"\x00\x00\x00\x0d\x07" + struct.pack(">II", 2, 16) + b"abcd"


def test_fast_messages_round_trip():
    a, b = pair()
    assert a.fast and b.fast
    a.send_have_all()
    a.send_suggest(2)
    a.send_allowed_fast(1)
    assert pump(a, b) == [HaveAll(), Suggest(2), AllowedFast(1)]
    # allowed-fast: request while choked, and the peer may serve it while choking
    b.send_request(1, 0, 16384)
    b.send_request(1, 16384, 16384)
    assert pump(b, a) == [BlockRequested(1, 0, 16384), BlockRequested(1, 16384, 16384)]
    assert a.send_reject(1, 16384, 16384) is True
    assert a.send_piece(1, 0, b"x" * 16384)
    assert pump(a, b) == [RequestRejected(1, 16384, 16384), BlockReceived(1, 0, b"x" * 16384)]
    b2 = pair()[1]
    b2.send_have_none()
    assert pair()[0].receive_data(b2.data_to_send()) == [HaveNone()]


def test_fast_request_while_choked_is_rejected_automatically_and_cancel_rejects():
    a, b = pair()
    a.send_allowed_fast(0)
    pump(a, b)
    b.send_request(0, 0, 16384)
    pump(b, a)
    b.send_request(0, 16384, 16384)
    b.send_cancel(0, 16384, 16384)
    assert pump(b, a) == [BlockRequested(0, 16384, 16384), RequestCancelled(0, 16384, 16384)]
    # the cancel got its reject (BEP 6); the allowed-fast request is still queued
    assert pump(a, b) == [RequestRejected(0, 16384, 16384)]
    # a non-allowed-fast request while choked is rejected by the wire itself
    a.send_unchoke()
    pump(a, b)
    b.send_request(2, 0, 100)
    a.send_choke()  # crosses with the request; voids nothing allowed-fast
    pump(a, b)
    assert pump(b, a) == []
    assert pump(a, b) == [RequestRejected(2, 0, 100)]
    assert a.peer_requests == {Request(0, 0, 16384)}


def test_choke_without_fast_drops_our_requests_and_later_blocks_are_errors():
    a, b = pair(fast_a=False)
    a.send_unchoke()
    pump(a, b)
    b.send_request(0, 0, 16384)
    b.send_request(2, 0, 4464)
    pump(b, a)
    voided = a.send_choke()
    assert voided == [Request(0, 0, 16384), Request(2, 0, 4464)]
    assert a.send_piece(0, 0, b"x" * 16384) is False
    assert pump(a, b) == [Choke((Request(0, 0, 16384), Request(2, 0, 4464)))]
    with pytest.raises(LocalProtocolError, match="choking"):
        b.send_request(0, 0, 16384)
    with pytest.raises(ProtocolError, match="nobody asked"):
        b.receive_data(frame(7, struct.pack(">II", 0, 0) + b"x" * 16384))


def test_block_after_our_cancel_is_accepted_and_marked():
    a, b = pair()
    a.send_unchoke()
    pump(a, b)
    b.send_request(0, 0, 10)
    pump(b, a)
    a.send_piece(0, 0, b"0123456789")  # already on its way when the cancel is sent
    b.send_cancel(0, 0, 10)
    pump(b, a)
    assert pump(a, b) == [BlockReceived(0, 0, b"0123456789", cancelled=True)]


def test_fast_bit_negotiation():
    for fa in (False, True):
        for fb in (False, True):
            a, b = pair(fast_a=fa, fast_b=fb)
            assert a.fast == b.fast == (fa and fb)
            if not (fa and fb):
                with pytest.raises(LocalProtocolError, match="fast"):
                    a.send_have_all()
                with pytest.raises(ProtocolError, match="fast extension"):
                    a.receive_data(frame(14))


def test_extension_protocol_only_when_both_set_it():
    a, b = make(ID_A, extensions=False), make(ID_B)
    a.send_handshake()
    b.send_handshake()
    pump(a, b)
    pump(b, a)
    with pytest.raises(LocalProtocolError):
        b.send_extension_handshake()
    with pytest.raises(ProtocolError, match="extension protocol"):
        a.receive_data(frame(20, b"\x00de"))


def test_extension_handshake_advertises_ut_metadata_and_size_not_pex():
    a, b = pair(metadata_size=12345)
    a.send_extension_handshake(client="i2ptorrent 0.1")
    (event,) = pump(a, b)
    assert isinstance(event, ExtensionHandshake)
    assert event.extensions == {"ut_metadata": 3}
    assert event.metadata_size == 12345 and event.client == "i2ptorrent 0.1"
    assert b"ut_pex" not in bencode(event.data)
    assert b.peer_metadata_size == 12345


# ---------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    "message, match",
    [
        (frame(6, struct.pack(">III", 0, 0, 16385)), "length 16385"),  # request above 16 KiB
        (frame(6, struct.pack(">III", 0, 0, 0)), "length 0"),
        (frame(6, struct.pack(">III", 0, 32768 - 100, 101)), "past the end of piece 0"),
        (frame(6, struct.pack(">III", 2, 4000, 465)), "past the end of piece 2"),  # short last piece
        (frame(6, struct.pack(">III", 3, 0, 100)), "piece 3 of a 3-piece"),
        (frame(4, struct.pack(">I", 3)), "piece 3 of a 3-piece"),
        (frame(5, b"\x00\x00"), "bitfield of length 3"),  # one byte too many
        (frame(5, b""), "bitfield of length 1"),
        (frame(5, b"\x01"), "spare bits"),
        (frame(7, struct.pack(">II", 0, 0) + b"x" * 16384), "nobody asked"),
        (frame(16, struct.pack(">III", 0, 0, 16384)), "never made"),
        (frame(0, b"x"), "choke of length 2"),
        (frame(6, struct.pack(">III", 0, 0, 16) + b"x"), "request of length 14"),
        (frame(20, b"\x00" + b"d" * 17500), "extended of length"),
        (frame(20, b"\x00li1ee"), "not a dict"),
        (frame(20, b"\x00d1:mi1ee"), "'m' is not a dict"),
        (frame(20, b"\x00d13:metadata_sizei10000001ee"), "metadata_size"),
        (frame(20, b"\x00d1:md11:ut_metadatai256eee"), "invalid id"),
        (frame(20, b"\x00d1:md11:ut_metadatai3eee" + b"x"), "trailing"),
        (frame(20, b"\x03d8:msg_typei1e5:piecei0e10:total_sizei5ee12345"), "unrequested"),
        (frame(20, b"\x03d8:msg_typei9e5:piecei0ee"), "msg_type"),
        (frame(20, b"\x03d8:msg_typei0e5:piecei0eexx"), "trailing"),
        (frame(20, b"\x03d8:msg_typei0e5:piecei-1ee"), "out of range"),
        (b"\xff\xff\xff\xff\x07", "piece of length 4294967295"),
    ],
)
def test_bounds_violations_are_protocol_errors(message, match):
    wire = raw()
    with pytest.raises(ProtocolError, match=match):
        wire.receive_data(message)
    assert wire.error is not None


def test_oversized_header_fails_before_its_body_arrives():
    wire = raw()
    with pytest.raises(ProtocolError, match="piece of length 16394"):
        wire.receive_data(struct.pack(">IB", 16394, 7))  # 16 KiB block + 1 byte, header only


def test_buffer_never_holds_more_than_one_maximal_message():
    wire = raw()
    wire.send_unchoke()
    wire.receive_data(frame(1))
    wire.send_request(0, 0, 16384)
    body = frame(7, struct.pack(">II", 0, 0) + b"y" * 16384)
    events = []
    for i in range(0, len(body), 1000):
        events += wire.receive_data(body[i : i + 1000])
        assert len(wire._in) <= len(body)
    assert events == [BlockReceived(0, 0, b"y" * 16384)]
    assert len(wire._in) == 0


def test_bitfield_only_once_and_before_any_have():
    wire = raw()
    assert wire.receive_data(frame(2) + frame(1) + frame(14)) == [Interested(), Unchoke(), HaveAll()]
    with pytest.raises(ProtocolError, match="after a bitfield"):
        wire.receive_data(frame(5, b"\x80"))
    wire = raw()
    wire.receive_data(frame(4, struct.pack(">I", 1)))
    with pytest.raises(ProtocolError, match="after a bitfield / have_all / have_none / have"):
        wire.receive_data(frame(15))
    wire = make()
    wire.send_handshake()
    wire.send_interested()
    with pytest.raises(LocalProtocolError, match="before other messages"):
        wire.send_bitfield(b"\x00")


def test_events_before_a_violation_are_kept_on_the_error():
    wire = raw()
    with pytest.raises(ProtocolError) as info:
        wire.receive_data(frame(2) + frame(4, struct.pack(">I", 0)) + frame(4, struct.pack(">I", 99)))
    assert info.value.events == [Interested(), HaveReceived(0)]


def test_peer_request_flood_is_bounded():
    wire = raw()
    wire.send_unchoke()
    flood = b"".join(frame(6, struct.pack(">III", 0, i, 1)) for i in range(600))
    with pytest.raises(ProtocolError, match="outstanding requests"):
        wire.receive_data(flood)


def test_unknown_messages_and_port_and_unknown_extensions_are_ignored():
    wire = raw()
    assert wire.receive_data(frame(9, b"\x1a\xe1") + frame(42, b"hello") + frame(20, b"\x07anything")) == []


# ---------------------------------------------------------------- magnet: geometry later


def test_bitfield_before_geometry_checked_by_set_geometry():
    wire = PeerWire(INFO_HASH, ID_A)
    wire.send_handshake()
    after_handshake(wire)
    assert wire.receive_data(frame(5, b"\xff\xe0") + frame(4, struct.pack(">I", 10))) == [
        BitfieldReceived(b"\xff\xe0"), HaveReceived(10)]
    wire.set_geometry(11, 16384, 11 * 16384 - 5)  # fits: 11 pieces, 2 bytes, spare bits zero
    with pytest.raises(ProtocolError, match="piece 11 of a 11-piece"):
        wire.receive_data(frame(4, struct.pack(">I", 11)))

    for pieces, match in [(9, "spare bits"), (17, "expected 3"),
                          (10, "spare bits")]:
        wire = PeerWire(INFO_HASH, ID_A)
        wire.send_handshake()
        after_handshake(wire)
        wire.receive_data(frame(5, b"\xff\xe0"))
        with pytest.raises(ProtocolError, match=match):
            wire.set_geometry(pieces, 16384, pieces * 16384)

    wire = PeerWire(INFO_HASH, ID_A)
    wire.send_handshake()
    after_handshake(wire)
    wire.receive_data(frame(15) + frame(4, struct.pack(">I", 50)))
    with pytest.raises(ProtocolError, match="piece 50"):
        wire.set_geometry(50, 16384, 50 * 16384)


def test_requests_before_geometry_are_rejected_not_served():
    wire = PeerWire(INFO_HASH, ID_A)
    wire.send_handshake()
    after_handshake(wire)
    wire.data_to_send()
    wire.send_unchoke()
    wire.data_to_send()
    assert wire.receive_data(frame(6, struct.pack(">III", 0, 0, 16384))) == []
    assert wire.data_to_send() == frame(16, struct.pack(">III", 0, 0, 16384))


# ---------------------------------------------------------------- ut_metadata with a real torrent


@pytest.fixture(scope="module")
def real_info(tmp_path_factory) -> tuple[bytes, lt.torrent_info]:
    """A libtorrent-made info dict larger than one 16 KiB metadata piece."""
    root: Path = tmp_path_factory.mktemp("meta")
    (root / "payload.bin").write_bytes(hashlib.sha256(b"seed").digest() * (17 * 1024 * 1024 // 32 + 5))
    ct = lt.create_torrent(lt.list_files(str(root / "payload.bin")), 16384, lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(root))
    ti = lt.torrent_info(lt.bencode(ct.generate()))
    return bytes(ti.info_section()), ti


def metadata_pair(info: bytes, ti: lt.torrent_info) -> tuple[PeerWire, PeerWire]:
    info_hash = bytes.fromhex(str(ti.info_hashes().v1))
    seeder = PeerWire(info_hash, ID_A, num_pieces=ti.num_pieces(), piece_length=ti.piece_length(),
                      total_length=ti.total_size(), metadata_size=len(info))
    leecher = PeerWire(info_hash, ID_B)  # a magnet: nothing known but the info-hash
    for w in (seeder, leecher):
        w.send_handshake()
    pump(seeder, leecher)
    pump(leecher, seeder)
    seeder.send_extension_handshake()
    leecher.send_extension_handshake()
    (ext,) = pump(seeder, leecher)
    pump(leecher, seeder)
    assert ext.metadata_size == len(info)
    return seeder, leecher


def serve(seeder: PeerWire, leecher: PeerWire, info: bytes, tamper: bool = False) -> list:
    for event in pump(leecher, seeder):
        assert isinstance(event, MetadataRequested)
        data = metadata_piece(info, event.piece)
        if tamper and event.piece == 1:
            data = data[:-1] + bytes([data[-1] ^ 1])
        seeder.send_metadata_data(event.piece, data)
    return pump(seeder, leecher)


def test_ut_metadata_fetch_of_a_libtorrent_info_dict_is_verified(real_info):
    info, ti = real_info
    assert metadata_piece_count(len(info)) == 2
    seeder, leecher = metadata_pair(info, ti)
    assembler = MetadataAssembler(leecher.info_hash, leecher.peer_metadata_size)
    for piece in assembler.missing():
        leecher.send_metadata_request(piece)
    events = serve(seeder, leecher, info)
    assert [type(e) for e in events] == [MetadataPieceReceived] * 2
    for e in events:
        assembler.add(e.piece, e.data, e.total_size)
    got = assembler.result()
    assert got == info and hashlib.sha1(got).digest() == leecher.info_hash
    # what the engine then does: libtorrent accepts it, and the wire learns the geometry
    ti2 = lt.torrent_info(bencodepy.encode({b"info": bencodepy.decode(got)}))
    assert ti2.info_hashes().v1 == ti.info_hashes().v1
    leecher.set_geometry(ti2.num_pieces(), ti2.piece_length(), ti2.total_size())
    leecher.set_metadata_size(len(got))


def test_ut_metadata_tampered_piece_is_refused(real_info):
    info, ti = real_info
    seeder, leecher = metadata_pair(info, ti)
    assembler = MetadataAssembler(leecher.info_hash, len(info))
    for piece in assembler.missing():
        leecher.send_metadata_request(piece)
    for e in serve(seeder, leecher, info, tamper=True):
        assembler.add(e.piece, e.data)
    with pytest.raises(MetadataError, match="is not the info-hash"):
        assembler.result()
    assert assembler.missing() == [0, 1]  # start over, nothing wrong kept


def test_ut_metadata_reject_and_wrong_sizes(real_info):
    info, ti = real_info
    seeder, leecher = metadata_pair(info, ti)
    leecher.send_metadata_request(0)
    (req,) = pump(leecher, seeder)
    seeder.send_metadata_reject(req.piece)
    assert pump(seeder, leecher) == [MetadataRejected(0)]
    with pytest.raises(LocalProtocolError):
        leecher.send_metadata_request(2)  # past the advertised metadata_size
    quiet = metadata_pair(info, ti)[1]
    quiet.extension_handshake_sent = False  # as if it had never sent one
    with pytest.raises(LocalProtocolError, match="send_extension_handshake"):
        quiet.send_metadata_request(0)
    with pytest.raises(LocalProtocolError):
        seeder.send_metadata_data(1, metadata_piece(info, 0))  # wrong size for the last piece
    # a data message whose length does not match its piece is the peer's error
    leecher.send_metadata_request(0)
    head = bencode({"msg_type": 1, "piece": 0, "total_size": len(info)})
    with pytest.raises(ProtocolError, match="has 100 bytes"):
        leecher.receive_data(frame(20, b"\x03" + head + b"x" * 100))
    # a total_size differing from the advertised metadata_size too
    seeder, leecher = metadata_pair(info, ti)
    leecher.send_metadata_request(1)
    head = bencode({"msg_type": 1, "piece": 1, "total_size": len(info) + 1})
    with pytest.raises(ProtocolError, match="differs from the advertised"):
        leecher.receive_data(frame(20, b"\x03" + head + info[16384:] + b"!"))
    # a request past our metadata
    with pytest.raises(ProtocolError, match="past our metadata"):
        seeder.receive_data(frame(20, b"\x03" + bencode({"msg_type": 0, "piece": 2})))


def test_metadata_assembler_bounds():
    with pytest.raises(MetadataError):
        MetadataAssembler(INFO_HASH, 10_000_001)
    asm = MetadataAssembler(INFO_HASH, 20000)
    with pytest.raises(MetadataError, match="out of range"):
        asm.add(2, b"x")
    with pytest.raises(MetadataError, match="expected 3616"):
        asm.add(1, b"x" * 16384)
    with pytest.raises(MetadataError, match="incomplete"):
        asm.result()


# ---------------------------------------------------------------- bencode


@pytest.mark.parametrize(
    "data",
    [b"", b"i", b"i-0e", b"i03e", b"ie", b"i1", b"i" + b"9" * 70 + b"e", b"01:a", b"5:abc", b"l", b"d",
     b"d1:ai1e1:ai2ee", b"di1ei2ee", b"x", b"i1ei2e", b"l" * 40 + b"e" * 40, b"2:ab ", b"-1:a", b"i1.5e"],
)
def test_bdecode_rejects_garbage_cleanly(data):
    with pytest.raises(ProtocolError):
        bdecode(data)


def test_bencode_round_trip_matches_bencodepy():
    value = {b"m": {b"ut_metadata": 3}, b"list": [1, -2, b"x", [b""]], b"n": 0}
    assert bencode(value) == bencodepy.encode(value)
    assert bdecode(bencode(value)) == value


def test_re_request_after_cancel():
    # without fast the cancelled entry is kept: the in-flight block and the new one are both accepted
    a, b = pair(fast_a=False)
    a.send_unchoke()
    pump(a, b)
    b.send_request(0, 0, 4)
    pump(b, a)
    a.send_piece(0, 0, b"abcd")  # in flight while b cancels and asks again
    b.send_cancel(0, 0, 4)
    b.send_request(0, 0, 4)
    assert pump(b, a) == [BlockRequested(0, 0, 4)]  # the cancel crossed the piece: nothing to cancel
    a.send_piece(0, 0, b"abcd")
    assert [e.cancelled for e in pump(a, b)] == [False, True]
    # with fast every cancelled request is answered, in order: the first answer belongs to the cancel
    a, b = pair()
    a.send_unchoke()
    pump(a, b)
    b.send_request(0, 0, 4)
    b.send_cancel(0, 0, 4)
    b.send_request(0, 0, 4)
    assert pump(b, a) == [BlockRequested(0, 0, 4), RequestCancelled(0, 0, 4), BlockRequested(0, 0, 4)]
    a.send_piece(0, 0, b"wxyz")
    assert pump(a, b) == [RequestRejected(0, 0, 4), BlockReceived(0, 0, b"wxyz")]
    assert not b.our_requests and not b.cancelled


def test_failed_set_geometry_leaves_the_wire_dead():
    wire = PeerWire(INFO_HASH, ID_A)
    wire.send_handshake()
    after_handshake(wire)
    wire.receive_data(frame(5, b"\xff"))
    with pytest.raises(ProtocolError):
        wire.set_geometry(20, 16384, 20 * 16384)
    with pytest.raises(ProtocolError, match="already failed"):
        wire.receive_data(frame(1))
