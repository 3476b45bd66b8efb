"""`PeerWire`: one peer connection's protocol state, sans I/O (bytes in -> events, calls -> bytes out).

The adapter feeds whatever the stream delivered to `receive_data`, acts on the returned events, and writes
`data_to_send()` to the stream. Any violation by the peer raises `ProtocolError` and leaves the object dead;
the adapter drops that peer. Misuse by our own code raises `LocalProtocolError`.
"""

from __future__ import annotations

from typing import Any, NoReturn

from . import messages as m
from .errors import LocalProtocolError, ProtocolError
from .events import (
    AllowedFast, BitfieldReceived, BlockReceived, BlockRequested, Choke, Event, ExtensionHandshake,
    HandshakeReceived, HaveAll, HaveNone, HaveReceived, Interested, KeepAlive, MetadataPieceReceived,
    MetadataRejected, MetadataRequested, NotInterested, Request, RequestCancelled, RequestRejected, Suggest,
    Unchoke,
)
from .extension import (
    LOCAL_UT_METADATA_ID, MSG_DATA, MSG_REJECT, MSG_REQUEST, REQQ, UT_METADATA, decode_extension_handshake,
    decode_metadata_message, encode_extension_handshake, encode_metadata_message, metadata_piece_count,
    metadata_piece_size,
)
from .pex import I2P_PEX, LOCAL_I2P_PEX_ID, decode_pex, encode_pex
from .handshake import HANDSHAKE_LEN, Handshake, make_reserved, parse_handshake, peek_info_hash

MAX_PEER_REQUESTS = 2 * REQQ  # a peer queueing more block requests than this is abusive
MAX_CANCELLED = 1024  # remembered cancels (blocks may still arrive for them); oldest forgotten first
MAX_ALLOWED_FAST = 256  # allowed-fast grants we remember from a peer; extra grants are ignored


