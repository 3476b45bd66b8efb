"""Torrents moved between our own clients over real SAM streams on the private i2pd router.

Each client is an Engine plus one long-lived StreamSession (its destination) with an accept loop; peers
find each other only by .b32 address. The SAM sessions are shared by the whole module (a session takes
20 s to become ready); every test makes fresh engines and data directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from i2ptorrent.engine import Engine, create_torrent, load_torrent
from i2ptorrent.transport.sam import SAMError, StreamSession
from i2ptorrent.transport.stream import ByteStream

from test_engine_support import digest_tree, lying_peer, make_files

if TYPE_CHECKING:
    from conftest import SessionPool

pytestmark = pytest.mark.timeout(600)

MiB = 1024 * 1024
NAMES = ("eng-seed", "eng-l1", "eng-l2", "eng-l3", "eng-bad")


class Node:
    """One client: a SAM stream session (its .b32) feeding accepted streams to whichever engine is current."""

    def __init__(self, session: StreamSession) -> None:
        self.session = session
        self.b32 = session.b32
        self.engine: Engine | None = None
        self.on_accept = None  # for the lying peer: a coroutine function taking the stream
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop())
        self._handlers: set[asyncio.Task[object]] = set()

    async def dial(self, b32: str) -> ByteStream:
        return await self.session.connect(b32, timeout=60)

    async def new_engine(self, data_dir: Path, **limits: int) -> Engine:
        self.engine = Engine(data_dir, dial=self.dial, own_addresses=[self.b32], **limits)
        await self.engine.start()
        return self.engine

    async def _accept_loop(self) -> None:
        while not self.session.closed:
            try:
                stream = await self.session.accept()
            except SAMError:
                await asyncio.sleep(0.2)
                continue
            if self.on_accept is not None:
                coro = self.on_accept(stream)
            elif self.engine is not None:
                coro = self.engine.handle_incoming(stream)
            else:
                coro = stream.close()
            task = asyncio.get_running_loop().create_task(coro)
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def stop_engine(self, save_resume: bool = True) -> None:
        if self.engine is not None:
            await self.engine.close(save_resume=save_resume)
            self.engine = None

    async def close(self) -> None:
        await self.stop_engine()
        self._accept_task.cancel()
        for t in list(self._handlers):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._accept_task


@pytest_asyncio.fixture(scope="module")
async def nodes(sam_pool: SessionPool) -> AsyncIterator[dict[str, Node]]:
    sessions = await sam_pool.streams(*NAMES)
    made = {name.removeprefix("eng-"): Node(s) for name, s in zip(NAMES, sessions)}
    try:
        yield made
    finally:
        for n in made.values():
            await n.close()


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A 20 MiB multi-file torrent: (directory, .torrent bytes)."""
    root = tmp_path_factory.mktemp("content") / "collection"
    make_files(root, {"video/part1.bin": 11 * MiB, "video/part2.bin": 7 * MiB + 12345,
                      "docs/readme.txt": 2 * MiB - 12345, "docs/empty-ish.txt": 1}, seed=20)
    return root, create_torrent(root, trackers=["http://tracker.b32.i2p/a"], piece_size=256 * 1024)


@pytest_asyncio.fixture
async def clean(nodes: dict[str, Node]) -> AsyncIterator[dict[str, Node]]:
    """Every engine stopped after the test, even on failure."""
    try:
        yield nodes
    finally:
        for n in nodes.values():
            n.on_accept = None
            await n.stop_engine()


async def test_torrent_file_and_magnet_between_two_destinations(clean: dict[str, Node], tmp_path: Path,
                                                               content: tuple[Path, bytes]) -> None:
    root, torrent = content
    meta = load_torrent(torrent)
    seed, l1, l2 = clean["seed"], clean["l1"], clean["l2"]
    seng = await seed.new_engine(tmp_path / "seed")
    st = await seng.add(torrent, root.parent)
    assert st.status().state == "seeding"

    by_file = await (await l1.new_engine(tmp_path / "l1")).add(torrent, tmp_path / "dl1")
    by_file.add_candidates([seed.b32])
    magnet = st.magnet(peers=[seed.b32])
    assert "x.pe=" in magnet and "tracker.b32.i2p" in magnet
    by_magnet = await (await l2.new_engine(tmp_path / "l2")).add(magnet, tmp_path / "dl2")
    assert by_magnet.status().state == "metadata"

    await asyncio.wait_for(asyncio.gather(by_file.wait_complete(), by_magnet.wait_complete()), 300)
    want = digest_tree(root)
    assert digest_tree(tmp_path / "dl1" / "collection") == want
    assert digest_tree(tmp_path / "dl2" / "collection") == want
    assert by_magnet.metainfo.info_bytes == meta.info_bytes  # metadata came from the seeder, verified
    for t in (by_file, by_magnet):
        s = t.status()
        assert s.state == "seeding" and s.pieces_done == meta.num_pieces
        assert s.stats.pieces_fetched == meta.num_pieces and s.stats.hash_failures == 0
    assert st.status().uploaded >= 2 * meta.total_size


