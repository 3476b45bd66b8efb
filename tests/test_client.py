"""Whole clients on the real router: peers that find each other only through the tracker eepsite."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from i2ptorrent.client import Client, ClientConfig, ClientError
from i2ptorrent.engine import parse_magnet
from i2ptorrent.tracker import AccessList, TrackerEepsite, TrackerServer
from i2ptorrent.tracker.client import http_scrape
from i2ptorrent.tracker.urls import tracker_opener
from i2ptorrent.transport.router import ManagedRouter
from i2ptorrent.transport.sdp import CARRIER_DATAGRAM

if TYPE_CHECKING:
    from conftest import SessionPool


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest_asyncio.fixture(scope="module")
async def tracker(sam_pool: "SessionPool") -> AsyncIterator[TrackerEepsite]:
    (session,) = await sam_pool.streams("client-tracker")
    site = TrackerEepsite(TrackerServer(access=AccessList(None, private=False)), session)
    await site.start()
    try:
        yield site
    finally:
        await site.close()


@pytest_asyncio.fixture
async def pair(router: ManagedRouter, sam_pool: "SessionPool", tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    seed_session, leech_session = await sam_pool.streams("client-seed", "client-leech")
    clients = [Client(ClientConfig(tmp_path / name, router.sam, router.session_options), session=s)
               for name, s in (("seed", seed_session), ("leech", leech_session))]
    await asyncio.gather(*(c.start() for c in clients))
    try:
        yield clients[0], clients[1]
    finally:
        for c in clients:
            await c.close()


def make_share(root: Path, sizes: dict[str, int]) -> Path:
    for name, size in sizes.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
    return root


@pytest.mark.parametrize("scheme", ["ws", "http"])
async def test_peers_meet_only_through_the_tracker(pair: tuple[Client, Client], tracker: TrackerEepsite,
                                                   tmp_path: Path, scheme: str) -> None:
    """ws: WebTorrent offers/answers relayed by the eepsite, pieces over WebRTC data channels carried by SAM
    streams. http: classic I2P announce, compact destination hashes, pieces over plain SAM streams."""
    await transfer_through_tracker(*pair, tracker, tmp_path, scheme)


async def test_webrtc_over_the_datagram_carrier(router: ManagedRouter, sam_pool: "SessionPool",
                                                tracker: TrackerEepsite, tmp_path: Path) -> None:
    """Both clients accept only sam-datagram: the torrent moves over WebRTC in repliable I2P datagrams."""
    sessions = await sam_pool.streams("client-dg-seed", "client-dg-leech")
    cfg = dict(sam=router.sam, session_options=router.session_options, rtc_carriers=(CARRIER_DATAGRAM,))
    clients = [Client(ClientConfig(tmp_path / f"dg{i}", **cfg), session=s)  # type: ignore[arg-type]
               for i, s in enumerate(sessions)]
    await asyncio.gather(*(c.start() for c in clients))
    try:
        assert all(c._datagrams is not None for c in clients)
        await transfer_through_tracker(clients[0], clients[1], tracker, tmp_path, "ws")
    finally:
        for c in clients:
            await c.close()


async def transfer_through_tracker(seeder: Client, leecher: Client, tracker: TrackerEepsite, tmp_path: Path,
                                   scheme: str) -> None:
    share = make_share(tmp_path / "share" / "album", {"a.bin": 3 << 20, "sub/b.bin": 1 << 20, "c.txt": 777})
    url = tracker.announce_url if scheme == "ws" else tracker.http_announce_url
    t_seed = await seeder.seed(share, trackers=[url])
    assert t_seed.status().state == "seeding"
    magnet = t_seed.magnet()  # trackers only: no x.pe, so the tracker is the only way to find the seeder
    meta = parse_magnet(magnet)
    assert meta.peers == () and meta.trackers == (url,)
    t_leech = await leecher.add(magnet, tmp_path / "downloads")
    await asyncio.wait_for(t_leech.wait_complete(), 180)
    assert tree_digests(tmp_path / "downloads" / "album") == tree_digests(share)
    st = t_leech.status()
    assert st.pieces_done == st.pieces_total and st.stats.hash_failures == 0
    # The tracker hears that the leecher finished (`completed`, over HTTP and over the WebSocket alike):
    # its scrape counts two seeders and one download.
    scrape_url = tracker.http_announce_url
    opener = tracker_opener(leecher.session, scrape_url, False, 60)  # type: ignore[arg-type]
    counts = None
    for _ in range(60):
        counts = (await http_scrape(opener, scrape_url, [t_leech.info_hash]))[t_leech.info_hash]
        if counts[0] == 2:
            break
        await asyncio.sleep(0.5)
    assert counts == (2, 0, 1), counts


async def test_clearnet_tracker_is_refused_not_contacted(pair: tuple[Client, Client], tmp_path: Path) -> None:
    seeder, _ = pair
    share = make_share(tmp_path / "s", {"x.bin": 1000})
    with pytest.raises(ClientError, match="not an I2P address"):
        await seeder.seed(share, trackers=["http://tracker.example.com/announce"])
