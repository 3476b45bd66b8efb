"""Fuzzing the tracker's parsers: arbitrary input only ever becomes a clean protocol error."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2ptorrent.tracker import classic, messages
from i2ptorrent.tracker.client import TrackerError, _reply_complete, parse_http_response
from i2ptorrent.tracker.core import TrackerCore
from i2ptorrent.tracker.identity import PeerIdentity, hash_to_b32
from i2ptorrent.tracker.messages import TrackerProtocolError
from i2ptorrent.tracker.websocket import WebSocketClient, WebSocketError, accept_value

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

binary_id = st.text(alphabet=st.characters(max_codepoint=255), min_size=18, max_size=22)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**60, 2**60), st.floats(allow_nan=False),
                      binary_id, st.text(max_size=30))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=6)), max_leaves=25)
keys = st.sampled_from(["action", "info_hash", "peer_id", "offers", "offer", "offer_id", "answer",
                        "to_peer_id", "event", "left", "numwant", "invite", "sdp", "type", "interval",
                        "complete", "incomplete", "files", "failure reason", "i2p_b32"])
tracker_like = st.dictionaries(keys, st.one_of(json_value, st.sampled_from(
    ["announce", "scrape", "offer", "answer", "started", "stopped", "completed"])), max_size=10)
raw_message = st.one_of(st.binary(max_size=300), tracker_like.map(orjson.dumps), json_value.map(orjson.dumps))


@FUZZ
@given(raw_message)
def test_ws_request_parser_raises_only_protocol_errors(data: bytes) -> None:
    try:
        msg = messages.parse_ws_message(data, max_size=65536, max_offers=10, max_scrape=64)
    except TrackerProtocolError:
        return
    assert isinstance(msg, (messages.Announce, messages.Answer, messages.Scrape))
    if isinstance(msg, messages.Announce):
        assert len(msg.info_hash) == 20 and len(msg.offers) <= 10


@FUZZ
@given(raw_message)
def test_server_message_parser_raises_only_protocol_errors(data: bytes) -> None:
    try:
        messages.parse_server_message(data)
    except TrackerProtocolError:
        pass


@FUZZ
@given(st.lists(raw_message, min_size=1, max_size=8))
def test_core_survives_any_sequence_and_replies_only_to_the_sender(frames: list[bytes]) -> None:
    core = TrackerCore()
    ident = PeerIdentity(hash_to_b32(b"\x01" * 32))
    core.connect(1, ident, 0.0)
    for i, data in enumerate(frames):
        for conn, out in core.ws_message(1, data, float(i)):
            assert conn == 1  # nobody else exists, so nothing may go anywhere else
            assert isinstance(orjson.loads(out), dict)
    core.expire(10_000.0)
    core.disconnect(1)
    assert core.connections == {}


@FUZZ
@given(st.one_of(st.text(max_size=300), st.lists(st.tuples(
    st.sampled_from(["info_hash", "peer_id", "event", "left", "numwant", "compact", "ip", "port", "x"]),
    st.binary(max_size=24)), max_size=8).map(
    lambda kv: "&".join(f"{k}={''.join('%%%02x' % b for b in v)}" for k, v in kv))))
def test_http_query_parsers(query: str) -> None:
    for parse in (lambda q: classic.parse_announce(q, 50), lambda q: classic.parse_scrape(q, 64)):
        try:
            parse(query)
        except TrackerProtocolError:
            pass
    reply = TrackerCore().http_announce(PeerIdentity(hash_to_b32(b"\x02" * 32)), query, 0.0)
    assert isinstance(reply, bytes) and reply.startswith(b"d")


@FUZZ
@given(st.binary(max_size=200))
def test_compact_peers_and_http_reply_parsers(data: bytes) -> None:
    try:
        assert all(n.endswith(".b32.i2p") for n in classic.parse_compact_peers(data))
    except TrackerProtocolError:
        pass
    try:
        parse_http_response(data)
    except TrackerError:
        pass


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 64))
def test_an_http_reply_is_complete_at_its_framing_not_at_close(body: bytes, chunk: int) -> None:
    """A prefix of a Content-Length or chunked reply is incomplete; the whole one is complete (so the
    client stops reading there instead of waiting for a slow I2P close) and parses to the body."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    chunked = b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    for reply in (head + b"Content-Length: %d\r\n\r\n" % len(body) + body,
                  head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked):
        assert _reply_complete(reply) and parse_http_response(reply) == body
        assert not any(_reply_complete(reply[:n]) for n in range(len(reply)))


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_websocket_client_frames_raise_only_websocket_errors(chunks: list[bytes]) -> None:
    ws = WebSocketClient("t.b32.i2p", "/announce", max_message=1000)
    key = ws._key
    handshake = (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Accept: {accept_value(key)}\r\n\r\n").encode()
    try:
        ws.receive(handshake)
        for chunk in chunks:
            ws.receive(chunk)
    except WebSocketError:
        pass


@FUZZ
@given(st.binary(max_size=400), st.lists(st.binary(max_size=80), max_size=6))
def test_server_side_upgrade_and_frames_raise_only_websocket_errors(head: bytes, chunks: list[bytes]) -> None:
    from i2ptorrent.tracker.websocket import WebSocketServer, accept_upgrade
    try:
        accept_upgrade(head)
    except (WebSocketError, UnicodeDecodeError):
        pass
    ws = WebSocketServer(max_message=1000)
    try:
        for chunk in chunks:
            ws.receive(chunk)
    except WebSocketError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=5), st.integers(1, 50))
def test_client_and_server_framing_round_trip(payloads: list[bytes], chunk: int) -> None:
    """What one end sends, the other receives byte for byte, however the stream is cut."""
    from i2ptorrent.tracker.websocket import Message, WebSocketServer
    client = WebSocketClient("t", "/announce", max_message=4096)
    client.receive((f"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: {accept_value(client._key)}\r\n\r\n").encode())
    client.data_to_send()
    server = WebSocketServer(max_message=4096)
    for p in payloads:
        client.send(p)
        server.send(p)
    up, down = client.data_to_send(), server.data_to_send()
    got_up = [e for i in range(0, len(up), chunk) for e in server.receive(up[i:i + chunk])]
    got_down = [e for i in range(0, len(down), chunk) for e in client.receive(down[i:i + chunk])]
    assert got_up == got_down == [Message(p, True) for p in payloads]
