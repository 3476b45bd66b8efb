"""Sans-I/O BitTorrent peer wire: bytes in -> events, calls -> bytes out (no asyncio, no sockets).

Covers the BEP 3 handshake and core messages, keep-alives, the BEP 6 fast extension (used only when both
handshakes set reserved[7] & 0x04), the BEP 10 extension handshake and BEP 9 ut_metadata (fetch and serve,
10 MB cap, SHA-1 verified). We never set the DHT bit; ut_pex is not offered (it carries IPs); i2p_pex
(32-byte destination hashes) is, with pex=True.

Public API
----------
PeerWire(info_hash, peer_id, *, extensions=True, fast=True,
         num_pieces=None, piece_length=None, total_length=None, metadata_size=None, pex=False)
    receive_data(data) -> list[Event]        raises ProtocolError (err.events = events decoded before it);
                                             afterwards the object is dead
    data_to_send() -> bytes
    set_geometry(num_pieces, piece_length, total_length)   magnet: re-checks an early bitfield / haves
                                             (ProtocolError if they do not fit)
    set_metadata_size(size)                  we now hold the metadata (advertise it in a new ext handshake)
    send_handshake()                         either side may go first; must precede every other send
    send_keepalive() send_choke() -> list[Request] (requests voided; rejected on the wire with fast)
    send_unchoke() send_interested() send_not_interested() send_have(i) send_bitfield(bytes)
    send_request(i, begin, length)           tracked; needs unchoked (or an allowed-fast piece with fast)
    send_cancel(i, begin, length)            a block arriving later is still accepted (cancelled=True);
                                             re-requesting a cancelled block is allowed
    send_piece(i, begin, data) -> bool       only answers an outstanding peer request; False if cancelled
    send_have_all() send_have_none() send_suggest(i) send_allowed_fast(i)   fast extension only
    send_reject(i, begin, length) -> bool    fast extension only
    send_extension_handshake(client=None, extra=None)   advertises ut_metadata (+ metadata_size, reqq)
    send_metadata_request(piece)             tracked; needs our extension handshake sent first (the peer
                                             answers with our ut_metadata id)
    send_metadata_data(piece, data) send_metadata_reject(piece)
    send_pex(added_b32s, dropped_b32s=[])    i2p_pex (needs pex=True and the peer's i2p_pex); <= 50 of each;
                                             the caller limits how often (libtorrent drops a peer sending
                                             more than ~6 a minute)
    state: am_choking, am_interested, peer_choking, peer_interested, fast, extensions (negotiated),
           peer_handshake, handshake_sent, extension_handshake_sent, peer_extensions (name -> id),
           peer_metadata_size, metadata_size, our_requests, cancelled, peer_requests, metadata_requests,
           allowed_fast_from_peer, num_pieces, piece_length, total_length, error
peek_info_hash(prefix) -> bytes | None       route an accepted connection (None until 48 bytes)
HANDSHAKE_LEN (68), Handshake, parse_handshake(68 bytes)
Events (frozen dataclasses, all subclasses of Event):
    HandshakeReceived(peer_id, reserved, fast, extensions)   fast/extensions = negotiated
    KeepAlive, Choke(dropped: tuple[Request, ...]), Unchoke, Interested, NotInterested,
    HaveReceived(index), BitfieldReceived(bitfield) (.has(i)), HaveAll, HaveNone,
    BlockRequested(index, begin, length), RequestCancelled(index, begin, length),
    BlockReceived(index, begin, data, cancelled), RequestRejected(index, begin, length),
    Suggest(index), AllowedFast(index),
    ExtensionHandshake(data, extensions: dict[str, int], metadata_size, client),
    MetadataRequested(piece), MetadataPieceReceived(piece, total_size, data), MetadataRejected(piece),
    PexReceived(added, dropped)              .b32.i2p addresses, deduplicated, <= 200 each (pex=True only)
Request(index, begin, length)                NamedTuple
MetadataAssembler(info_hash, total_size): add(piece, data, total_size=None) -> complete, missing(),
    complete, result() -> verified info dict bytes (MetadataError on SHA-1 mismatch, pieces forgotten)
metadata_piece(info_bytes, piece) -> bytes, metadata_piece_count(size), UT_METADATA ("ut_metadata")
encode_pex(added, dropped) / decode_pex(body), b32_to_hash(b32) / hash_to_b32(digest)   the i2p_pex codec
bencode(value), bdecode(data)                strict, bounded; errors are ProtocolError
Errors: ProtocolError (the peer broke the protocol: drop it), LocalProtocolError (our misuse),
    MetadataError (assembled metadata wrong)
Limits: MAX_BLOCK 16 KiB per request/piece; bitfield exactly ceil(n/8) bytes with spare bits zero;
    extended messages <= 16 KiB + 1 KiB; metadata <= 10 MB; a peer may keep MAX_PEER_REQUESTS requests
    queued; the receive buffer never holds more than one maximal message after a call.

Behaviour worth knowing
-----------------------
- Requests the peer sends while we choke it (or before we have the geometry) are dropped, or rejected
  automatically with the fast extension; a peer cancel with fast also sends the reject BEP 6 requires.
  Either way the reject bytes appear in data_to_send() without a call from the engine.
- Without fast, a Choke from the peer voids our outstanding requests (listed in Choke.dropped); a block for
  one of them afterwards is a ProtocolError ("a piece nobody asked for").
- One bitfield / have_all / have_none is accepted, at any point before the peer's first `have` (BEP 3 says
  "first message", but a magnet peer can only send it once it has the metadata); a second one, or one after
  a `have`, is a ProtocolError. Our own must precede every other core message we send.
- Unknown message ids and extended messages for extensions we did not advertise are ignored (size-bounded),
  as are the DHT port message, duplicate peer requests and cancels for requests no longer outstanding
  (i2psnark retransmits requests and sends cancels freely).
- ut_metadata data must carry total_size = the advertised metadata_size and exactly the piece's length
  (i2psnark before 0.9.21, 2015, sent the piece length there and is refused).
- Interop is tested against libtorrent 2.1.1 (tests/test_wire_libtorrent.py) and WebTorrent's own wire,
  bittorrent-protocol 5 + ut_metadata 4 under node (tests/test_wire_webtorrent.py), in both directions.
"""

