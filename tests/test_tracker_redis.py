"""Tracker instances sharing swarms through a real redis-server (started here: loopback, own port and dir).

Loopback only: the instances are served over plain TCP or fed socketpairs with an identity, exactly
how the SAM accept loop feeds them. The WebTorrent transfer across instances over I2P is in
test_tracker_redis_i2p.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import aiohttp
import orjson
import pytest

from i2ptorrent.tracker.client import (AnnounceResult, AnswerReceived, ClientTimers, OfferReceived,
                                       TrackerFailure, WebSocketTrackerClient)
from i2ptorrent.tracker import redis_store
from i2ptorrent.tracker.redis_store import RedisSwarmStore, SharedAccess, StoreUnavailable, open_redis
from i2ptorrent.tracker.server import TrackerServer
from i2ptorrent.transport.stream import AsyncioByteStream
from redis_server import RedisServer, free_port
from test_tracker_server import fake_offers, identity, next_event, served  # noqa: F401 (a fixture)

URL = "ws://tracker.b32.i2p/announce"
HERE = Path(__file__).parent


@pytest.fixture
def redis_server(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def instances(redis_server: RedisServer, served):
    """make(private=False) -> a started in-process instance on the shared Redis; client as in `served`."""
    _, client, _ = served
    servers: list[TrackerServer] = []

    async def make(private: bool = False) -> TrackerServer:
        server = TrackerServer(store=await RedisSwarmStore.connect(redis_server.url, private=private))
        await server.start()
        servers.append(server)
        return server

    yield make, client
    for s in servers:
        await s.close()


async def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def peers_in(server: TrackerServer, info_hash: bytes) -> int:
    swarm = server.core.swarms.get(info_hash.decode("latin-1"))
    return len(swarm) if swarm is not None else 0


async def test_offer_and_answer_cross_instances_and_scrapes_agree(instances) -> None:
    make, client = instances
    a, b = await make(), await make()
    info_hash = os.urandom(20)
    seeder = client(a, 1)
    seeder.add(info_hash, left=0)
    await next_event(seeder, AnnounceResult)
    await wait_for(lambda: peers_in(b, info_hash) == 1)  # B learned of A's peer through Redis
    leecher = client(b, 2)
    leecher.add(info_hash, left=1000)
    joined = await next_event(leecher, AnnounceResult)
    assert (joined.complete, joined.incomplete) == (1, 1)  # B counts A's seeder
    await leecher.announce_now(info_hash)
    offer = await next_event(seeder, OfferReceived)  # relayed B -> A
    assert offer.peer_id == bytes([2]) * 20 and offer.remote_b32 == identity(2).name
    await seeder.answer(offer.info_hash, offer.peer_id, offer.offer_id, "v=0 answer from A")
    answer = await next_event(leecher, AnswerReceived)  # relayed A -> B
    assert answer.offer_id == offer.offer_id and answer.sdp == "v=0 answer from A"
    assert answer.remote_b32 == identity(1).name
    await wait_for(lambda: peers_in(a, info_hash) == 2)
    assert await seeder.scrape([info_hash]) == await leecher.scrape([info_hash]) == {info_hash: (1, 1, 0)}
    c = await make()  # a third instance, started late, loads the swarms as they are
    assert peers_in(c, info_hash) == 2
    assert c.core.swarms[info_hash.decode("latin-1")].complete == 1


async def test_completed_downloads_are_counted_once_across_instances(instances) -> None:
    make, client = instances
    a, b = await make(), await make()
    info_hash = os.urandom(20)
    one, two = client(a, 1), client(b, 2)
    one.add(info_hash, left=10)
    two.add(info_hash, left=10)
    await next_event(one, AnnounceResult)
    await next_event(two, AnnounceResult)
    one.update_left(info_hash, 0)  # 'completed' on A
    await wait_for(lambda: b.core.swarms[info_hash.decode("latin-1")].downloaded == 1)
    assert await two.scrape([info_hash]) == await one.scrape([info_hash]) == {info_hash: (1, 1, 1)}
    await two.remove(info_hash)  # 'stopped' on B
    await wait_for(lambda: peers_in(a, info_hash) == 1)
    assert await one.scrape([info_hash]) == {info_hash: (1, 0, 1)}


async def test_an_invite_is_spent_once_across_instances(instances, redis_server: RedisServer) -> None:
    make, client = instances
    a, b = await make(private=True), await make(private=True)
    admin = SharedAccess(await open_redis(redis_server.url))
    member = await admin.allow(identity(1).name)
    token = await admin.invite(ttl=3600)
    info_hash = os.urandom(20)
    first = client(a, 3, invite=token)
    first.add(info_hash, left=5)
    assert isinstance(await next_event(first, AnnounceResult), AnnounceResult)
    second = client(b, 4, invite=token)  # the same token, another destination, the other instance
    second.add(info_hash, left=5)
    failure = await next_event(second, TrackerFailure)
    assert "private" in failure.reason
    allowed, invites = await admin.show()
    assert allowed == sorted([member, identity(3).name]) and invites == {}
    await wait_for(lambda: b.core.access.is_allowed(identity(3).name))  # B heard of the redemption
    assert not b.core.access.is_allowed(identity(4).name)
    await admin.redis.aclose()


async def test_expired_invites_are_refused_by_wall_clock(instances, redis_server: RedisServer) -> None:
    make, client = instances
    a = await make(private=True)
    admin = SharedAccess(await open_redis(redis_server.url))
    token = await admin.invite(ttl=-1.0)  # expired a second ago, in wall-clock time
    guest = client(a, 5, invite=token)
    guest.add(os.urandom(20), left=5)
    assert "private" in (await next_event(guest, TrackerFailure)).reason
    assert await admin.show() == ([], {})  # spent by the attempt, like the file-based list
    await admin.redis.aclose()


async def test_restarted_redis_keeps_invites_and_allowlist(redis_server: RedisServer) -> None:
    admin = SharedAccess(await open_redis(redis_server.url))
    allowed = await admin.allow(identity(1).name)
    token = await admin.invite()
    await admin.redis.aclose()
    redis_server.stop()
    redis_server.start()
    admin = SharedAccess(await open_redis(redis_server.url))
    try:
        assert (await admin.show())[0] == [allowed]
        assert await admin.spend(token, identity(2).name)  # the invite survived and works once
        assert not await admin.spend(token, identity(3).name)
    finally:
        await admin.redis.aclose()


async def test_unreachable_redis_is_one_clear_error_at_start() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreUnavailable, match=f"cannot reach Redis at redis://127.0.0.1:{port}/0"):
        await RedisSwarmStore.connect(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(StoreUnavailable, match="only loopback"):
        await RedisSwarmStore.connect("redis://192.0.2.1:6379/0")


def test_tracker_command_exits_with_one_message_when_redis_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run([sys.executable, "-m", "i2ptorrent", "--data-dir", str(tmp_path), "tracker",
                           "--redis", f"redis://127.0.0.1:{port}/0"],
                          capture_output=True, text=True, timeout=60, cwd=HERE.parent,
                          env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    assert proc.returncode == 7, (proc.stdout, proc.stderr)
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in proc.stderr
    assert proc.stderr.count("\n") <= 2 and "Traceback" not in proc.stderr


async def test_tracker_commands_edit_the_shared_allowlist_and_invites(redis_server: RedisServer,
                                                                      tmp_path: Path) -> None:
    def tracker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "i2ptorrent", "--data-dir", str(tmp_path), "tracker", *args,
                               "--redis", redis_server.url], capture_output=True, text=True, timeout=60,
                              cwd=HERE.parent, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    token = tracker("invite", "--ttl", "1h").stdout.strip()
    assert tracker("allow", identity(1).name).returncode == 0
    admin = SharedAccess(await open_redis(redis_server.url))
    try:
        assert await admin.spend(token, identity(2).name)  # what the CLI made, an instance can spend
        assert (await admin.show())[0] == sorted([identity(1).name, identity(2).name])
        assert tracker("revoke", identity(1).name).returncode == 0
        assert (await admin.show())[0] == [identity(2).name]
    finally:
        await admin.redis.aclose()


async def test_redis_outage_is_survived_and_changes_catch_up(instances, redis_server: RedisServer, caplog) -> None:
    make, client = instances
    a, b = await make(), await make()
    info_hash = os.urandom(20)
    one = client(a, 1)
    one.add(info_hash, left=0)
    await next_event(one, AnnounceResult)
    await wait_for(lambda: peers_in(b, info_hash) == 1)
    redis_server.stop()
    two = client(a, 2)  # A keeps serving from its own view while Redis is away
    two.add(info_hash, left=9)
    assert (await next_event(two, AnnounceResult)).incomplete == 1
    await wait_for(lambda: "Redis" in caplog.text and "retrying" in caplog.text)
    redis_server.start()
    await wait_for(lambda: peers_in(b, info_hash) == 2, timeout=40)  # the queued change arrived
    assert caplog.text.count("write failed, retrying") == 1  # logged once per outage, not per retry


# -- instances as processes: one is killed mid-swarm --------------------------------------------------

class HeaderStream(AsyncioByteStream):
    """A loopback stream whose first request carries the test identity header (see tracker_instance)."""

    def __init__(self, reader, writer, remote: str, name: str) -> None:
        super().__init__(reader, writer, remote)
        self._name = name

    async def write(self, data: bytes) -> None:
        if self._name:
            data = data.replace(b"\r\n\r\n", f"\r\nX-Test-Dest: {self._name}\r\n\r\n".encode(), 1)
            self._name = ""
        await super().write(data)


def multihomed_opener(ports: list[int], name: str):
    """Like I2P with one .b32 on several routers: the first instance that answers takes the stream."""

    async def open_() -> AsyncioByteStream:
        for port in ports:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            return HeaderStream(reader, writer, f"loopback:{port}", name)
        raise ConnectionRefusedError("no tracker instance answers")

    return open_


def start_instance(url: str, *args: str) -> tuple[subprocess.Popen[str], int, str]:
    """A tracker_instance.py process: (process, port, instance id)."""
    proc = subprocess.Popen([sys.executable, str(HERE / "tracker_instance.py"), url, *args],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line:
        proc.wait(10)
        raise AssertionError("tracker instance did not start")
    started = json.loads(line)
    return proc, started["port"], started["instance"]


async def live_instances(port: int, want: set[str], timeout: float = 20.0) -> None:
    """Wait until the instance on `port` shows exactly `want` as live, on /stats.json and its page."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"http://127.0.0.1:{port}/stats.json") as reply:
                shown = set((await reply.json())["instances"])
            async with http.get(f"http://127.0.0.1:{port}/") as reply:
                page = await reply.text()
            if shown == want and f"live: {len(want)}<" in page and all(i in page for i in want):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"live instances shown: {shown}, expected {want}")
            await asyncio.sleep(0.1)


