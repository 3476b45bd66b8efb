"""The aiohttp tracker on loopback with our WebSocket and HTTP clients.

`serve_stream` is fed one end of a socketpair together with an identity, which is exactly how the
SAM accept loop hands it streams; so these tests check that identities come from the transport.
"""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp
import pytest

from i2ptorrent.tracker.access import AccessList
from i2ptorrent.tracker.client import (AnnounceResult, AnswerReceived, OfferReceived, TrackerFailure,
                                       WebSocketTrackerClient, http_announce, http_scrape, tcp_opener)
from i2ptorrent.tracker.identity import PeerIdentity, hash_to_b32
from i2ptorrent.tracker.server import TrackerServer
from i2ptorrent.transport.stream import AsyncioByteStream

URL = "ws://tracker.b32.i2p/announce"
HTTP_URL = "http://tracker.b32.i2p/announce"


def identity(n: int) -> PeerIdentity:
    return PeerIdentity(hash_to_b32(bytes([n]) * 32), destination=f"DEST{n}" + "A" * 20)


def stream_opener(server: TrackerServer, ident: PeerIdentity, tasks: list[asyncio.Task]):
    """Each open: a socketpair whose far end the server serves as coming from `ident`."""

    async def open_() -> AsyncioByteStream:
        a, b = socket.socketpair()
        ra, wa = await asyncio.open_connection(sock=a)
        rb, wb = await asyncio.open_connection(sock=b)
        tasks.append(asyncio.ensure_future(server.serve_stream(AsyncioByteStream(rb, wb, ident.name), ident)))
        return AsyncioByteStream(ra, wa, "tracker.b32.i2p")

    return open_


async def next_event(client: WebSocketTrackerClient, kind: type, timeout: float = 20.0):
    while True:
        event = await asyncio.wait_for(client.events.get(), timeout)
        if isinstance(event, kind):
            return event


async def fake_offers(info_hash: bytes, count: int) -> list[tuple[bytes, str]]:
    return [(os.urandom(20), f"v=0 offer {i}") for i in range(count)]


@pytest.fixture
async def served():
    servers: list[TrackerServer] = []
    tasks: list[asyncio.Task] = []
    clients: list[WebSocketTrackerClient] = []

    def make(access: AccessList | None = None) -> TrackerServer:
        server = TrackerServer(access=access)
        servers.append(server)
        return server

    def client(server: TrackerServer, n: int, invite: str | None = None) -> WebSocketTrackerClient:
        c = WebSocketTrackerClient(URL, stream_opener(server, identity(n), tasks), bytes([n]) * 20,
                                   offer_factory=fake_offers, invite=invite)
        clients.append(c)
        c.start()
        return c

    yield make, client, tasks
    for c in clients:
        await c.close()
    for s in servers:
        await s.close()
    for t in tasks:
        t.cancel()


async def test_two_clients_exchange_offer_and_answer_and_learn_each_others_b32(served) -> None:
    make, client, _ = served
    server = make()
    info_hash = os.urandom(20)
    seeder, leecher = client(server, 1), client(server, 2)
    seeder.add(info_hash, left=0)
    first = await next_event(seeder, AnnounceResult)
    assert (first.complete, first.incomplete) == (1, 0)
    leecher.add(info_hash, left=1000)
    result = await next_event(leecher, AnnounceResult)
    assert (result.complete, result.incomplete) == (1, 1)
    await leecher.announce_now(info_hash)  # now the seeder is there to receive an offer
    offer = await next_event(seeder, OfferReceived)
    assert offer.peer_id == bytes([2]) * 20 and offer.sdp.startswith("v=0 offer")
    assert offer.remote_b32 == identity(2).name and offer.remote_destination == identity(2).destination
    await seeder.answer(offer.info_hash, offer.peer_id, offer.offer_id, "v=0 answer")
    answer = await next_event(leecher, AnswerReceived)
    assert answer.offer_id == offer.offer_id and answer.sdp == "v=0 answer"
    assert answer.remote_b32 == identity(1).name
    assert await leecher.scrape([info_hash]) == {info_hash: (1, 1, 0)}


async def test_private_tracker_over_websocket(served, tmp_path) -> None:
    make, client, _ = served
    acl = AccessList(tmp_path / "access.json")
    acl.allow(identity(1).name)
    token = acl.invite()
    server = make(acl)
    info_hash = os.urandom(20)
    member = client(server, 1)
    member.add(info_hash, left=0)
    await next_event(member, AnnounceResult)
    stranger = client(server, 2)
    stranger.add(info_hash, left=10)
    failure = await next_event(stranger, TrackerFailure)
    assert "private" in failure.reason and failure.info_hash == info_hash
    assert server.core.swarms[info_hash.decode("latin-1")].incomplete == 0
    assert member.events.empty()  # the stranger's offers were never relayed
    guest = client(server, 3, invite=token)
    guest.add(info_hash, left=10)
    joined = await next_event(guest, AnnounceResult)
    assert (joined.complete, joined.incomplete) == (1, 1)
    assert identity(3).name in AccessList.load(tmp_path / "access.json").allowed