from .bencode import bdecode, bencode
from .connection import MAX_PEER_REQUESTS, PeerWire
from .errors import LocalProtocolError, MetadataError, ProtocolError
from .events import (
    AllowedFast, BitfieldReceived, BlockReceived, BlockRequested, Choke, Event, ExtensionHandshake,
    HandshakeReceived, HaveAll, HaveNone, HaveReceived, Interested, KeepAlive, MetadataPieceReceived,
    MetadataRejected, MetadataRequested, NotInterested, Request, RequestCancelled, RequestRejected, Suggest,
    Unchoke,
)
from .extension import UT_METADATA, MetadataAssembler, metadata_piece, metadata_piece_count
from .handshake import HANDSHAKE_LEN, Handshake, parse_handshake, peek_info_hash
from .messages import MAX_BLOCK, MAX_METADATA_SIZE
from .pex import I2P_PEX, MAX_PEX_PEERS, PexReceived, b32_to_hash, decode_pex, encode_pex, hash_to_b32

__all__ = [
    "AllowedFast", "BitfieldReceived", "BlockReceived", "BlockRequested", "Choke", "Event",
    "ExtensionHandshake", "HANDSHAKE_LEN", "Handshake", "HandshakeReceived", "HaveAll", "HaveNone",
    "HaveReceived", "I2P_PEX", "Interested", "KeepAlive", "LocalProtocolError", "MAX_BLOCK", "MAX_METADATA_SIZE",
    "MAX_PEER_REQUESTS", "MAX_PEX_PEERS", "MetadataAssembler", "MetadataError", "MetadataPieceReceived", "MetadataRejected",
    "MetadataRequested", "NotInterested", "PeerWire", "PexReceived", "ProtocolError", "Request", "RequestCancelled",
    "RequestRejected", "Suggest", "UT_METADATA", "Unchoke", "b32_to_hash", "bdecode", "bencode", "decode_pex",
    "encode_pex", "hash_to_b32", "metadata_piece", "metadata_piece_count",
    "parse_handshake", "peek_info_hash",
]