async def test_an_instance_killed_mid_swarm_loses_only_its_connections(redis_server: RedisServer) -> None:
    procs: list[subprocess.Popen[str]] = []
    clients: list[WebSocketTrackerClient] = []
    try:
        beat = ("--heartbeat", "0.3")  # an instance unheard for 3 beats is shown dead
        (pa, port_a, id_a), (pb, port_b, id_b) = start_instance(redis_server.url, *beat), \
            start_instance(redis_server.url, *beat)
        procs += [pa, pb]
        await live_instances(port_b, {id_a, id_b})
        info_hash = os.urandom(20)
        timers = ClientTimers(reconnect_min=0.2, reconnect_jitter=0.2)

        def peer(n: int, ports: list[int], left: int) -> WebSocketTrackerClient:
            c = WebSocketTrackerClient(URL, multihomed_opener(ports, identity(n).name), bytes([n]) * 20,
                                       offer_factory=fake_offers, timers=timers)
            clients.append(c)
            c.start()
            c.add(info_hash, left=left)
            return c

        on_a = [peer(n, [port_a, port_b], left=0 if n == 1 else 5) for n in (1, 2, 3)]  # A first, B if A is gone
        watcher = peer(9, [port_b], left=7)
        for c in [*on_a, watcher]:
            await next_event(c, AnnounceResult)
        await wait_for_scrape(watcher, info_hash, (1, 3, 0))
        os.kill(pa.pid, signal.SIGKILL)  # no goodbye: its sockets just die
        pa.wait(10)
        assert await watcher.scrape([info_hash]) == {info_hash: (1, 3, 0)}  # they keep their place
        await live_instances(port_b, {id_b})  # while B's status shows A gone
        for c in on_a:  # they reconnect, to B, and announce again under the same peer ids
            await next_event(c, AnnounceResult, timeout=30)
        assert await watcher.scrape([info_hash]) == {info_hash: (1, 3, 0)}
        await watcher.announce_now(info_hash)  # B now relays offers to them on its own sockets
        offers = await asyncio.gather(*(offer_from(c, bytes([9]) * 20) for c in on_a))
        await on_a[0].answer(offers[0].info_hash, offers[0].peer_id, offers[0].offer_id, "v=0 answer")
        assert (await next_event(watcher, AnswerReceived)).remote_b32 == identity(1).name
    finally:
        for c in clients:
            await c.close()
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(10)


