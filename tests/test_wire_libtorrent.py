"""Interop: our PeerWire against libtorrent's own peer wire, over loopback TCP (127.0.0.1 only).

libtorrent is the reference BitTorrent implementation most I2P clients share code or behaviour with
(qBittorrent, and i2psnark/BiglyBT interoperate with it), so this checks that our handshake, BEP 6, BEP 10
and BEP 9 are what a real client expects, in both directions: we fetch metadata and every piece from a
libtorrent seed, and a libtorrent magnet fetches metadata and every piece from us.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import libtorrent as lt
import pytest

from i2ptorrent.wire import (
    BlockReceived, BlockRequested, ExtensionHandshake, HandshakeReceived, HaveAll, MetadataAssembler,
    MetadataPieceReceived, MetadataRequested, PeerWire, metadata_piece, peek_info_hash,
)

BLOCK = 16384
DEADLINE = 60.0  # generous, only to avoid hangs


def loopback_session() -> lt.session:
    """A libtorrent session that only speaks TCP on 127.0.0.1 and discovers nothing."""
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "dht_bootstrap_nodes": "", "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "webtorrent_stun_server": "", "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled), "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
    })


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> tuple[Path, bytes, lt.torrent_info]:
    root = tmp_path_factory.mktemp("lt-seed")
    data = os.urandom(40 * BLOCK + 1234)  # 21 pieces of 32 KiB, the last one short
    (root / "file.bin").write_bytes(data)
    ct = lt.create_torrent(lt.list_files(str(root / "file.bin")), 2 * BLOCK, lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(root))
    return root, data, lt.torrent_info(lt.bencode(ct.generate()))


def info_hash_of(ti: lt.torrent_info) -> bytes:
    return bytes.fromhex(str(ti.info_hashes().v1))


def wait_for(predicate, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def flush(sock: socket.socket, wire: PeerWire) -> None:
    data = wire.data_to_send()
    if data:
        sock.sendall(data)


def events_from(sock: socket.socket, wire: PeerWire) -> list:
    try:
        data = sock.recv(65536)
    except socket.timeout:
        return []
    if not data:
        raise AssertionError("libtorrent closed the connection")
    return wire.receive_data(data)


def test_we_download_metadata_and_pieces_from_libtorrent(content):
    root, data, ti = content
    ses = loopback_session()
    try:
        handle = ses.add_torrent({"ti": ti, "save_path": str(root)})
        wait_for(lambda: handle.status().is_seeding, "libtorrent to check its seed")
        sock = socket.create_connection(("127.0.0.1", ses.listen_port()), timeout=DEADLINE)
        sock.settimeout(0.2)
        # a magnet: only the info-hash is known
        wire = PeerWire(info_hash_of(ti), b"-IT0001-" + os.urandom(6).hex().encode()[:12])
        wire.send_handshake()
        flush(sock, wire)
        seen: list = []
        assembler: MetadataAssembler | None = None
        blocks: dict[tuple[int, int], bytes] = {}
        wanted: list[tuple[int, int, int]] = []
        end = time.monotonic() + DEADLINE
        while len(blocks) < 41:
            assert time.monotonic() < end, f"timed out; events so far: {[type(e).__name__ for e in seen]}"
            for event in events_from(sock, wire):
                seen.append(event)
                if isinstance(event, HandshakeReceived):
                    assert event.fast and event.extensions  # libtorrent sets both bits, as we do
                    wire.send_extension_handshake(client="i2ptorrent-test")
                elif isinstance(event, ExtensionHandshake):
                    assert event.metadata_size and "ut_metadata" in event.extensions
                    assembler = MetadataAssembler(wire.info_hash, event.metadata_size)
                    for piece in assembler.missing():
                        wire.send_metadata_request(piece)
                elif isinstance(event, MetadataPieceReceived):
                    assert assembler is not None
                    if assembler.add(event.piece, event.data, event.total_size):
                        info = assembler.result()  # SHA-1 verified against the info-hash
                        got = lt.torrent_info(lt.bencode({"info": lt.bdecode(info)}))
                        wire.set_geometry(got.num_pieces(), got.piece_length(), got.total_size())
                        wire.send_interested()
                        wanted = [(i, b, min(BLOCK, wire.piece_size(i) - b))
                                  for i in range(got.num_pieces()) for b in range(0, wire.piece_size(i), BLOCK)]
                elif isinstance(event, BlockReceived):
                    blocks[(event.index, event.begin)] = event.data
            while wanted and len(wire.our_requests) < 16 and not wire.peer_choking:
                wire.send_request(*wanted.pop(0))
            flush(sock, wire)
        sock.close()
    finally:
        del ses
    assert any(isinstance(e, HaveAll) for e in seen)  # a fast-extension seed says have_all
    joined = b"".join(blocks[k] for k in sorted(blocks))
    assert joined == data
    for i in range(ti.num_pieces()):
        piece = joined[i * 2 * BLOCK : (i + 1) * 2 * BLOCK]
        assert hashlib.sha1(piece).digest() == bytes(ti.hash_for_piece(i))


def test_libtorrent_downloads_metadata_and_pieces_from_us(content, tmp_path):
    _, data, ti = content
    info = bytes(ti.info_section())
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(DEADLINE)
    ses = loopback_session()
    try:
        params = lt.add_torrent_params()
        params.info_hashes = lt.info_hash_t(lt.sha1_hash(info_hash_of(ti)))
        params.save_path = str(tmp_path)
        handle = ses.add_torrent(params)
        handle.connect_peer(("127.0.0.1", listener.getsockname()[1]))
        sock, _ = listener.accept()
        sock.settimeout(0.2)
        prefix = b""
        while peek_info_hash(prefix) is None:  # route the connection, as an accept loop would
            prefix += sock.recv(48 - len(prefix))
        assert peek_info_hash(prefix) == info_hash_of(ti)
        wire = PeerWire(info_hash_of(ti), b"-IT0001-" + b"s" * 12, num_pieces=ti.num_pieces(),
                        piece_length=ti.piece_length(), total_length=ti.total_size(), metadata_size=len(info))
        wire.send_handshake()
        seen = wire.receive_data(prefix)
        end = time.monotonic() + DEADLINE
        served = 0
        while not handle.status().is_seeding:
            assert time.monotonic() < end, f"timed out: {handle.status().state}, {served} blocks served"
            for event in seen:
                if isinstance(event, HandshakeReceived):
                    wire.send_extension_handshake(client="i2ptorrent-test")
                    wire.send_have_all()
                    wire.send_unchoke()
                elif isinstance(event, MetadataRequested):
                    wire.send_metadata_data(event.piece, metadata_piece(info, event.piece))
                elif isinstance(event, BlockRequested):
                    start = event.index * ti.piece_length() + event.begin
                    assert wire.send_piece(event.index, event.begin, data[start : start + event.length])
                    served += 1
            flush(sock, wire)
            try:
                seen = events_from(sock, wire)
            except AssertionError:
                break  # libtorrent may close once it is a seed; the status check below decides
        wait_for(lambda: handle.status().is_seeding, "libtorrent to verify every piece")
        sock.close()
    finally:
        listener.close()
        del ses
    assert served == 41
    assert (tmp_path / "file.bin").read_bytes() == data
