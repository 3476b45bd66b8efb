"""i2p_pex: the codec (libtorrent's format: bencoded dict, `added` = concatenated 32-byte destination hashes)
and the PeerWire side (offered only with pex=True, read only when offered)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i2ptorrent.wire import (
    I2P_PEX, MAX_PEX_PEERS, PeerWire, PexReceived, ProtocolError, b32_to_hash, bdecode, bencode, decode_pex,
    encode_pex, hash_to_b32,
)
from i2ptorrent.wire.pex import LOCAL_I2P_PEX_ID, MAX_PEX_READ

INFO_HASH = hashlib.sha1(b"pex torrent").digest()


def b32(n: int) -> str:
    return hash_to_b32(hashlib.sha256(str(n).encode()).digest())


def test_address_is_the_base32_of_the_hash() -> None:
    digest = hashlib.sha256(b"a destination").digest()
    address = base64.b32encode(digest).decode().lower().rstrip("=") + ".b32.i2p"
    assert hash_to_b32(digest) == address and b32_to_hash(address.upper()) == digest
    for bad in ("example.i2p", "abc.b32.i2p", "a" * 56 + ".b32.i2p", "1" * 52 + ".b32.i2p"):
        with pytest.raises(ValueError):
            b32_to_hash(bad)


def test_message_layout_is_libtorrents() -> None:
    body = bdecode(encode_pex([b32(1), b32(2)], [b32(3)]))
    assert body == {b"added": b32_to_hash(b32(1)) + b32_to_hash(b32(2)), b"added.f": b"\0\0",
                    b"dropped": b32_to_hash(b32(3))}
    assert decode_pex(encode_pex([b32(1), b32(2)], [b32(3)])) == PexReceived((b32(1), b32(2)), (b32(3),))


def test_bounds_on_both_sides() -> None:
    many = [b32(i) for i in range(MAX_PEX_PEERS + 30)]
    sent = decode_pex(encode_pex(many, many))
    assert sent.added == tuple(many[:MAX_PEX_PEERS]) and len(sent.dropped) == MAX_PEX_PEERS
    flood = b"".join(os.urandom(32) for _ in range(MAX_PEX_READ + 50))
    got = decode_pex(bencode({"added": flood + b"short"}))
    assert len(got.added) == MAX_PEX_READ and got.dropped == ()
    dup = b32_to_hash(b32(7))
    assert decode_pex(bencode({"added": dup * 3})).added == (b32(7),)


@pytest.mark.parametrize("body", [b"le", b"i3e", bencode({"added": 5}), bencode({"dropped": [b"x"]}), b"d"])
def test_malformed_bodies_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_pex(body)


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=600))
def test_fuzz_decode_raises_only_protocol_error(data: bytes) -> None:
    try:
        msg = decode_pex(data)
    except ProtocolError:
        return
    assert len(msg.added) <= MAX_PEX_READ and all(a.endswith(".b32.i2p") for a in msg.added)


def connected(a_pex: bool, b_pex: bool) -> tuple[PeerWire, PeerWire]:
    a = PeerWire(INFO_HASH, b"A" * 20, pex=a_pex)
    b = PeerWire(INFO_HASH, b"B" * 20, pex=b_pex)
    a.send_handshake()
    b.send_handshake()
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    a.send_extension_handshake()
    b.send_extension_handshake()
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    return a, b


def test_two_wires_exchange_pex() -> None:
    a, b = connected(True, True)
    assert a.peer_extensions[I2P_PEX] == LOCAL_I2P_PEX_ID
    a.send_pex([b32(1), b32(2)], [b32(9)])
    assert b.receive_data(a.data_to_send()) == [PexReceived((b32(1), b32(2)), (b32(9),))]


def test_without_pex_nothing_is_offered_sent_or_read() -> None:
    a, b = connected(True, False)
    assert I2P_PEX not in a.peer_extensions and I2P_PEX in b.peer_extensions
    with pytest.raises(Exception, match="does not support i2p_pex"):
        a.send_pex([b32(1)])
    with pytest.raises(Exception, match="not enabled"):
        b.send_pex([b32(1)])  # b itself has pex off
    # a message for an id we did not offer is ignored, not an error
    a.peer_extensions[I2P_PEX] = LOCAL_I2P_PEX_ID
    a.send_pex([b32(1)])
    assert b.receive_data(a.data_to_send()) == []
