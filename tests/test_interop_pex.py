"""i2p_pex with libtorrent 2.1.1's own I2P client, in both directions, on the private router.

Peers: A (ours, seeding, announces to tracker T), B (ours, told only of A by its magnet, never announces),
L (libtorrent, announces to T, later also to T2), C (ours, announces only to T2).
- libtorrent <- us: L meets A through T; A's i2p_pex names B; L dials B, whom nothing else names to it.
- us <- libtorrent: C and L meet through T2; L's i2p_pex names A and B; C dials one of them, whom nothing
  else names to C.
Uploads are slowed so that nobody completes (seeds drop each other) during the test. About 1-3 min.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import libtorrent as lt
import pytest

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.engine import parse_magnet
from i2ptorrent.tracker import AccessList, TrackerEepsite, TrackerServer
from sam_proxy import SessionRewritingProxy
from test_interop_libtorrent_i2p import libtorrent_i2p_settings
from test_recovery import wait_for

if TYPE_CHECKING:
    from conftest import SessionPool

    from i2ptorrent.transport.router import ManagedRouter

pytestmark = pytest.mark.timeout(600)


async def test_i2p_pex_both_ways_with_libtorrent(router: ManagedRouter, sam_pool: SessionPool,
                                                 tmp_path: Path) -> None:
    assert router.sam is not None
    async with SessionRewritingProxy(router.sam.host, router.sam.port) as proxy:
        ses = lt.session(libtorrent_i2p_settings(proxy.port))
        t_session, t2_session, a_session, b_session, c_session = await sam_pool.streams(
            "pex-t", "pex-t2", "pex-a", "pex-b", "pex-c")
        site = TrackerEepsite(TrackerServer(access=AccessList(None, private=False)), t_session)
        site2 = TrackerEepsite(TrackerServer(access=AccessList(None, private=False)), t2_session)

        def client(name: str, session: object, **kw: object) -> Client:
            return Client(ClientConfig(tmp_path / name, router.sam, router.session_options, webrtc=False,  # type: ignore[arg-type]
                                       **kw), session=session)  # type: ignore[arg-type]

        a = client("a", a_session, upload_rate=16 * 1024)
        b = client("b", b_session)
        c = client("c", c_session)
        try:
            await site.start()
            await site2.start()
            await asyncio.gather(a.start(), b.start(), c.start())
            share = tmp_path / "share" / "pex.bin"
            share.parent.mkdir()
            share.write_bytes(os.urandom(4 << 20))
            t_a = await a.seed(share, trackers=[site.http_announce_url], piece_size=64 * 1024)
            assert not t_a.metainfo.private

            # B knows only A, and never announces
            magnet_b = f"magnet:?xt=urn:btih:{t_a.info_hash.hex()}&x.pe={a.b32}"
            assert parse_magnet(magnet_b).trackers == ()
            t_b = await b.add(magnet_b, tmp_path / "b-down")
            await wait_for(lambda: t_a.swarm.connected_to(b.b32), 120, "B to connect to A")

            # L: the .torrent with T's .i2p announce URL, which makes it an I2P torrent for libtorrent
            atp = lt.add_torrent_params()
            atp.ti = lt.torrent_info(lt.bdecode((tmp_path / "a" / "torrents" /
                                                 f"{t_a.info_hash.hex()}.torrent").read_bytes()))
            atp.save_path = str(tmp_path / "libtorrent")
            handle = ses.add_torrent(atp)
            await asyncio.wait_for(proxy.session_ready.wait(), 120)
            handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
            ih = t_a.info_hash.decode("latin-1")

            def l_b32() -> str | None:
                swarm = site.server.core.swarms.get(ih)
                names = [p.identity.name for p in swarm.http.values()] if swarm else []
                others = [n for n in names if n != a.b32]
                return others[0] if others else None

            await wait_for(lambda: l_b32() is not None, 180, "libtorrent to announce to the tracker")
            libtorrent_b32 = l_b32()
            assert libtorrent_b32 is not None and libtorrent_b32 != b.b32

            # libtorrent <- us: L dials B, named to it only by A's i2p_pex
            await wait_for(lambda: t_b.swarm.connected_to(libtorrent_b32), 180, "libtorrent to dial B")

            # us <- libtorrent: C and L meet through T2 (where nobody else announces); L's i2p_pex names A, B.
            # Whoever announces to T2 second hears of the other; if that is C, C dials L, which libtorrent
            # takes only on a listening interface: listen on loopback from now on, as qBittorrent does
            # (before, L had to dial B itself), so the meeting does not hang on who announced first.
            # libtorrent announces to one tracker per torrent unless told to use them all
            ses.apply_settings({"announce_to_all_trackers": True, "announce_to_all_tiers": True,
                                "listen_interfaces": "127.0.0.1:0"})
            handle.add_tracker({"url": site2.http_announce_url, "tier": 0})
            handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
            magnet_c = f"magnet:?xt=urn:btih:{t_a.info_hash.hex()}&tr={site2.http_announce_url}"
            t_c = await c.add(magnet_c, tmp_path / "c-down")

            def c_meets_l() -> bool:
                return any(ps.remote == libtorrent_b32 for ps in t_c.swarm.core.handshaken())

            await wait_for(c_meets_l, 240, "C and libtorrent to meet through T2")
            swarm2 = site2.server.core.swarms.get(ih)
            assert swarm2 is not None and a.b32 not in {p.identity.name for p in swarm2.http.values()}
            await wait_for(lambda: a.b32 in t_c.candidates or b.b32 in t_c.candidates, 150,
                           "libtorrent's i2p_pex to reach C")
            await wait_for(lambda: t_c.swarm.connected_to(a.b32) or t_c.swarm.connected_to(b.b32), 120,
                           "C to dial a peer it learnt from libtorrent")
        finally:
            del ses
            for cl in (c, b, a):
                await cl.close()
            await site.close()
            await site2.close()