class PeerWire:
    """The BitTorrent peer wire for one connection to one torrent.

    Geometry (num_pieces, piece_length, total_length) may be unknown for a magnet: then incoming bitfields
    and haves are range-checked later, by `set_geometry`, and block requests cannot be sent or served.
    """

    def __init__(
        self,
        info_hash: bytes,
        peer_id: bytes,
        *,
        extensions: bool = True,
        fast: bool = True,
        num_pieces: int | None = None,
        piece_length: int | None = None,
        total_length: int | None = None,
        metadata_size: int | None = None,
        pex: bool = False,
    ) -> None:
        if len(info_hash) != 20 or len(peer_id) != 20:
            raise ValueError("info_hash and peer_id must be 20 bytes each")
        self.info_hash = bytes(info_hash)
        self.peer_id = bytes(peer_id)
        self.reserved = make_reserved(extensions=extensions, fast=fast)
        self.pex = pex  # offer and read i2p_pex (never for a private torrent)
        self.metadata_size: int | None = None  # ours, advertised in the extension handshake
        if metadata_size is not None:
            self.set_metadata_size(metadata_size)
        self.num_pieces: int | None = None
        self.piece_length: int | None = None
        self.total_length: int | None = None
        if num_pieces is not None or piece_length is not None or total_length is not None:
            if num_pieces is None or piece_length is None or total_length is None:
                raise ValueError("give num_pieces, piece_length and total_length together")
            self._set_geometry(num_pieces, piece_length, total_length)

        self.peer_handshake: Handshake | None = None
        self.handshake_sent = False
        self.extension_handshake_sent = False
        self.fast = False  # negotiated: both sides set the bit
        self.extensions = False
        self.peer_extensions: dict[str, int] = {}  # from the peer's BEP 10 handshake
        self.peer_metadata_size: int | None = None

        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False

        self.our_requests: set[Request] = set()  # we asked, not yet answered
        # We cancelled these; the peer may still answer (with fast it must). Value = answers still possible,
        # insertion order = age, so the oldest is forgotten first when MAX_CANCELLED is reached.
        self.cancelled: dict[Request, int] = {}
        self.peer_requests: set[Request] = set()  # the peer asked us, not yet answered
        self.allowed_fast_from_peer: set[int] = set()
        self.allowed_fast_to_peer: set[int] = set()
        self.metadata_requests: set[int] = set()  # ut_metadata pieces we requested

        # BEP 3 wants bitfield / have_all / have_none first; we accept one anywhere before the first `have`
        # (a magnet peer may only send it once it has the metadata) and refuse a second one.
        self._availability_seen = False
        self._have_seen = False
        self._sent_core = False
        self._unchecked_bitfield: bytes | None = None  # received before geometry was known
        self._unchecked_max_index = -1

        self._in = bytearray()
        self._out = bytearray()
        self.error: ProtocolError | None = None

    # ------------------------------------------------------------------ geometry

    def _set_geometry(self, num_pieces: int, piece_length: int, total_length: int) -> None:
        if not 0 < num_pieces <= m.MAX_PIECES or piece_length <= 0:
            raise ValueError(f"bad geometry: {num_pieces} pieces of {piece_length}")
        if not (num_pieces - 1) * piece_length < total_length <= num_pieces * piece_length:
            raise ValueError(f"total_length {total_length} does not fit {num_pieces} x {piece_length}")
        self.num_pieces, self.piece_length, self.total_length = num_pieces, piece_length, total_length

    def set_geometry(self, num_pieces: int, piece_length: int, total_length: int) -> None:
        """Tell the wire the torrent's shape once a magnet's metadata arrived.

        Checks what the peer sent before: a wrong-size bitfield or a `have` past the end raises ProtocolError.
        """
        if self.num_pieces is not None:
            if (num_pieces, piece_length, total_length) != (self.num_pieces, self.piece_length, self.total_length):
                raise LocalProtocolError("geometry already set to different values")
            return
        self._set_geometry(num_pieces, piece_length, total_length)
        try:
            if self._unchecked_bitfield is not None:
                self._check_bitfield(self._unchecked_bitfield)
            if self._unchecked_max_index >= num_pieces:
                self._fail(f"have/suggest/allowed_fast for piece {self._unchecked_max_index} "
                           f"of a {num_pieces}-piece torrent")
        except ProtocolError as exc:
            self.error = exc
            raise
        finally:
            self._unchecked_bitfield = None
            self._unchecked_max_index = -1

    def piece_size(self, index: int) -> int:
        assert self.num_pieces is not None and self.piece_length is not None and self.total_length is not None
        if index == self.num_pieces - 1:
            return self.total_length - index * self.piece_length
        return self.piece_length

    def _bitfield_bytes(self) -> int | None:
        return None if self.num_pieces is None else (self.num_pieces + 7) // 8

    def _valid_request(self, index: int, begin: int, length: int) -> str | None:
        """Why a request is out of bounds, or None when it is fine."""
        if not 0 < length <= m.MAX_BLOCK:
            return f"request length {length} outside 1..{m.MAX_BLOCK}"
        if self.num_pieces is None:
            return "request before the torrent's geometry is known"
        if index >= self.num_pieces:
            return f"request for piece {index} of a {self.num_pieces}-piece torrent"
        if begin + length > self.piece_size(index):
            return f"request {begin}+{length} past the end of piece {index} ({self.piece_size(index)} bytes)"
        return None

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete. Raises ProtocolError on a violation."""
        if self.error is not None:
            raise ProtocolError(f"connection already failed: {self.error}")
        events: list[Event] = []
        self._in += data
        buf = self._in
        pos = 0
        try:
            if self.peer_handshake is None:
                if len(buf) < HANDSHAKE_LEN:
                    asked = peek_info_hash(buf)  # fail early on garbage or a foreign torrent
                    if asked is not None and asked != self.info_hash:
                        self._fail("handshake for a different info-hash")
                    return events
                events.append(self._on_handshake(parse_handshake(buf[:HANDSHAKE_LEN])))
                pos = HANDSHAKE_LEN
            end = len(buf)
            while end - pos >= 4:
                length = m.unpack_header(buf, pos)
                if length == 0:
                    pos += 4
                    events.append(KeepAlive())
                    continue
                if end - pos < 5:
                    break
                msg_id = buf[pos + 4]
                low, high = m.length_bounds(msg_id, self._bitfield_bytes())
                if not low <= length <= high:
                    self._fail(f"{m.name(msg_id)} of length {length}, allowed {low}..{high}")
                if end - pos - 4 < length:
                    break
                payload = memoryview(buf)[pos + 5 : pos + 4 + length]
                try:
                    event = self._on_message(msg_id, payload)
                finally:
                    payload.release()
                pos += 4 + length
                if event is not None:
                    events.append(event)
        except ProtocolError as exc:
            self.error = ProtocolError(str(exc), events)
            self._in = bytearray()
            raise self.error from None
        del buf[:pos]
        return events

    def _fail(self, message: str) -> NoReturn:
        raise ProtocolError(message)

    def _on_handshake(self, hs: Handshake) -> HandshakeReceived:
        if hs.info_hash != self.info_hash:
            self._fail("handshake for a different info-hash")
        if hs.peer_id == self.peer_id:
            self._fail("connected to ourselves")
        self.peer_handshake = hs
        ours = Handshake(self.reserved, self.info_hash, self.peer_id)
        self.fast = hs.fast and ours.fast
        self.extensions = hs.extensions and ours.extensions
        return HandshakeReceived(hs.peer_id, hs.reserved, self.fast, self.extensions)

    def _check_index(self, index: int, what: str) -> None:
        if self.num_pieces is None:
            self._unchecked_max_index = max(self._unchecked_max_index, index)
        elif index >= self.num_pieces:
            self._fail(f"{what} for piece {index} of a {self.num_pieces}-piece torrent")

    def _check_bitfield(self, bitfield: bytes) -> None:
        assert self.num_pieces is not None
        need = (self.num_pieces + 7) // 8
        if len(bitfield) != need:
            self._fail(f"bitfield of {len(bitfield)} bytes, expected {need}")
        spare = 8 * need - self.num_pieces
        if spare and bitfield[-1] & ((1 << spare) - 1):
            self._fail("bitfield has spare bits set")

    def _on_message(self, msg_id: int, payload: memoryview) -> Event | None:
        if msg_id == m.EXTENDED:
            return self._on_extended(payload)
        if msg_id in m.FAST_IDS and not self.fast:
            self._fail(f"{m.name(msg_id)} without the fast extension negotiated")
        if msg_id in (m.BITFIELD, m.HAVE_ALL, m.HAVE_NONE):
            if self._availability_seen or self._have_seen:
                self._fail(f"{m.name(msg_id)} after a bitfield / have_all / have_none / have")
            self._availability_seen = True
            if msg_id == m.BITFIELD:
                bitfield = bytes(payload)
                if self.num_pieces is None:
                    self._unchecked_bitfield = bitfield
                else:
                    self._check_bitfield(bitfield)
                return BitfieldReceived(bitfield)
            return HaveAll() if msg_id == m.HAVE_ALL else HaveNone()
        if msg_id == m.PORT:
            return None
        if msg_id not in m.MESSAGE_NAMES:
            return None  # BEP 3: ignore unknown messages (their size was already bounded)
        if msg_id == m.CHOKE:
            self.peer_choking = True
            dropped: tuple[Request, ...] = ()
            if not self.fast:
                dropped = tuple(sorted(self.our_requests))
                self.our_requests.clear()
                self.cancelled.clear()
            return Choke(dropped)
        if msg_id == m.UNCHOKE:
            self.peer_choking = False
            return Unchoke()
        if msg_id == m.INTERESTED:
            self.peer_interested = True
            return Interested()
        if msg_id == m.NOT_INTERESTED:
            self.peer_interested = False
            return NotInterested()
        if msg_id in (m.HAVE, m.SUGGEST, m.ALLOWED_FAST):
            index = m.unpack_index(payload)
            self._check_index(index, m.name(msg_id))
            if msg_id == m.HAVE:
                self._have_seen = True
                return HaveReceived(index)
            if msg_id == m.SUGGEST:
                return Suggest(index)
            if len(self.allowed_fast_from_peer) < MAX_ALLOWED_FAST:
                self.allowed_fast_from_peer.add(index)
            return AllowedFast(index)
        if msg_id == m.PIECE:
            return self._on_piece(payload)
        req = Request(*m.unpack_triple(payload))
        if msg_id == m.REQUEST:
            return self._on_request(req)
        if msg_id == m.CANCEL:
            return self._on_cancel(req)
        return self._on_reject(req)

    def _on_request(self, req: Request) -> Event | None:
        if self.num_pieces is None:
            if not 0 < req.length <= m.MAX_BLOCK:
                self._fail(f"request length {req.length} outside 1..{m.MAX_BLOCK}")
        else:
            problem = self._valid_request(*req)
            if problem:
                self._fail(problem)
        if self.num_pieces is None or (self.am_choking and req.index not in self.allowed_fast_to_peer):
            # A request crossing our choke (or one we cannot serve before we have the metadata) is no
            # violation: BEP 3 drops it silently, BEP 6 requires an explicit reject, sent here.
            if self.fast:
                self._out += m.encode_triple(m.REJECT, *req)
            return None
        if req in self.peer_requests:
            return None  # duplicate: already queued
        if len(self.peer_requests) >= MAX_PEER_REQUESTS:
            self._fail(f"more than {MAX_PEER_REQUESTS} outstanding requests")
        self.peer_requests.add(req)
        return BlockRequested(*req)

    def _on_cancel(self, req: Request) -> Event | None:
        if req not in self.peer_requests:
            return None  # we answered already: the cancel crossed our piece
        self.peer_requests.discard(req)
        if self.fast:  # BEP 6: every request gets a piece or a reject, cancelled ones included
            self._out += m.encode_triple(m.REJECT, *req)
        return RequestCancelled(*req)

    def _match_answer(self, req: Request, what: str) -> bool:
        """Pair an incoming piece/reject with what we asked; True when it answers a cancelled request.

        With fast the peer answers in order and must answer a cancelled request, so a cancelled copy is
        matched first (that makes re-requesting a cancelled block unambiguous). Without fast a cancelled
        request may never be answered, so the live request is matched first.
        """
        owed = self.cancelled.get(req, 0)
        if owed and (self.fast or req not in self.our_requests):
            if owed == 1:
                del self.cancelled[req]
            else:
                self.cancelled[req] = owed - 1
            return True
        if req in self.our_requests:
            self.our_requests.discard(req)
            return False
        self._fail(f"{what}: index {req.index} begin {req.begin} length {req.length}")

    def _on_reject(self, req: Request) -> Event:
        self._match_answer(req, "reject for a request we never made")
        return RequestRejected(*req)

    def _on_piece(self, payload: memoryview) -> Event:
        index, begin = m.unpack_index(payload), m.unpack_index(payload[4:])
        req = Request(index, begin, len(payload) - 8)
        cancelled = self._match_answer(req, "piece nobody asked for")
        return BlockReceived(index, begin, bytes(payload[8:]), cancelled)

    def _on_extended(self, payload: memoryview) -> Event | None:
        if not self.extensions:
            self._fail("extended message without the extension protocol negotiated")
        ext_id, body = payload[0], bytes(payload[1:])
        if ext_id == 0:
            hs = decode_extension_handshake(body)
            self.peer_extensions = hs.extensions
            if hs.metadata_size is not None:
                self.peer_metadata_size = hs.metadata_size
            return hs
        if ext_id == LOCAL_I2P_PEX_ID and self.pex:
            return decode_pex(body)
        if ext_id != LOCAL_UT_METADATA_ID:
            return None  # an extension we did not advertise: ignore, as BEP 10 clients do
        msg_type, piece, total, data = decode_metadata_message(body)
        if msg_type == MSG_REQUEST:
            if self.metadata_size is not None and piece >= metadata_piece_count(self.metadata_size):
                self._fail(f"ut_metadata request for piece {piece} past our metadata")
            return MetadataRequested(piece)
        if piece not in self.metadata_requests:
            self._fail(f"ut_metadata {'data' if msg_type == MSG_DATA else 'reject'} for unrequested piece {piece}")
        self.metadata_requests.discard(piece)
        if msg_type == MSG_REJECT:
            return MetadataRejected(piece)
        assert total is not None
        if self.peer_metadata_size is not None and total != self.peer_metadata_size:
            self._fail(f"ut_metadata total_size {total} differs from the advertised {self.peer_metadata_size}")
        self.peer_metadata_size = total
        return MetadataPieceReceived(piece, total, data)

    # ------------------------------------------------------------------ sending

    def data_to_send(self) -> bytes:
        """Bytes queued for the peer since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _require(self, *, handshake: bool = True, peer: bool = False) -> None:
        if self.error is not None:
            raise LocalProtocolError(f"connection failed: {self.error}")
        if handshake and not self.handshake_sent:
            raise LocalProtocolError("send_handshake() first")
        if peer and self.peer_handshake is None:
            raise LocalProtocolError("the peer's handshake has not arrived yet")

    def _require_fast(self, what: str) -> None:
        self._require(peer=True)
        if not self.fast:
            raise LocalProtocolError(f"{what} needs the fast extension on both sides")

    def _core(self, data: bytes) -> None:
        self._sent_core = True
        self._out += data

    def send_handshake(self) -> None:
        self._require(handshake=False)
        if self.handshake_sent:
            raise LocalProtocolError("handshake already sent")
        self.handshake_sent = True
        self._out += Handshake(self.reserved, self.info_hash, self.peer_id).encode()

    def send_keepalive(self) -> None:
        self._require()
        self._out += m.KEEPALIVE

    def send_choke(self) -> list[Request]:
        """Choke the peer. Returns the requests this voids (with fast they are rejected on the wire)."""
        self._require()
        self.am_choking = True
        self._core(m.frame(m.CHOKE))
        voided = sorted(r for r in self.peer_requests if r.index not in self.allowed_fast_to_peer)
        for req in voided:
            self.peer_requests.discard(req)
            if self.fast:
                self._out += m.encode_triple(m.REJECT, *req)
        return voided

    def send_unchoke(self) -> None:
        self._require()
        self.am_choking = False
        self._core(m.frame(m.UNCHOKE))

    def send_interested(self) -> None:
        self._require()
        self.am_interested = True
        self._core(m.frame(m.INTERESTED))

    def send_not_interested(self) -> None:
        self._require()
        self.am_interested = False
        self._core(m.frame(m.NOT_INTERESTED))

    def send_have(self, index: int) -> None:
        self._require()
        self._check_our_index(index)
        self._core(m.encode_index(m.HAVE, index))

    def _check_our_index(self, index: int) -> None:
        if self.num_pieces is None or not 0 <= index < self.num_pieces:
            raise LocalProtocolError(f"piece {index} out of range (geometry {self.num_pieces})")

    def _send_availability(self, data: bytes) -> None:
        if self._sent_core:
            raise LocalProtocolError("bitfield / have_all / have_none must come before other messages")
        self._core(data)

    def send_bitfield(self, bitfield: bytes) -> None:
        self._require()
        need = self._bitfield_bytes()
        if need is None or len(bitfield) != need:
            raise LocalProtocolError(f"bitfield must be {need} bytes")
        spare = 8 * need - self.num_pieces  # type: ignore[operator]
        if spare and bitfield[-1] & ((1 << spare) - 1):
            raise LocalProtocolError("bitfield has spare bits set")
        self._send_availability(m.frame(m.BITFIELD, bytes(bitfield)))

    def send_have_all(self) -> None:
        self._require_fast("have_all")
        self._send_availability(m.frame(m.HAVE_ALL))

    def send_have_none(self) -> None:
        self._require_fast("have_none")
        self._send_availability(m.frame(m.HAVE_NONE))

    def send_request(self, index: int, begin: int, length: int) -> None:
        self._require()
        req = Request(index, begin, length)
        problem = self._valid_request(*req)
        if problem:
            raise LocalProtocolError(problem)
        if self.peer_choking and not (self.fast and index in self.allowed_fast_from_peer):
            raise LocalProtocolError("the peer is choking us")
        if req in self.our_requests:
            raise LocalProtocolError(f"{tuple(req)} already requested")
        self.our_requests.add(req)
        self._core(m.encode_triple(m.REQUEST, *req))

    def send_cancel(self, index: int, begin: int, length: int) -> None:
        self._require()
        req = Request(index, begin, length)
        if req not in self.our_requests:
            raise LocalProtocolError(f"{tuple(req)} is not outstanding")
        self.our_requests.discard(req)
        self.cancelled[req] = self.cancelled.get(req, 0) + 1
        if len(self.cancelled) > MAX_CANCELLED:
            del self.cancelled[next(iter(self.cancelled))]
        self._core(m.encode_triple(m.CANCEL, *req))

    def send_piece(self, index: int, begin: int, data: bytes) -> bool:
        """Answer a peer's request. False (nothing sent) if it is no longer outstanding: the peer cancelled
        it or we choked meanwhile, the normal race with an asynchronous disk read."""
        self._require()
        req = Request(index, begin, len(data))
        if req not in self.peer_requests:
            return False
        self.peer_requests.discard(req)
        self._core(m.encode_piece(index, begin, data))
        return True

    def send_reject(self, index: int, begin: int, length: int) -> bool:
        """Refuse a peer's outstanding request (fast extension). False if it was not outstanding."""
        self._require_fast("reject")
        req = Request(index, begin, length)
        if req not in self.peer_requests:
            return False
        self.peer_requests.discard(req)
        self._core(m.encode_triple(m.REJECT, *req))
        return True

    def send_suggest(self, index: int) -> None:
        self._require_fast("suggest")
        self._check_our_index(index)
        self._core(m.encode_index(m.SUGGEST, index))

    def send_allowed_fast(self, index: int) -> None:
        self._require_fast("allowed_fast")
        self._check_our_index(index)
        self.allowed_fast_to_peer.add(index)
        self._core(m.encode_index(m.ALLOWED_FAST, index))

    # ------------------------------------------------------------------ BEP 10 / BEP 9

    def _require_extensions(self) -> None:
        self._require(peer=True)
        if not self.extensions:
            raise LocalProtocolError("the extension protocol is not enabled on both sides")

    def send_extension_handshake(self, client: str | None = None, extra: dict[str, Any] | None = None) -> None:
        """Advertise ut_metadata (and metadata_size when we have the metadata), and i2p_pex if enabled."""
        self._require_extensions()
        self._out += m.encode_extended(0, encode_extension_handshake(self.metadata_size, client, extra,
                                                                     pex=self.pex))
        self.extension_handshake_sent = True

    def send_pex(self, added: list[str], dropped: list[str] = []) -> None:  # noqa: B006 - never mutated
        """An i2p_pex message (.b32.i2p addresses; at most 50 of each are sent). Needs pex enabled here and
        the peer's support (`I2P_PEX in peer_extensions`); how often to send is the caller's to limit."""
        self._require_extensions()
        if not self.pex:
            raise LocalProtocolError("i2p_pex is not enabled on this connection")
        ext_id = self.peer_extensions.get(I2P_PEX)
        if not ext_id:
            raise LocalProtocolError("the peer does not support i2p_pex")
        self._out += m.encode_extended(ext_id, encode_pex(added, dropped))

    def set_metadata_size(self, size: int) -> None:
        """We now hold the metadata (a magnet finished): serve it; send a new extension handshake to tell."""
        if not 0 < size <= m.MAX_METADATA_SIZE:
            raise ValueError(f"metadata size {size} outside 1..{m.MAX_METADATA_SIZE}")
        self.metadata_size = size

    def _peer_metadata_id(self) -> int:
        self._require_extensions()
        ext_id = self.peer_extensions.get(UT_METADATA)
        if not ext_id:
            raise LocalProtocolError("the peer does not support ut_metadata")
        return ext_id

    def send_metadata_request(self, piece: int) -> None:
        ext_id = self._peer_metadata_id()
        if not self.extension_handshake_sent:
            # the peer answers with OUR id for ut_metadata, which only our extension handshake tells it
            raise LocalProtocolError("send_extension_handshake() before requesting metadata")
        if self.peer_metadata_size is not None and not 0 <= piece < metadata_piece_count(self.peer_metadata_size):
            raise LocalProtocolError(f"metadata piece {piece} past the peer's metadata_size")
        self.metadata_requests.add(piece)
        self._out += m.encode_extended(ext_id, encode_metadata_message(MSG_REQUEST, piece))

    def send_metadata_data(self, piece: int, data: bytes) -> None:
        if self.metadata_size is None:
            raise LocalProtocolError("set_metadata_size() before serving metadata")
        if not 0 <= piece < metadata_piece_count(self.metadata_size) or len(data) != metadata_piece_size(
            self.metadata_size, piece
        ):
            raise LocalProtocolError(f"metadata piece {piece} of {len(data)} bytes does not fit {self.metadata_size}")
        ext_id = self._peer_metadata_id()
        self._out += m.encode_extended(ext_id, encode_metadata_message(MSG_DATA, piece, self.metadata_size, data))

    def send_metadata_reject(self, piece: int) -> None:
        ext_id = self._peer_metadata_id()
        self._out += m.encode_extended(ext_id, encode_metadata_message(MSG_REJECT, piece))