async def test_http_announce_and_scrape_identify_peers_by_transport(served) -> None:
    make, _, tasks = served
    server = make()
    info_hash = os.urandom(20)
    one = stream_opener(server, identity(1), tasks)
    two = stream_opener(server, identity(2), tasks)
    first = await http_announce(one, HTTP_URL, info_hash, b"1" * 20, event="started", left=0)
    assert first.peers == [] and first.complete == 1
    second = await http_announce(two, HTTP_URL, info_hash, b"2" * 20, event="started", left=5)
    assert second.peers == [identity(1).name]
    assert await http_scrape(two, HTTP_URL, [info_hash]) == {info_hash: (1, 1, 0)}


async def test_status_page_and_stats_show_counts_but_no_addresses() -> None:
    server = TrackerServer(identity_header="X-Test-Dest")
    port = await server.start_tcp()
    try:
        info_hash = os.urandom(20)
        opener = tcp_opener("127.0.0.1", port)
        url = f"http://127.0.0.1:{port}/announce"
        await http_announce(opener, url, info_hash, b"s" * 20, event="completed", left=0)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/stats.json") as r:
                stats = await r.json()
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                page = await r.text()
            # Identity from a header only because this server was configured for tests with it.
            async with http.get(f"{url}?{_query(info_hash)}", headers={"X-Test-Dest": identity(5).name}) as r:
                assert b"peers" in await r.read()
        assert stats["torrents"] == 1 and stats["seeders"] == 1 and stats["completed"] == 1
        assert stats["swarms"] == [{"info_hash": info_hash.hex(), "complete": 1, "incomplete": 0,
                                    "downloaded": 1}]
        assert info_hash.hex() in page and "1 seeders" in page
        assert "127.0.0.1" not in page and "loopback" not in page
        assert identity(5).name in {p.identity.name for p in server.core.swarms[info_hash.decode("latin-1")].http.values()}
    finally:
        await server.close()


async def test_identity_header_is_ignored_unless_configured() -> None:
    server = TrackerServer()
    port = await server.start_tcp()
    try:
        info_hash = os.urandom(20)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/announce?{_query(info_hash)}",
                                headers={"X-I2P-DestB32": identity(5).name}) as r:
                await r.read()
        [peer] = server.core.swarms[info_hash.decode("latin-1")].http.values()
        assert peer.identity.name.startswith("loopback:")
    finally:
        await server.close()


async def test_private_status_page_is_closed_to_strangers(tmp_path) -> None:
    server = TrackerServer(access=AccessList(tmp_path / "a.json"))
    port = await server.start_tcp()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/stats.json") as r:
                assert r.status == 403
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 403
    finally:
        await server.close()


async def test_malformed_frames_do_not_disturb_other_peers() -> None:
    server = TrackerServer()
    port = await server.start_tcp()
    try:
        async with aiohttp.ClientSession() as http:
            good = await http.ws_connect(f"http://127.0.0.1:{port}/announce")
            bad = await http.ws_connect(f"http://127.0.0.1:{port}/announce")
            ih = "h" * 20
            await good.send_str('{"action":"announce","info_hash":"%s","peer_id":"%s","left":0}' % (ih, "g" * 20))
            assert (await good.receive_json())["complete"] == 1
            for junk in ["{", "[1,2]", '{"action":"announce","info_hash":"%s"}' % ih, "\u00ff" * 10]:
                await bad.send_str(junk)
                assert "failure reason" in await bad.receive_json()
            await bad.send_bytes(b"\xff\xfe")  # not even UTF-8
            assert "failure reason" in await bad.receive_json()
            await good.send_str('{"action":"scrape","info_hash":"%s"}' % ih)
            scrape = await good.receive_json()
            assert scrape["files"][ih]["complete"] == 1
            await good.close()
            await bad.close()
    finally:
        await server.close()


def _query(info_hash: bytes) -> str:
    from urllib.parse import quote_from_bytes
    return f"info_hash={quote_from_bytes(info_hash, safe='')}&peer_id={'p' * 20}&left=3&compact=1"


