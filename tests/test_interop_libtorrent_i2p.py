"""A classic BitTorrent-over-I2P client downloads from us: libtorrent 2.1.1's own I2P support (the engine of
qBittorrent's I2P mode) announces to our HTTP tracker eepsite over I2P, dials our seeder's .b32 over its
own SAM session and fetches the file. Everything runs on the private router; libtorrent reaches it only
through a loopback SAM proxy that makes its lease set one our i2pd 2.45 can look up (tests/sam_proxy.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libtorrent as lt
import pytest

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.engine.metainfo import create_torrent
from i2ptorrent.engine.settings import anonymous_settings
from i2ptorrent.tracker import AccessList, TrackerEepsite, TrackerServer
from sam_proxy import SessionRewritingProxy, rewrite_session_create

if TYPE_CHECKING:
    from conftest import SessionPool

    from i2ptorrent.transport.router import ManagedRouter

pytestmark = pytest.mark.timeout(400)


def test_session_create_is_rewritten_and_nothing_else() -> None:
    line = (b"SESSION CREATE STYLE=STREAM ID=x DESTINATION=TRANSIENT SIGNATURE_TYPE=7 inbound.length=0 "
            b"i2cp.leaseSetEncType=4,0\n")
    assert rewrite_session_create(line) == (b"SESSION CREATE STYLE=STREAM ID=x DESTINATION=TRANSIENT "
                                            b"SIGNATURE_TYPE=7 inbound.length=0 i2cp.leaseSetType=1\n")
    other = b"STREAM CONNECT ID=x DESTINATION=abc i2cp.leaseSetEncType=4\n"
    assert rewrite_session_create(other) == other


def libtorrent_i2p_settings(sam_port: int) -> dict[str, Any]:
    """A libtorrent that only speaks I2P: our engine's no-clearnet settings, then its SAM client switched on
    (at our proxy, 0-hop tunnels on the private router) and outgoing peer connections allowed, which for a
    libtorrent with no listen socket, no DHT and only I2P peers means SAM streams."""
    settings = anonymous_settings()
    settings.update({
        "i2p_hostname": "127.0.0.1", "i2p_port": sam_port, "allow_i2p_mixed": False,
        "i2p_inbound_length": 0, "i2p_outbound_length": 0, "i2p_inbound_quantity": 1, "i2p_outbound_quantity": 1,
        "enable_outgoing_tcp": True, "outgoing_interfaces": "127.0.0.1", "anonymous_mode": False,
        "alert_mask": lt.alert_category.error | lt.alert_category.peer | lt.alert_category.status
        | lt.alert_category.tracker | lt.alert_category.connect,
    })
    return settings


async def tracker_and_seeder(router: ManagedRouter, sam_pool: SessionPool,
                             tmp_path: Path) -> tuple[TrackerEepsite, Client]:
    """Our HTTP tracker eepsite and a seeding client on pooled sessions, for the caller to start and close."""
    assert router.sam is not None
    tracker_session, seeder_session = await sam_pool.streams("lt-tracker", "lt-seeder")
    site = TrackerEepsite(TrackerServer(access=AccessList(None, private=False)), tracker_session)
    return site, Client(ClientConfig(tmp_path / "seeder", router.sam, router.session_options), session=seeder_session)


async def wait_until_seeding(ses: Any, handle: Any, seen: list[str], ours: Callable[[], str],
                             timeout: float = 240) -> None:
    """Collect libtorrent's alerts into `seen` until `handle` seeds; a timeout says what libtorrent saw and
    `ours()` (what our side knew then)."""
    try:
        async with asyncio.timeout(timeout):
            while not handle.status().is_seeding:
                seen += [f"{type(a).__name__}: {a.message()}" for a in ses.pop_alerts()]
                await asyncio.sleep(0.2)
    except TimeoutError:
        st = handle.status()
        raise AssertionError(
            f"libtorrent did not finish in {timeout:.0f} s: state {st.state}, progress {st.progress:.3f}, "
            f"peers {st.num_peers}; {ours()}; last alerts: {seen[-25:]}") from None
    seen += [f"{type(a).__name__}: {a.message()}" for a in ses.pop_alerts()]


async def test_libtorrent_i2p_client_downloads_from_our_seeder(router: ManagedRouter, sam_pool: SessionPool,
                                                               tmp_path: Path) -> None:
    assert router.sam is not None
    async with SessionRewritingProxy(router.sam.host, router.sam.port) as proxy:
        # libtorrent's SAM session takes the router's 20 s too: start it alongside ours
        ses = lt.session(libtorrent_i2p_settings(proxy.port))
        site, seeder = await tracker_and_seeder(router, sam_pool, tmp_path)
        try:
            await site.start()
            await seeder.start()
            share = tmp_path / "share" / "for-libtorrent.bin"
            share.parent.mkdir()
            share.write_bytes(os.urandom(3 << 20))
            torrent = await seeder.seed(share, trackers=[site.http_announce_url])
            # libtorrent announces once its SAM session is up and then waits the tracker's interval (600 s):
            # if our seeder's first announce had not landed yet (a retry under load), it would hear of no
            # peer for 10 minutes. This is about libtorrent downloading from us, so start it once the
            # tracker lists our seeder.
            async with asyncio.timeout(120):
                while not site.server.core.stats()["seeders"]:
                    await asyncio.sleep(0.2)
            atp = lt.add_torrent_params()
            atp.ti = torrent.metainfo.torrent_info()
            atp.save_path = str(tmp_path / "libtorrent")
            atp.trackers = [site.http_announce_url]
            handle = ses.add_torrent(atp)
            await asyncio.wait_for(proxy.session_ready.wait(), 120)
            handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
            seen: list[str] = []
            await wait_until_seeding(ses, handle, seen, lambda: f"it dialled {proxy.dialled}, our seeder "
                                     f"uploaded {torrent.status().uploaded}")
            got = tmp_path / "libtorrent" / "for-libtorrent.bin"
            assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(share.read_bytes()).digest()
            assert any("peer_connect_alert" in s and "(I2P)" in s for s in seen), seen[-20:]
            assert b"STREAM CONNECT" in proxy.commands  # it dialled our .b32 through SAM
            assert torrent.status().uploaded >= share.stat().st_size  # and we served every byte
        finally:
            del ses
            await seeder.close()
            await site.close()


async def test_a_libtorrent_leecher_that_announced_first_is_dialled_by_our_seeder(
        router: ManagedRouter, sam_pool: SessionPool, tmp_path: Path) -> None:
    """libtorrent (listening, as qBittorrent does) announces while nobody seeds, so the tracker names no
    peer and it waits out the interval (600 s). Our seeder starts after it: it hears of libtorrent from the
    tracker and dials it, so the download completes without libtorrent announcing again."""
    assert router.sam is not None
    share = tmp_path / "share" / "late-seed.bin"
    share.parent.mkdir()
    share.write_bytes(os.urandom(2 << 20))
    async with SessionRewritingProxy(router.sam.host, router.sam.port) as proxy:
        settings = libtorrent_i2p_settings(proxy.port)
        # libtorrent takes an I2P stream in only on a local interface that accepts connections (else "local
        # interface has incoming connections disabled: 127.0.0.1", the SAM socket's end): as in
        # qBittorrent's I2P mode, which listens, give it one, on loopback
        settings["listen_interfaces"] = "127.0.0.1:0"
        ses = lt.session(settings)
        site, seeder = await tracker_and_seeder(router, sam_pool, tmp_path)
        try:
            await site.start()
            data = create_torrent(share, trackers=[site.http_announce_url])
            atp = lt.add_torrent_params()
            atp.ti = lt.torrent_info(lt.bdecode(data))
            atp.save_path = str(tmp_path / "libtorrent")
            handle = ses.add_torrent(atp)
            seen: list[str] = []
            async with asyncio.timeout(180):  # its session (20 s), then its announce, retried after ~35 s
                while not any("tracker_reply_alert" in a for a in seen):  # answered: it now waits 600 s
                    seen += [f"{type(a).__name__}: {a.message()}" for a in ses.pop_alerts()]
                    await asyncio.sleep(0.2)
            assert site.server.core.stats()["leechers"] == 1 and not site.server.core.stats()["seeders"]
            announced = len(seen)
            await seeder.start()
            torrent = await seeder.add(data, share.parent)
            await wait_until_seeding(ses, handle, seen, lambda: f"our seeder knew {list(torrent.candidates)}, "
                                     f"its status {torrent.status()}")
            got = tmp_path / "libtorrent" / share.name
            assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(share.read_bytes()).digest()
            again = [s for s in seen[announced:] if "tracker_announce_alert" in s and "(completed)" not in s]
            assert not again  # it heard of us from our dial alone, not from announcing again
            assert torrent.status().uploaded >= share.stat().st_size
        finally:
            del ses
            await seeder.close()
            await site.close()
