"""Downloads across a private I2P network the way users have it: 3-hop tunnels, 50 ms one-way per
router-to-router link (round trips of ~0.7 s), 8 i2pd routers in network namespaces (the session's
`testnet` fixture, transport/testnet.py). Every test compares the bytes the leecher wrote with the seeder's.

Clients sit on the non-floodfill routers 2..7 (i2pd 2.45 fails local LeaseSet2 lookups on a floodfill);
the tracker eepsite is on router 2. Each test starts its own clients (a new SAM session each: 20 s).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from i2ptorrent.transport.sdp import CARRIER_DATAGRAM, CARRIER_STREAM
from i2ptorrent.transport.testnet import Testnet
from testnet_nodes import Node, Tracker, start_node, start_tracker, watch_download

pytestmark = [pytest.mark.testnet, pytest.mark.timeout(420)]

HOPS = 3
TRACKER_ROUTER = 2
DOWNLOAD_TIMEOUT = 240.0
KiB = 1024


@pytest_asyncio.fixture(scope="session")
async def tracker(testnet: Testnet) -> AsyncIterator[Tracker]:
    t = await start_tracker(testnet, TRACKER_ROUTER, HOPS)
    try:
        yield t
    finally:
        await t.close()


def share(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / "share" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def same_bytes(a: Path, b: Path) -> bool:
    return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


async def close_all(nodes: list[Node]) -> None:
    await asyncio.gather(*(n.close() for n in nodes), return_exceptions=True)


async def fetch_through_tracker(testnet: Testnet, tmp_path: Path, announce: str, carriers: tuple[str, ...],
                                seeder_router: int, leecher_router: int, size: int) -> set[str]:
    """Seed with only `announce` in the torrent, leech from a magnet with no x.pe: the tracker is the
    only way the leecher can find the seeder. Returns the kinds of peers the leecher had."""
    src = share(tmp_path, "through-tracker.bin", size)
    seeder, leecher = await asyncio.gather(
        start_node(testnet, seeder_router, tmp_path / "seeder", HOPS, carriers),
        start_node(testnet, leecher_router, tmp_path / "leecher", HOPS, carriers))
    try:
        torrent = await seeder.call(seeder.client.seed(src, trackers=[announce]))
        magnet = torrent.magnet()  # trackers only, no x.pe
        assert "x.pe" not in magnet
        t = await leecher.call(leecher.client.add(magnet, tmp_path / "leech"))
        progress = await watch_download(leecher, t, DOWNLOAD_TIMEOUT)
        assert same_bytes(tmp_path / "leech" / src.name, src)
        return progress.peer_kinds
    finally:
        await close_all([seeder, leecher])


async def test_magnet_through_the_http_tracker_eepsite(testnet: Testnet, tracker: Tracker,
                                                      tmp_path: Path) -> None:
    kinds = await fetch_through_tracker(testnet, tmp_path, tracker.site.http_announce_url, (CARRIER_STREAM,),
                                        seeder_router=3, leecher_router=4, size=512 * KiB)
    assert kinds == {"sam"}  # classic peers over plain SAM streams


async def test_magnet_through_the_websocket_tracker_over_sam_streams(testnet: Testnet, tracker: Tracker,
                                                                     tmp_path: Path) -> None:
    kinds = await fetch_through_tracker(testnet, tmp_path, tracker.site.announce_url, (CARRIER_STREAM,),
                                        seeder_router=5, leecher_router=6, size=512 * KiB)
    assert kinds == {"rtc:StreamCarrier"}  # pieces came in WebRTC data channels carried by SAM streams


async def test_magnet_through_the_websocket_tracker_over_sam_datagrams(testnet: Testnet, tracker: Tracker,
                                                                       tmp_path: Path) -> None:
    kinds = await fetch_through_tracker(testnet, tmp_path, tracker.site.announce_url, (CARRIER_DATAGRAM,),
                                        seeder_router=7, leecher_router=3, size=512 * KiB)
    assert kinds == {"rtc:DatagramCarrier"}


async def test_four_seeders_to_one_leecher(testnet: Testnet, tmp_path: Path) -> None:
    src = share(tmp_path, "four-seeders.bin", 1024 * KiB)
    routers = [3, 4, 5, 6]
    nodes = await asyncio.gather(*(start_node(testnet, r, tmp_path / f"seeder{r}", HOPS) for r in routers),
                                 start_node(testnet, 7, tmp_path / "leecher", HOPS))
    seeders, leecher = list(nodes[:-1]), nodes[-1]
    try:
        first = await seeders[0].call(seeders[0].client.seed(src, piece_size=16 * KiB))
        meta = first.metainfo
        others = await asyncio.gather(*(s.call(s.client.add(meta, src.parent)) for s in seeders[1:]))
        torrents = [first, *others]
        for s, t in zip(seeders, torrents):
            async def seeding(s: Node = s, t: object = t) -> None:
                await t.wait_complete()  # type: ignore[attr-defined]  # checked the file: a seeder
            await s.call(seeding(), timeout=60)
        magnet = first.magnet(peers=[s.client.b32 for s in seeders])
        t = await leecher.call(leecher.client.add(magnet, tmp_path / "leech"))
        await watch_download(leecher, t, DOWNLOAD_TIMEOUT)
        assert same_bytes(tmp_path / "leech" / src.name, src)
        uploaded = [(await s.status(st)).uploaded for s, st in zip(seeders, torrents)]
        assert sum(uploaded) >= src.stat().st_size
        assert sum(1 for u in uploaded if u > 0) >= 2, uploaded  # the pieces came from several seeders
    finally:
        await close_all([*seeders, leecher])


AFTER_KILL_TIMEOUT = 150.0


@pytest.mark.xfail(strict=False, raises=AssertionError,
                   reason="i2pd 2.45.1: after a non-floodfill transit router of the stream's tunnels dies, "
                   "the stream stalled for minutes in 3 runs of 4, and a NEW stream between the same two "
                   "destinations carried nothing either (a raw SAM stream too: 'LeaseSet was not confirmed', "
                   "'Garlic: Flags/static section AEAD verification failed'); see docs/INTERFACES.md. Only that "
                   "stall is expected: no kill, or different bytes, fail the test")
async def test_transfer_completes_when_a_transit_router_dies(testnet: Testnet, tmp_path: Path) -> None:
    """Kill the non-floodfill router that carried the most of this transfer's traffic (not the seeder's,
    the leecher's or the tracker's) once it is under way: the tunnels through it break, i2pd builds new
    ones, and the download still completes with the right bytes. (When the busiest router was a floodfill,
    the transfer did complete; killing a plain transit router stalled it in 3 runs of 4, raw SAM too.)
    Only a download that does not complete is the expected failure; anything else fails the test."""
    src = share(tmp_path, "transit-dies.bin", 1536 * KiB)
    seeder, leecher = await asyncio.gather(start_node(testnet, 3, tmp_path / "seeder", HOPS),
                                           start_node(testnet, 4, tmp_path / "leecher", HOPS))
    killed: list[int] = []
    candidates = [i for i in testnet.client_routers if i not in (3, 4, TRACKER_ROUTER)]
    before: dict[int, int] = {}

    async def kill_when_under_way(st: object) -> None:
        nonlocal before
        done = st.pieces_done  # type: ignore[attr-defined]
        if killed or not done:
            return
        if not before:
            before = testnet.traffic()
            return
        if done < 0.15 * st.pieces_total:  # type: ignore[attr-defined]
            return
        now = testnet.traffic()
        busiest = max(candidates, key=lambda i: now.get(i, 0) - before.get(i, 0))
        carried = now.get(busiest, 0) - before.get(busiest, 0)
        if carried < 64 * KiB:  # it must really be in the path of this transfer
            pytest.fail(f"no candidate router carried this transfer: {busiest} carried {carried} bytes")
        print(f"killing router {busiest} at {done}/{st.pieces_total} pieces; "  # type: ignore[attr-defined]
              f"traffic since the first piece: {[(i, now.get(i, 0) - before.get(i, 0)) for i in candidates]}")
        testnet.kill(busiest)
        killed.append(busiest)

    try:
        torrent = await seeder.call(seeder.client.seed(src))
        t = await leecher.call(leecher.client.add(seeder.client.magnet(torrent), tmp_path / "leech"))
        try:
            await watch_download(leecher, t, AFTER_KILL_TIMEOUT, on_poll=kill_when_under_way)
        except AssertionError as exc:
            logs = "\n".join(f"router {i}:\n{testnet.routers[i].log_tail()}" for i in (3, 4))
            raise AssertionError(f"{exc}\n{logs}") from None
        if not killed or testnet.routers[killed[0]].alive():
            pytest.fail("the download finished before a transit router could be killed")
        if not same_bytes(tmp_path / "leech" / src.name, src):
            pytest.fail("the downloaded bytes differ")
    finally:
        await close_all([seeder, leecher])
        for i in killed:
            await testnet.restart(i)
