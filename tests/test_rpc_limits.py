"""What a user sets per torrent through a real Transmission client, on the session's router: a download
limit that bounds one torrent while another runs free, a seed ratio that stops a seed, labels, and moving
or finding a torrent's data; all kept across a daemon restart (the saved torrent list)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faces_lab import Lab, faces_lab
from i2ptorrent.daemon.registry import Registry
from i2ptorrent.daemon.server import Daemon
from i2ptorrent.engine import create_torrent
from test_rpc_clients import flushed, listed, remote, until

pytestmark = pytest.mark.skipif(shutil.which("transmission-remote") is None,
                                reason="transmission-remote missing (bash scripts/setup.sh --test)")

LIMIT_KBPS = 20  # Transmission's kB/s: 20 000 bytes/s
SLACK = 64 * 1024  # the bucket's 16 KiB burst, a read in flight, a view up to a tick old, and a margin


async def rpc(lab: Lab, method: str, **args: Any) -> dict[str, Any]:
    body = json.dumps({"method": method, "arguments": args})
    headers = {"X-Transmission-Session-Id": lab.face.guard.session_id}
    async with aiohttp.ClientSession() as http, http.post(lab.rpc_url, data=body, headers=headers) as r:
        reply = await r.json()
    assert reply["result"] == "success", reply
    return reply["arguments"]


async def one(lab: Lab, h: str, *fields: str) -> dict[str, Any]:
    rows = (await rpc(lab, "torrent-get", ids=[h], fields=list(fields)))["torrents"]
    assert len(rows) == 1
    return rows[0]


def saved(lab: Lab) -> Registry:
    return Registry.load(lab.daemon.data_dir / "daemon" / "torrents.json")


async def test_a_per_torrent_limit_bounds_one_torrent_while_another_runs_free(router, sam_pool,
                                                                                tmp_path: Path) -> None:
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        port = lab.port
        slow_src, slow_magnet = await lab.share("slow.bin", 2_000_000, piece_size=16384)
        free_src, free_magnet = await lab.share("free.bin", 1_500_000, piece_size=16384)
        slow, free = slow_magnet.split("btih:")[1][:40], free_magnet.split("btih:")[1][:40]
        assert "success" in await remote(port, "-a", slow_magnet)
        await remote(port, "-t", slow, "-d", str(LIMIT_KBPS))  # this torrent only
        got = await one(lab, slow, "downloadLimit", "downloadLimited", "honorsSessionLimits")
        assert got == {"downloadLimit": LIMIT_KBPS, "downloadLimited": True, "honorsSessionLimits": True}
        engine = lab.daemon.client.engine
        assert engine.get(bytes.fromhex(slow)).limits.download.rate == LIMIT_KBPS * 1000
        assert engine.limits.download.rate == 0  # the session's limit untouched

        async def flowing() -> int:
            return (await one(lab, slow, "downloadedEver"))["downloadedEver"]

        await until(flowing, "the limited torrent's first bytes")
        # the window: from the other torrent's add to its completion, while the limited one keeps going
        loop = asyncio.get_running_loop()
        start, base = loop.time(), await flowing()
        assert "success" in await remote(port, "-a", free_magnet)

        async def free_done() -> bool:
            return (await one(lab, free, "percentDone"))["percentDone"] == 1.0

        await until(free_done, "the unlimited torrent")
        slow_row = await one(lab, slow, "percentDone", "rateDownload", "peersConnected")
        assert slow_row["percentDone"] < 1.0, slow_row

        async def grown() -> int:  # the window ends once the limit had time to show: 5 s of it at least
            moved = await flowing() - base
            return moved if moved >= 5 * LIMIT_KBPS * 1000 else 0

        moved = await until(grown, "the limited torrent's next 100 kB")
        window = loop.time() - start
        assert moved <= LIMIT_KBPS * 1000 * window + SLACK, (moved, window)
        await flushed(lab, free)
        assert (tmp_path / "downloads" / "free.bin").read_bytes() == free_src.read_bytes()
        row = next(r for r in listed(await remote(port, "-l")) if "slow.bin" in r)
        assert "Downloading" in row or "Idle" in row, row

        # kept with the torrent: a daemon restoring its saved list applies the limit again
        assert saved(lab).entries[slow].prefs.download_rate == LIMIT_KBPS * 1000
        t = engine.get(bytes.fromhex(slow))
        t.set_rate_limits(0, 0)
        again = Daemon(lab.daemon.client, saved(lab), lab.daemon.data_dir)
        assert await again.restore() == 2
        assert (t.limits.download.rate, t.limits.upload.rate) == (LIMIT_KBPS * 1000, 0)
        await remote(port, "-t", slow, "-D")  # lifted: the rest comes at full speed
        assert t.limits.download.rate == 0 and not saved(lab).entries[slow].prefs.down_on
        await until(lambda: one_done(lab, slow), "the limited torrent once its limit is lifted")
        await flushed(lab, slow)
        assert (tmp_path / "downloads" / "slow.bin").read_bytes() == slow_src.read_bytes()


async def one_done(lab: Lab, h: str) -> bool:
    return (await one(lab, h, "percentDone"))["percentDone"] == 1.0


async def test_a_seed_stops_at_its_ratio_and_is_finished(router, sam_pool, tmp_path: Path) -> None:
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        port = lab.port
        share = tmp_path / "ours"
        share.mkdir()
        (share / "given.bin").write_bytes(os.urandom(600_000))
        torrent = tmp_path / "given.torrent"
        torrent.write_bytes(create_torrent(share / "given.bin", piece_size=16384))
        assert "success" in await remote(port, "-a", str(torrent), "-w", str(share))
        h = (await rpc(lab, "torrent-get", fields=["hashString"]))["torrents"][0]["hashString"]
        assert (await one(lab, h, "status", "percentDone")) == {"status": 6, "percentDone": 1.0}  # seeding
        await remote(port, "-t", h, "-sr", "1")  # seed until it gave once its size (it never downloaded)
        got = await one(lab, h, "seedRatioMode", "seedRatioLimit", "isFinished")
        assert got == {"seedRatioMode": 1, "seedRatioLimit": 1.0, "isFinished": False}

        # the lab's other client fetches it from the daemon: the whole file, once
        ours = lab.daemon.client.engine.get(bytes.fromhex(h))
        leech = await lab.seeder.add(lab.daemon.client.magnet(ours), tmp_path / "leech")
        await asyncio.wait_for(leech.wait_complete(), 180)
        assert (tmp_path / "leech" / "given.bin").read_bytes() == (share / "given.bin").read_bytes()

        async def finished() -> dict[str, Any] | None:
            row = await one(lab, h, "status", "isFinished", "uploadedEver")
            return row if row["isFinished"] else None

        row = await until(finished, "the seed to reach its ratio")
        assert row["status"] == 0 and row["uploadedEver"] >= 600_000  # stopped, having given its size
        assert "Finished" in listed(await remote(port, "-l"))[0]
        entry = saved(lab).entries[h]
        assert entry.paused and entry.prefs.finished and entry.prefs.uploaded_before >= 600_000

        # the session's ratio: a torrent following it (-srd) stops at it too; started again, it is not
        # finished until it reaches a limit anew
        await remote(port, "-gsr", "0.5")
        s = await rpc(lab, "session-get", fields=["seedRatioLimit", "seedRatioLimited"])
        assert s == {"seedRatioLimit": 0.5, "seedRatioLimited": True}
        await remote(port, "-t", h, "-srd", "-s")
        assert (await one(lab, h, "seedRatioMode"))["seedRatioMode"] == 0
        row = await until(finished, "the seed to stop at the session's ratio")  # it gave 1.0 already
        assert row["status"] == 0
        assert saved(lab).session.ratio_on and saved(lab).session.ratio_limit == 0.5


async def test_a_running_daemon_keeps_what_it_gave_on_disk(router, sam_pool, tmp_path: Path) -> None:
    """A daemon that is killed instead of stopped keeps its upload total: the running daemon writes the
    totals to its torrent list (every minute; here every second), not only at stop."""
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        lab.daemon.totals_save_interval = 1.0
        share = tmp_path / "ours"
        share.mkdir()
        (share / "given.bin").write_bytes(os.urandom(300_000))
        torrent = tmp_path / "given.torrent"
        torrent.write_bytes(create_torrent(share / "given.bin", piece_size=16384))
        assert "success" in await remote(lab.port, "-a", str(torrent), "-w", str(share))
        h = (await rpc(lab, "torrent-get", fields=["hashString"]))["torrents"][0]["hashString"]
        assert saved(lab).entries[h].prefs.uploaded_before == 0

        ours = lab.daemon.client.engine.get(bytes.fromhex(h))
        leech = await lab.seeder.add(lab.daemon.client.magnet(ours), tmp_path / "leech")
        await asyncio.wait_for(leech.wait_complete(), 180)
        assert (tmp_path / "leech" / "given.bin").read_bytes() == (share / "given.bin").read_bytes()

        async def on_disk() -> bool:
            return saved(lab).entries[h].prefs.uploaded_before >= 300_000

        await until(on_disk, "the upload total in the saved torrent list while the daemon runs")
        ever = (await one(lab, h, "uploadedEver"))["uploadedEver"]
        assert ever >= saved(lab).entries[h].prefs.uploaded_before  # written once, not counted twice
        assert ever < 2 * 300_000


async def test_labels_and_moving_or_finding_the_data(router, sam_pool, tmp_path: Path) -> None:
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        port = lab.port
        src, magnet = await lab.share("clip.bin", 400_000, piece_size=16384)
        h = magnet.split("btih:")[1][:40]
        assert "success" in await remote(port, "-a", magnet)
        await remote(port, "-t", h, "-L", "films,holiday")
        assert (await one(lab, h, "labels"))["labels"] == ["films", "holiday"]
        assert saved(lab).entries[h].prefs.labels == ["films", "holiday"]
        await until(lambda: one_done(lab, h), "the download")
        await flushed(lab, h)

        moved_to = tmp_path / "archive"
        await remote(port, "-t", h, "--move", str(moved_to))
        assert (moved_to / "clip.bin").read_bytes() == src.read_bytes()
        assert not (tmp_path / "downloads" / "clip.bin").exists()
        assert (await one(lab, h, "downloadDir", "percentDone")) == {"downloadDir": str(moved_to),
                                                                     "percentDone": 1.0}
        assert saved(lab).entries[h].save_path == str(moved_to)

        # --find: the data is looked for (and checked) where the user says it is
        copy = tmp_path / "copy"
        copy.mkdir()
        shutil.copy(moved_to / "clip.bin", copy / "clip.bin")
        await remote(port, "-t", h, "--find", str(copy))
        got = await one(lab, h, "downloadDir", "percentDone", "labels")
        assert got == {"downloadDir": str(copy), "percentDone": 1.0, "labels": ["films", "holiday"]}
        assert (moved_to / "clip.bin").exists()  # --find moves nothing
        assert saved(lab).entries[h].save_path == str(copy)
        empty = tmp_path / "empty"
        await remote(port, "-t", h, "--find", str(empty))
        assert (await one(lab, h, "percentDone"))["percentDone"] < 1.0  # nothing there: fetched anew
        await until(lambda: one_done(lab, h), "the data fetched into the empty place")
        await flushed(lab, h)
        assert (empty / "clip.bin").read_bytes() == src.read_bytes()
