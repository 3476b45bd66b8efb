"""Two tracker eepsites sharing their swarms through Redis, on the real router: a WebTorrent pair meets
across them. The seeder knows only tracker A, the leecher only tracker B, so the leecher's offer must go
B -> Redis -> A -> seeder and the answer back the same way before any piece can move.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.engine import parse_magnet
from i2ptorrent.engine.metainfo import magnet_of
from i2ptorrent.tracker import TrackerEepsite, TrackerServer
from i2ptorrent.tracker.redis_store import RedisSwarmStore
from i2ptorrent.transport.router import ManagedRouter
from redis_server import RedisServer
from test_client import make_share, tree_digests

if TYPE_CHECKING:
    from conftest import SessionPool


async def test_webtorrent_pair_meets_across_two_tracker_instances(router: ManagedRouter, sam_pool: "SessionPool",
                                                                  tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    sites: list[TrackerEepsite] = []
    clients: list[Client] = []
    try:
        sessions = await sam_pool.streams("redis-tracker-a", "redis-tracker-b", "redis-seed", "redis-leech")
        for session in sessions[:2]:
            site = TrackerEepsite(TrackerServer(store=await RedisSwarmStore.connect(redis.url)), session)
            await site.start()
            sites.append(site)
        a, b = sites
        clients += [Client(ClientConfig(tmp_path / name, router.sam, router.session_options), session=s)
                    for name, s in (("seed", sessions[2]), ("leech", sessions[3]))]
        await asyncio.gather(*(c.start() for c in clients))
        seeder, leecher = clients

        share = make_share(tmp_path / "share" / "album", {"a.bin": 2 << 20, "c.txt": 777})
        t_seed = await seeder.seed(share, trackers=[a.announce_url])
        info_hash = parse_magnet(t_seed.magnet()).info_hash.decode("latin-1")
        for _ in range(1200):  # the seeder's announce reached A, and B heard of it through Redis
            swarm = b.server.core.swarms.get(info_hash)
            if swarm is not None and swarm.complete == 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("tracker B never learned of the seeder announced on A")
        magnet_b = magnet_of(parse_magnet(t_seed.magnet()), trackers=[b.announce_url])
        assert parse_magnet(magnet_b).peers == ()  # B is the leecher's only way to the seeder
        t_leech = await leecher.add(magnet_b, tmp_path / "downloads")
        await asyncio.wait_for(t_leech.wait_complete(), 240)
        assert tree_digests(tmp_path / "downloads" / "album") == tree_digests(share)

        def connected(site: TrackerEepsite) -> set[str]:
            return {c.identity.name for c in site.server.core.connections.values()}
        assert seeder.b32 in connected(a) and seeder.b32 not in connected(b)
        assert leecher.b32 in connected(b) and leecher.b32 not in connected(a)
        assert b.server.core.counters["offers_relayed"] >= 1 and a.server.core.counters["answers"] >= 1
    finally:
        for c in clients:
            await c.close()
        for site in sites:
            await site.close()
        redis.stop()