async def offer_from(client: WebSocketTrackerClient, peer_id: bytes) -> OfferReceived:
    """The next offer `peer_id` sent (the others in the swarm send theirs too)."""
    while True:
        offer = await next_event(client, OfferReceived)
        if offer.peer_id == peer_id:
            return offer


async def wait_for_scrape(client: WebSocketTrackerClient, info_hash: bytes, counts: tuple[int, int, int]) -> None:
    for _ in range(200):
        if (await client.scrape([info_hash])).get(info_hash) == counts:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"scrape never showed {counts}")


def test_relay_batches_round_trip_compressed_only_when_big() -> None:
    """Offers cross instances as JSON batches: small ones as they are (zlib's fixed cost dominates
    at light load), big ones compressed; a batch that inflates past the bound is dropped."""
    offer = ["o", 7, "p" * 20, "i" * 20, "o" * 20, "instance-a", 9, "q" * 20, '{"offer": "v=0 ' + "x" * 700 + '"}']
    small, big = [offer] * 2, [offer] * 200
    assert redis_store._pack(small)[:1] == b"[" and redis_store._unpack(redis_store._pack(small)) == small
    packed = redis_store._pack(big)
    assert len(packed) < len(orjson.dumps(big)) // 4 and redis_store._unpack(packed) == big
    bomb = zlib.compress(b"[" + b" " * (redis_store.MAX_RELAY_BYTES + 1) + b"]")
    assert redis_store._unpack(bomb) == []