async def test_three_leechers_from_one_seed(clean: dict[str, Node], tmp_path: Path,
                                            content: tuple[Path, bytes]) -> None:
    root, torrent = content
    meta = load_torrent(torrent)
    seed = clean["seed"]
    await (await seed.new_engine(tmp_path / "seed")).add(torrent, root.parent)
    leechers = [clean["l1"], clean["l2"], clean["l3"]]
    torrents = []
    for i, node in enumerate(leechers):
        t = await (await node.new_engine(tmp_path / f"l{i}")).add(torrent, tmp_path / f"dl{i}")
        t.add_candidates([seed.b32] + [o.b32 for o in leechers if o is not node])
        torrents.append(t)
    await asyncio.wait_for(asyncio.gather(*(t.wait_complete() for t in torrents)), 300)
    want = digest_tree(root)
    for i, t in enumerate(torrents):
        assert digest_tree(tmp_path / f"dl{i}" / "collection") == want
        assert t.status().stats.pieces_fetched == meta.num_pieces
        assert t.status().stats.hash_failures == 0


async def test_corrupt_peer_is_banned_and_download_completes(clean: dict[str, Node], tmp_path: Path,
                                                            content: tuple[Path, bytes]) -> None:
    root, torrent = content
    meta = load_torrent(torrent)
    seed, leech, bad = clean["seed"], clean["l1"], clean["bad"]
    served: list[int] = []
    bad.on_accept = lambda stream: lying_peer(stream, meta, served)
    await (await seed.new_engine(tmp_path / "seed")).add(torrent, root.parent)
    t = await (await leech.new_engine(tmp_path / "leech")).add(torrent, tmp_path / "dl")
    t.add_candidates([bad.b32])
    async with asyncio.timeout(120):  # the liar gets the first pieces
        while not served:
            await asyncio.sleep(0.05)
    t.add_candidates([seed.b32])
    await asyncio.wait_for(t.wait_complete(), 300)
    assert digest_tree(tmp_path / "dl" / "collection") == digest_tree(root)
    stats = t.status().stats
    assert stats.hash_failures >= 1
    assert stats.peers_banned == 1 and bad.b32 in t.swarm.banned
    assert not t.swarm.connected_to(bad.b32)


async def test_leecher_killed_at_half_resumes_without_refetching(clean: dict[str, Node], tmp_path: Path,
                                                                content: tuple[Path, bytes]) -> None:
    root, torrent = content
    meta = load_torrent(torrent)
    n = meta.num_pieces
    seed, leech = clean["seed"], clean["l2"]
    await (await seed.new_engine(tmp_path / "seed")).add(torrent, root.parent)
    t = await (await leech.new_engine(tmp_path / "leech")).add(torrent, tmp_path / "dl")
    t.add_candidates([seed.b32])
    async with asyncio.timeout(300):
        while t.status().pieces_done < n // 2:
            await asyncio.sleep(0.005)
    fetched_before = t.status().stats.pieces_fetched
    await leech.stop_engine(save_resume=False)  # no resume data written: as after a kill
    assert n // 2 <= fetched_before < n

    t = await (await leech.new_engine(tmp_path / "leech")).add(torrent, tmp_path / "dl")
    had = t.status().pieces_done
    assert had >= fetched_before  # every piece verified before the kill survived it
    t.add_candidates([seed.b32])
    await asyncio.wait_for(t.wait_complete(), 300)
    assert t.status().stats.pieces_fetched == n - had  # no verified piece fetched again
    assert digest_tree(tmp_path / "dl" / "collection") == digest_tree(root)


async def timed_fetch(node: Node, data_dir: Path, torrent: bytes, out: Path, seed_b32: str, **limits: int) -> float:
    """Seconds from giving the leecher its seed to every piece verified."""
    t = await (await node.new_engine(data_dir, **limits)).add(torrent, out)
    started = time.monotonic()
    t.add_candidates([seed_b32])
    await asyncio.wait_for(t.wait_complete(), 300)
    assert t.status().stats.hash_failures == 0
    return time.monotonic() - started


async def test_upload_and_download_limits_hold_and_the_data_is_intact(clean: dict[str, Node], tmp_path: Path) -> None:
    """4 MiB takes well under 2 s unlimited here; at 512 KiB/s it cannot take less than ~7.5 s (8 s minus
    the half-second burst). A lower bound only: a slow machine makes it longer, never shorter."""
    root = tmp_path / "limited"
    make_files(root, {"a.bin": 4 * MiB}, seed=7)
    torrent = create_torrent(root, piece_size=64 * 1024)
    limit = 512 * 1024
    floor = (4 * MiB - limit) / limit * 0.9
    seed, l1, l2 = clean["seed"], clean["l1"], clean["l2"]
    seng = await seed.new_engine(tmp_path / "seed", upload_rate=limit)
    await seng.add(torrent, tmp_path)

    upload_limited = await timed_fetch(l1, tmp_path / "l1", torrent, tmp_path / "dl1", seed.b32)
    assert digest_tree(tmp_path / "dl1" / "limited") == digest_tree(root)
    assert upload_limited >= floor, f"4 MiB uploaded in {upload_limited:.1f} s despite a 512 KiB/s limit"

    seng.set_rate_limits(upload_rate=0)
    download_limited = await timed_fetch(l2, tmp_path / "l2", torrent, tmp_path / "dl2", seed.b32,
                                         download_rate=limit)
    assert digest_tree(tmp_path / "dl2" / "limited") == digest_tree(root)
    assert download_limited >= floor, f"4 MiB downloaded in {download_limited:.1f} s despite a 512 KiB/s limit"
    print(f"4 MiB at a 512 KiB/s limit: upload-limited {upload_limited:.1f} s, "
          f"download-limited {download_limited:.1f} s (8 s expected)")
