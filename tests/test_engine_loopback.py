"""The engine end to end over loopback TCP (real sockets, real libtorrent), without the router.

The SAM tests (test_transfer_sam.py) cover the same over I2P; these run in seconds and pin the engine's
own behaviour: bytes identical, metadata over ut_metadata, resume without re-fetching.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from i2ptorrent.engine import Engine, create_torrent, load_torrent
from i2ptorrent.transport.stream import AsyncioByteStream

from test_engine_support import digest_tree, lying_peer, make_files


@contextlib.asynccontextmanager
async def seed_and_leech(tmp_path: Path, net: "Loopback") -> AsyncIterator[tuple[Engine, Engine]]:
    """A seeder listening as 's' and a leecher dialling as 'l', both closed afterwards even on failure."""
    seed = Engine(tmp_path / "seed-state")
    leech = Engine(tmp_path / "leech-state", dial=net.dialer("l"))
    try:
        await seed.start()
        await leech.start()
        await net.listen("s", seed)
        yield seed, leech
    finally:
        await seed.close()
        await leech.close()


class Loopback:
    """Streams between engines over 127.0.0.1 TCP; each engine gets a made-up .b32 label."""

    def __init__(self) -> None:
        self.servers: list[asyncio.base_events.Server] = []
        self.ports: dict[str, int] = {}

    async def listen(self, name: str, engine: Engine) -> None:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            label = (await r.readexactly(60)).decode()
            await engine.handle_incoming(AsyncioByteStream(r, w, label))
        srv = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.servers.append(srv)
        self.ports[self.label(name)] = srv.sockets[0].getsockname()[1]

    @staticmethod
    def label(name: str) -> str:
        return (name * 52)[:52] + ".b32.i2p"

    def dialer(self, me: str) -> Callable[[str], object]:
        async def dial(b32: str) -> AsyncioByteStream:
            r, w = await asyncio.open_connection("127.0.0.1", self.ports[b32])
            w.write(self.label(me).encode())
            return AsyncioByteStream(r, w, b32)
        return dial

    async def close(self) -> None:
        for s in self.servers:
            s.close()
            await s.wait_closed()


async def leech_from_s(leech: Engine, torrent: bytes, dest: Path, net: "Loopback",
                       until: Callable[[Any], bool]) -> None:
    """Start `leech`, add `torrent` with seeder 's' as its one candidate, and wait (60 s at most) until its
    status satisfies `until`."""
    await leech.start()
    t = await leech.add(torrent, dest)
    t.add_candidates([net.label("s")])
    async with asyncio.timeout(60):
        while not until(t.status()):
            await asyncio.sleep(0.005)


@pytest.fixture
async def net() -> AsyncIterator[Loopback]:
    lb = Loopback()
    yield lb
    await lb.close()


async def test_transfer_torrent_and_magnet_over_loopback(tmp_path: Path, net: Loopback) -> None:
    content = make_files(tmp_path / "src" / "album", {"a.bin": 3_000_000, "sub/b.bin": 1_234_567, "c.txt": 10})
    torrent = create_torrent(content, piece_size=65536)
    meta = load_torrent(torrent)
    seed = Engine(tmp_path / "seed-state")
    leech = Engine(tmp_path / "leech-state", dial=net.dialer("l"))
    leech2 = Engine(tmp_path / "leech2-state", dial=net.dialer("m"))
    engines = [seed, leech, leech2]
    try:
        for e in engines:
            await e.start()
        await net.listen("s", seed)
        st = await seed.add(torrent, content.parent)
        assert st.status().state == "seeding"
        lt1 = await leech.add(torrent, tmp_path / "dl1")
        lt1.add_candidates([net.label("s")])
        magnet = meta.magnet() + "&x.pe=" + net.label("s")
        lt2 = await leech2.add(magnet, tmp_path / "dl2")
        assert lt2.status().state == "metadata"
        await asyncio.wait_for(asyncio.gather(lt1.wait_complete(), lt2.wait_complete()), 120)
        want = digest_tree(content)
        assert digest_tree(tmp_path / "dl1" / "album") == want
        assert digest_tree(tmp_path / "dl2" / "album") == want
        for t in (lt1, lt2):
            s = t.status()
            assert s.state == "seeding" and s.pieces_done == meta.num_pieces
            assert s.stats.pieces_fetched == meta.num_pieces and s.stats.hash_failures == 0
        assert lt2.metainfo.info_bytes == meta.info_bytes
    finally:
        for e in engines:
            await e.close()


async def test_lying_peer_is_banned_and_download_completes(tmp_path: Path, net: Loopback) -> None:
    src = tmp_path / "src"
    make_files(src, {"data.bin": 2_000_000}, seed=2)
    torrent = create_torrent(src / "data.bin", piece_size=32768)
    meta = load_torrent(torrent)
    served: list[int] = []

    async def on_bad(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readexactly(60)
        await lying_peer(AsyncioByteStream(r, w, "bad"), meta, served)
    bad_srv = await asyncio.start_server(on_bad, "127.0.0.1", 0)
    net.servers.append(bad_srv)
    net.ports[net.label("b")] = bad_srv.sockets[0].getsockname()[1]

    async with seed_and_leech(tmp_path, net) as (seed, leech):
        await seed.add(torrent, src)
        t = await leech.add(torrent, tmp_path / "dl")
        t.add_candidates([net.label("b")])  # the liar first: it gets pieces assigned before the seed is known
        async with asyncio.timeout(60):
            while not served:
                await asyncio.sleep(0.01)
        t.add_candidates([net.label("s")])
        await asyncio.wait_for(t.wait_complete(), 120)
        assert (tmp_path / "dl" / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
        st = t.status().stats
        assert served, "the lying peer was never asked for anything"
        assert st.hash_failures >= 1
        assert st.peers_banned == 1 and net.label("b") in t.swarm.banned
        assert st.pieces_fetched == meta.num_pieces


async def test_leecher_stopped_at_half_resumes_without_refetching(tmp_path: Path, net: Loopback) -> None:
    src = tmp_path / "src"
    make_files(src, {"big/one.bin": 3_000_000, "big/two.bin": 3_000_000}, seed=3)
    torrent = create_torrent(src / "big", piece_size=32768)
    meta = load_torrent(torrent)
    n = meta.num_pieces
    seed = Engine(tmp_path / "seed-state")
    await seed.start()
    await net.listen("s", seed)
    await seed.add(torrent, src)
    try:
        leech = Engine(tmp_path / "leech-state", dial=net.dialer("l"))
        await leech.start()
        t = await leech.add(torrent, tmp_path / "dl")
        t.add_candidates([net.label("s")])
        async with asyncio.timeout(120):
            while t.status().pieces_done < n // 4:
                await asyncio.sleep(0.005)
            assert await t.save_resume()  # resume data that will be stale by the time of the "kill"
            while t.status().pieces_done < n // 2:
                await asyncio.sleep(0.005)
        first = t.status().stats.pieces_fetched
        await leech.close(save_resume=False)  # as abrupt as in-process gets: no fresh resume data
        assert n // 2 <= first < n

        leech = Engine(tmp_path / "leech-state", dial=net.dialer("l"))
        await leech.start()
        t = await leech.add(torrent, tmp_path / "dl")
        had = t.status().pieces_done
        assert had >= first  # every piece verified before the stop is still there
        t.add_candidates([net.label("s")])
        await asyncio.wait_for(t.wait_complete(), 120)
        second = t.status().stats.pieces_fetched
        assert second == n - had  # nothing fetched twice
        assert digest_tree(tmp_path / "dl" / "big") == digest_tree(src / "big")
        await leech.close()  # graceful: resume data saved

        leech = Engine(tmp_path / "leech-state")
        await leech.start()
        t = await leech.add(torrent, tmp_path / "dl")
        assert t.status().state == "seeding" and t.status().pieces_done == n
        await leech.close()
    finally:
        await seed.close()


async def test_selected_files_only(tmp_path: Path, net: Loopback) -> None:
    src = tmp_path / "src"
    make_files(src, {"set/one.bin": 1_000_000, "set/two.bin": 1_500_000, "set/three.bin": 700_000}, seed=4)
    torrent = create_torrent(src / "set", piece_size=65536)
    meta = load_torrent(torrent)
    async with seed_and_leech(tmp_path, net) as (seed, leech):
        await seed.add(torrent, src)
        t = await leech.add(torrent, tmp_path / "dl", selected_files=["set/two.bin"])
        t.add_candidates([net.label("s")])
        await asyncio.wait_for(t.wait_complete(), 120)
        assert (tmp_path / "dl" / "set" / "two.bin").read_bytes() == (src / "set" / "two.bin").read_bytes()
        s = t.status()
        assert s.progress == 1.0 and s.pieces_done < meta.num_pieces
        assert s.stats.pieces_fetched == s.pieces_done
        with pytest.raises(Exception, match="no such file"):
            await leech.add(torrent.replace(b"set", b"sex"), tmp_path / "dl2", selected_files=["nope"])


async def test_peer_connected_while_the_seeder_checks_still_gets_every_piece(
        tmp_path: Path, net: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    """A leecher that arrives while the seeder is still checking its files is first told 'have none';
    once the check ends it must hear about every piece, or it waits at 0 % forever."""
    from i2ptorrent.engine.storage import PieceStore

    content = make_files(tmp_path / "src" / "one", {"a.bin": 1_000_000})
    torrent = create_torrent(content, piece_size=65536)
    gate = asyncio.Event()
    real_wait = PieceStore.wait_checked

    async def held_check(self: PieceStore) -> None:
        if Path(self.handle.status().save_path) == content.parent:  # the seeder's store only
            await gate.wait()
        await real_wait(self)

    monkeypatch.setattr(PieceStore, "wait_checked", held_check)
    try:
        async with seed_and_leech(tmp_path, net) as (seed, leech):
            seeding = asyncio.create_task(seed.add(torrent, content.parent))
            lt = await leech.add(torrent, tmp_path / "dl")
            lt.add_candidates([net.label("s")])
            for _ in range(300):
                if lt.status().peers >= 1:
                    break
                await asyncio.sleep(0.1)
            assert lt.status().peers >= 1, "the leecher never reached the checking seeder"
            assert lt.status().pieces_done == 0
            gate.set()
            await asyncio.wait_for(seeding, 60)
            await asyncio.wait_for(lt.wait_complete(), 60)
            assert digest_tree(tmp_path / "dl" / "one") == digest_tree(content)
    finally:
        gate.set()


async def test_a_restarted_peer_replaces_its_silently_dead_connection(tmp_path: Path, net: Loopback,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """When a leecher process dies, I2P may never tell the seeder: its old connection looks alive for
    minutes. The restarted leecher (same destination) calling again must be served, not refused as
    'already connected' (this stalled the CLI end-to-end test)."""
    from i2ptorrent.engine import swarm

    monkeypatch.setattr(swarm, "REPLACE_AFTER", 0.5)  # (with the real 10 s the test only runs longer)
    src = tmp_path / "src"
    make_files(src, {"one.bin": 2_000_000}, seed=5)
    torrent = create_torrent(src / "one.bin", piece_size=32768)
    seed = Engine(tmp_path / "seed-state")
    await seed.start()
    await net.listen("s", seed)
    st = await seed.add(torrent, src)
    held: list[asyncio.StreamWriter] = []

    async def black_hole_dial(b32: str) -> AsyncioByteStream:
        """A stream whose seeder side is never closed: the seeder hears nothing when the leecher goes."""
        r, w = await asyncio.open_connection("127.0.0.1", net.ports[b32])
        w.write(net.label("l").encode())
        held.append(w)
        leecher_side = asyncio.StreamReader()

        async def pump() -> None:  # what the seeder sends, until the leecher "dies"
            while data := await r.read(65536):
                leecher_side.feed_data(data)
        task = asyncio.ensure_future(pump())

        class Stream(AsyncioByteStream):
            async def close(self) -> None:  # the leecher goes; nothing reaches the seeder
                task.cancel()

        return Stream(leecher_side, w, b32)

    try:
        leech = Engine(tmp_path / "leech-state", dial=black_hole_dial)
        await leech_from_s(leech, torrent, tmp_path / "dl", net, lambda st: st.pieces_done >= 5)
        await leech.close(save_resume=False)
        await asyncio.sleep(1.0)
        assert st.status().peers == 1  # the seeder still believes in the dead connection

        leech = Engine(tmp_path / "leech-state", dial=net.dialer("l"))
        await leech.start()
        t = await leech.add(torrent, tmp_path / "dl")
        t.add_candidates([net.label("s")])
        await asyncio.wait_for(t.wait_complete(), 120)
        assert digest_tree(tmp_path / "dl") == digest_tree(src)
        await leech.close()
    finally:
        await seed.close()
        for w in held:
            w.close()


async def test_closing_the_engine_waits_for_its_peer_streams_to_close(tmp_path: Path, net: Loopback) -> None:
    """A WebRTC stream over I2P takes a while to close (DTLS close_notify, SCTP shutdown). Stopping the
    engine must see each close through: before, the closes ran in tasks nobody held or awaited, and a
    stopping client ended its loop under them ("Task was destroyed but it is pending!"), the peer never
    told."""
    src = tmp_path / "src"
    make_files(src, {"one.bin": 500_000}, seed=6)
    torrent = create_torrent(src / "one.bin", piece_size=32768)
    closed: list[str] = []

    async def slow_closing_dial(b32: str) -> AsyncioByteStream:
        r, w = await asyncio.open_connection("127.0.0.1", net.ports[b32])
        w.write(net.label("l").encode())

        class Stream(AsyncioByteStream):
            async def close(self) -> None:
                await asyncio.sleep(2.0)
                await super().close()
                closed.append(self.remote)

        return Stream(r, w, b32)

    seed = Engine(tmp_path / "seed-state")
    leech = Engine(tmp_path / "leech-state", dial=slow_closing_dial)
    try:
        await seed.start()
        await net.listen("s", seed)
        await seed.add(torrent, src)
        await leech_from_s(leech, torrent, tmp_path / "dl", net, lambda st: st.peers >= 1)
        await leech.close()
        assert closed == [net.label("s")]
        # the leecher's own close of its stream to s is over (the seeder, which saw the stream end, may
        # still be closing its side: that is the seeder's to wait for)
        ours = f"closing {net.label('s')[:12]}"
        assert not [task for task in asyncio.all_tasks() if task.get_name() == ours]
    finally:
        await leech.close()
        await seed.close()
