"""A seed and a leech (engine + libtorrent + SAM) under a socket audit: every address must be loopback.

The client runs in a child process under `strace -f` (all threads, libtorrent's included); tests/audit.py
reads every address it connected, bound or sent to (what counts as local is said there).
Run as a script, this file is that child: it moves a small torrent between two destinations over SAM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2ptorrent.engine import Engine, create_torrent  # noqa: E402
from i2ptorrent.engine.settings import anonymous_settings  # noqa: E402
from i2ptorrent.transport.router import ManagedRouter  # noqa: E402
from i2ptorrent.transport.sam import SAMAddress, StreamSession, new_destination  # noqa: E402

from audit import run_traced  # noqa: E402
from test_engine_support import digest_tree, make_files  # noqa: E402


async def test_libtorrent_runs_with_every_network_feature_off(tmp_path: Path) -> None:
    """The running session holds the anonymous pack (given to its constructor, before it could open a
    socket): no listen socket, DHT, LSD, UPnP, NAT-PMP or WebTorrent STUN server."""
    engine = Engine(tmp_path / "state")
    await engine.start()
    try:
        session = engine.session
        assert session is not None
        live = session.get_settings()
        wanted = anonymous_settings()
        assert {k: live[k] for k in wanted} == wanted
        assert not (live["enable_dht"] or live["enable_lsd"] or live["enable_upnp"] or live["enable_natpmp"])
        assert live["listen_interfaces"] == "" and live["webtorrent_stun_server"] == ""
        assert not session.is_listening()
    finally:
        await engine.close()


@pytest.mark.timeout(400)
async def test_seed_and_leech_touch_only_loopback(router: ManagedRouter, tmp_path: Path) -> None:
    assert router.sam is not None
    audit = await run_traced(
        [sys.executable, __file__, "--sam", f"{router.sam.host}:{router.sam.port}",
         "--options", json.dumps(router.session_options), "--workdir", str(tmp_path / "work")],
        tmp_path / "trace.log")
    assert audit.returncode == 0, audit.output[-3000:]
    assert "TRANSFER OK" in audit.output
    audit.check()
    assert router.sam.host in audit.loopback


# -- the audited client ---------------------------------------------------------------------------


async def run_client(sam: SAMAddress, options: dict[str, str], work: Path) -> None:
    src = work / "src"
    make_files(src, {"share/a.bin": 3_000_000, "share/b/c.bin": 1_000_000}, seed=5)
    torrent = create_torrent(src / "share", piece_size=65536)
    dests = await asyncio.gather(new_destination(sam), new_destination(sam))
    s_seed, s_leech = await asyncio.gather(*(StreamSession.create(sam, d, options) for d in dests))
    seed = Engine(work / "seed-state", own_addresses=[s_seed.b32])
    leech = Engine(work / "leech-state", dial=lambda b32: s_leech.connect(b32, timeout=60),
                   own_addresses=[s_leech.b32])

    async def accept() -> None:
        while True:
            stream = await s_seed.accept()
            asyncio.ensure_future(seed.handle_incoming(stream))

    acceptor = asyncio.ensure_future(accept())
    try:
        await seed.start()
        await leech.start()
        await seed.add(torrent, src)
        t = await leech.add(torrent, work / "dl")
        t.add_candidates([s_seed.b32])
        await asyncio.wait_for(t.wait_complete(), 240)
        assert digest_tree(work / "dl" / "share") == digest_tree(src / "share")
        print("TRANSFER OK", flush=True)
    finally:
        acceptor.cancel()
        await leech.close()
        await seed.close()
        await s_seed.close()
        await s_leech.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--sam", required=True)
    p.add_argument("--options", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    host, port = a.sam.rsplit(":", 1)
    asyncio.run(run_client(SAMAddress(host, int(port)), json.loads(a.options), Path(a.workdir)))
