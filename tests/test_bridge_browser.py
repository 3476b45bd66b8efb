"""The bridge with a real browser: Debian's Chromium runs the stock webtorrent bundle against the bridge.

Everything runs in a network namespace the test creates (tests/browser/lab.py): a private i2pd, an
i2ptorrent engine "remote" that is only reachable over I2P, the bridge's own engine, the bridge, the page
server and Chromium. Both directions: the page downloads a file that the remote engine seeds over I2P
(the bridge's engine fetching it over I2P while the browser fetches it from the bridge), and the page seeds
a file that the remote engine then downloads over I2P from the bridge. Bytes are compared end to end.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from lab import Chromium, I2PWorld, NetnsLoop, missing_requirements  # noqa: E402

from i2ptorrent.bridge import Bridge  # noqa: E402
from i2ptorrent.engine import create_torrent, parse_magnet  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.router, pytest.mark.timeout(240)]

SKIP = missing_requirements()


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[NetnsLoop, I2PWorld]]:
    if SKIP:
        pytest.skip(SKIP)
    lab = NetnsLoop().start()
    tmp = tempfile.TemporaryDirectory(prefix="i2pt-bridge-")
    w = I2PWorld(Path(tmp.name), names=("remote", "local"))
    try:
        lab.run(w.start(), timeout=90)
        yield lab, w
    finally:
        try:
            lab.run(w.close(), timeout=60)
        finally:
            w.stop_browsers()  # even if the loop is stuck: Chromium is killed by process group
            lab.stop()
            if w.router.process is not None and w.router.process.poll() is None:
                w.router.kill()
            tmp.cleanup()


def _blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _diagnose(w: I2PWorld, chrome: Chromium) -> str:
    return ("page log:\n" + "\n".join(w.page.logs[-40:]) + f"\nbridge: {w.bridge.stats()}"
            + "\nchromium log tail:\n" + chrome.log_tail(1500))


def test_browser_downloads_what_an_i2p_peer_seeds(world: tuple[NetnsLoop, I2PWorld]) -> None:
    lab, w = world
    data = _blob(7, 3 * 1024 * 1024 + 4321)

    async def scenario() -> tuple[bytes, str]:
        w.page.reset()
        seed_dir = w.tmp / "remote-seed"
        seed_dir.mkdir()
        (seed_dir / "from-i2p.bin").write_bytes(data)
        seeded = await w.engines[0].add(create_torrent(seed_dir / "from-i2p.bin", piece_size=65536), seed_dir)
        assert seeded.status().state == "seeding"
        # The bridge's engine knows the seeder only by its .b32 and fetches over I2P ...
        await w.engines[1].add(seeded.magnet(peers=[w.sessions[0].b32]), w.tmp / "local-dl")
        # ... while the browser, given no peer at all, fetches from the bridge.
        chrome = w.browser(mode="download", magnet=seeded.magnet())
        try:
            got = await asyncio.wait_for(w.page.result("download"), 90)
        except BaseException:
            print(_diagnose(w, chrome))
            raise
        finally:
            w.stop_browsers()
        return got, seeded.info_hash.hex()

    got, info_hash = lab.run(scenario(), timeout=120)
    assert len(got) == len(data)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    # It came over I2P: the bridge's engine holds the torrent, fetched from the remote seeder.
    local = w.engines[1].get(bytes.fromhex(info_hash))
    assert local is not None and local.status().stats.pieces_fetched > 0
    assert w.bridge.stats()["bytes_to_browsers"] >= len(data)  # every piece went through the bridge


def test_i2p_peer_downloads_what_the_browser_seeds(world: tuple[NetnsLoop, I2PWorld]) -> None:
    lab, w = world
    data = _blob(8, 2 * 1024 * 1024 + 777)

    async def scenario() -> tuple[bytes, str]:
        w.page.reset()
        w.page.file = data
        chrome = w.browser(mode="seed", name="from-browser.bin")
        try:
            magnet = (await asyncio.wait_for(w.page.result("magnet"), 60)).decode()
            meta = parse_magnet(magnet)
            # The remote I2P peer is told only the bridge's .b32; the bridge adopted the browser's torrent.
            t = await w.engines[0].add(f"magnet:?xt=urn:btih:{meta.info_hash.hex()}&x.pe={w.sessions[1].b32}",
                                   w.tmp / "remote-dl")
            await asyncio.wait_for(t.wait_complete(), 90)
        except BaseException:
            print(_diagnose(w, chrome))
            raise
        finally:
            w.stop_browsers()
        path = w.tmp / "remote-dl" / t.name
        return path.read_bytes(), meta.info_hash.hex()

    got, info_hash = lab.run(scenario(), timeout=150)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert [t.info_hash.hex() for t in w.bridge.adopted] == [info_hash]


def test_browser_channel_spliced_to_a_remote_i2p_peer(world: tuple[NetnsLoop, I2PWorld]) -> None:
    """No local copy at all: the browser's channel is joined byte for byte to an I2P stream to the seeder."""
    lab, w = world
    data = _blob(9, 1024 * 1024 + 55)

    async def scenario() -> bytes:
        w.page.reset()
        seed_dir = w.tmp / "remote-seed-2"
        seed_dir.mkdir()
        (seed_dir / "spliced.bin").write_bytes(data)
        seeded = await w.engines[0].add(create_torrent(seed_dir / "spliced.bin", piece_size=32768), seed_dir)
        dialled: list[bytes] = []

        async def connect_remote(info_hash: bytes) -> Any:
            dialled.append(info_hash)
            return await w.sessions[1].connect(w.sessions[0].b32, timeout=30)

        # a bridge whose engine lacks the torrent and adopts nothing: only the splice can serve it
        splice_bridge = Bridge(w.engines[1], connect_remote=connect_remote)
        await splice_bridge.start()
        chrome = Chromium(w.page.url(mode="download", magnet=seeded.magnet(),
                                     tracker=splice_bridge.announce_url)).start()
        w.chromes.append(chrome)
        try:
            got = await asyncio.wait_for(w.page.result("download"), 60)
        except BaseException:
            print(_diagnose(w, chrome))
            raise
        finally:
            w.stop_browsers()
            await splice_bridge.close()
        assert dialled == [seeded.info_hash]
        assert w.engines[1].get(seeded.info_hash) is None  # the bridge's engine never saw it
        return got

    got = lab.run(scenario(), timeout=90)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_pages_without_the_secret_or_from_another_origin_get_nothing(world: tuple[NetnsLoop, I2PWorld]) -> None:
    """Each page seeds a file (which an adopting bridge would take up and share on I2P) and asks for a
    torrent nobody local has (which would make the bridge dial I2P). Turned away, it gets an error; the
    node adopts nothing, dials nothing, and its torrent list stays as it was. The listed page is served."""
    lab, w = world
    wanted = "magnet:?xt=urn:btih:" + bytes(range(20)).hex()

    async def scenario() -> None:
        dialled: list[bytes] = []

        async def connect_remote(info_hash: bytes) -> Any:
            dialled.append(info_hash)
            return None

        guarded = Bridge(w.client, adopt_dir=w.tmp / "adopted-guarded", connect_remote=connect_remote,
                         allowed_origins=[w.page.origin])
        await guarded.start()
        base = f"ws://127.0.0.1:{guarded.port}"
        held = {s.info_hash for s in w.client.status()}
        pages = {"wrong secret": w.page.url(tracker=f"{base}/{'x' * len(guarded.secret)}/announce"),
                 "no secret": w.page.url(tracker=f"{base}/announce"),
                 "another origin": w.page.url(host="localhost", tracker=guarded.announce_url)}
        try:
            for what, url in pages.items():
                w.page.reset()
                w.page.file = _blob(10, 300_000)
                chrome = Chromium(url + f"&mode=tempt&name=tempt.bin&magnet={quote(wanted)}").start()
                w.chromes.append(chrome)
                try:
                    for kind in ("seed", "download"):
                        reason = await asyncio.wait_for(w.page.result(f"refused-{kind}"), 60)
                        assert b"Error connecting" in reason, (what, reason)
                except BaseException:
                    print(what, _diagnose(w, chrome))
                    raise
                finally:
                    w.stop_browsers()
                assert guarded.stats()["sockets"] == 0 and guarded.core.refused == 0, what
            assert guarded.turned_away >= len(pages)
            assert dialled == [] and guarded.adopted == [] and guarded.stats()["channels_opened"] == 0
            assert {s.info_hash for s in w.client.status()} == held
            # The same bridge serves the page it lists, at the URL it printed: it adopts what that page seeds.
            w.page.reset()
            w.page.file = _blob(11, 300_000)
            chrome = Chromium(w.page.url(tracker=guarded.announce_url, mode="seed", name="welcome.bin")).start()
            w.chromes.append(chrome)
            try:
                info_hash = parse_magnet((await asyncio.wait_for(w.page.result("magnet"), 60)).decode()).info_hash
                async with asyncio.timeout(60):
                    while not guarded.adopted:
                        await asyncio.sleep(0.1)
            except BaseException:
                print(_diagnose(w, chrome))
                raise
            finally:
                w.stop_browsers()
            assert [t.info_hash for t in guarded.adopted] == [info_hash]
            assert {s.info_hash for s in w.client.status()} == held | {info_hash.hex()}
        finally:
            await guarded.close()

    lab.run(scenario(), timeout=200)