async def test_client_reconnects_after_the_tracker_drops_it_and_announces_again() -> None:
    from i2ptorrent.tracker.client import ClientTimers
    server = TrackerServer()
    port = await server.start_tcp()
    info_hash = os.urandom(20)
    client = WebSocketTrackerClient(f"ws://127.0.0.1:{port}/announce", tcp_opener("127.0.0.1", port),
                                    b"r" * 20, timers=ClientTimers(reconnect_min=0.05, reconnect_jitter=0.0))
    try:
        client.start()
        client.add(info_hash, left=0)
        await next_event(client, AnnounceResult)
        for conn_id in list(server._transports):
            server._drop(conn_id)  # what the idle sweep or a slow-peer drop does
        assert info_hash.decode("latin-1") not in server.core.swarms
        again = await next_event(client, AnnounceResult)
        assert again.complete == 1 and client.retries == 0
        assert list(server.core.swarms[info_hash.decode("latin-1")].ws) == ["r" * 20]
    finally:
        await client.close()
        await server.close()


def test_reconnect_backoff_follows_the_reference_client() -> None:
    """10 s * 2^n capped at 1 h like the reference; jitter at most half the base (not 5 min at once)."""
    from i2ptorrent.tracker.client import ClientTimers
    client = WebSocketTrackerClient("ws://x.b32.i2p/announce", tcp_opener("127.0.0.1", 1), b"b" * 20)
    assert client.timers == ClientTimers(30.0, 50.0, 10.0, 3600.0, 300.0, 120.0)
    assert all(10.0 <= client.backoff() <= 15.0 for _ in range(100))
    client.retries = 3
    assert 80.0 <= client.backoff() <= 120.0
    client.retries = 30
    assert 3600.0 <= client.backoff() <= 3900.0


async def test_idle_websockets_are_closed_by_the_sweep() -> None:
    from i2ptorrent.tracker.limits import TrackerLimits
    now = [0.0]
    server = TrackerServer(limits=TrackerLimits(idle_timeout=300.0), clock=lambda: now[0])
    port = await server.start_tcp()
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/announce")
            await ws.send_str('{"action":"announce","info_hash":"%s","peer_id":"%s"}' % ("i" * 20, "p" * 20))
            await ws.receive_json()
            now[0] = 200.0
            server.sweep()
            assert server.core.swarms  # still there: not idle long enough
            now[0] = 301.0
            server.sweep()
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            assert server.core.swarms == {} and server.core.connections == {}
    finally:
        await server.close()


async def test_a_stream_that_sends_no_request_is_closed() -> None:
    server = TrackerServer()
    server.first_request_timeout = 0.2
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)
    try:
        await asyncio.wait_for(server.serve_stream(AsyncioByteStream(rb, wb, "x"), identity(9)), 10)
        assert await asyncio.wait_for(ra.read(), 10) == b""  # the caller sees the stream end
    finally:
        wa.close()
        await server.close()


async def test_unanswered_offers_expire_and_late_answers_are_ignored(served) -> None:
    from i2ptorrent.tracker.client import ClientTimers, OfferExpired
    make, client, tasks = served
    server = make()
    info_hash = os.urandom(20)
    seeder = client(server, 1)
    leecher = WebSocketTrackerClient(URL, stream_opener(server, identity(2), tasks), bytes([2]) * 20,
                                     offer_factory=fake_offers, timers=ClientTimers(offer_timeout=0.05))
    leecher.start()
    try:
        seeder.add(info_hash, left=0)
        await next_event(seeder, AnnounceResult)
        leecher.add(info_hash, left=5)
        await next_event(leecher, AnnounceResult)
        await leecher.announce_now(info_hash)
        offer = await next_event(seeder, OfferReceived)
        expired = await next_event(leecher, OfferExpired)
        assert expired.info_hash == info_hash
        await seeder.answer(offer.info_hash, offer.peer_id, offer.offer_id, "too late")
        await seeder.scrape([info_hash])  # a round trip on the same tracker after the answer
        await leecher.scrape([info_hash])
        assert not [e for e in _drain(leecher) if isinstance(e, AnswerReceived)]
    finally:
        await leecher.close()


def _drain(client: WebSocketTrackerClient) -> list:
    events = []
    while not client.events.empty():
        events.append(client.events.get_nowait())
    return events


@pytest.mark.parametrize("request_head, status", [
    (b"GET /other HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", b"404"),
    (b"GET /announce HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", b"400"),
    (b"GET /announce HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000, b"431"),
])
async def test_bad_upgrades_are_refused_with_a_status(request_head: bytes, status: bytes) -> None:
    server = TrackerServer()
    port = await server.start_tcp()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_head)
        reply = await asyncio.wait_for(reader.read(), 10)
        assert reply.split(b" ")[1] == status
        writer.close()
        assert server.core.connections == {}
    finally:
        await server.close()
