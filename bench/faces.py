"""The daemon's HTTP faces, measured.

rpc:    torrent-get of every field (objects and table) and of what `transmission-remote -l` asks, for N
        real torrents in a real engine, over HTTP on loopback: p50/p99 latency and reply size. Views are
        taken once per tick (rpc_core.VIEW_TICK), so calls in one tick after the first are cheaper; the
        "new tick" line measures the first call of a tick (in process, JSON encoding included).
stream: on one private i2pd, a daemon adds a seeder's magnet and at once opens its /stream URL: the time
        to the stream's first byte (and to a range at the file's end) against the time the whole file
        takes to download.

    python bench/faces.py [--torrents 1000] [--calls 30] [--size 32M] [--skip-stream]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from i2ptorrent.app.units import parse_size  # noqa: E402
from i2ptorrent.config import Config  # noqa: E402
from i2ptorrent.daemon.registry import Registry  # noqa: E402
from i2ptorrent.daemon.rpc_core import FIELDS, VIEW_TICK  # noqa: E402
from i2ptorrent.daemon.server import Daemon, HttpOptions, http_face  # noqa: E402
from i2ptorrent.engine import Engine, create_torrent  # noqa: E402

LIST_FIELDS = ["error", "errorString", "eta", "id", "isFinished", "leftUntilDone", "name", "peersGettingFromUs",
               "peersSendingToUs", "rateDownload", "rateUpload", "sizeWhenDone", "status", "uploadRatio"]


class _EngineOnly:
    """What the Daemon and the RPC use of a Client, for torrents that need no network."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tracker_errors: dict[bytes, str] = {}
        self.session = None
        self.config = None

    def magnet(self, t: Any) -> str:
        return t.magnet()


async def rpc_bench(n: int, calls: int) -> None:
    with tempfile.TemporaryDirectory(prefix="i2pt-bench-faces-") as tmp:
        root = Path(tmp)
        engine = Engine(root / "data")
        await engine.start()
        try:
            t0 = time.perf_counter()
            share = root / "share"
            share.mkdir()
            for i in range(n):
                f = share / f"file{i:05d}.bin"
                f.write_bytes(os.urandom(32 * 1024))
                await engine.add(create_torrent(f, piece_size=16384), share)
            print(f"{n} torrents added (seeding, 2 pieces each) in {time.perf_counter() - t0:.1f} s")
            cfg = Config(data_dir=root / "data", download_dir=root / "dl")
            daemon = Daemon(_EngineOnly(engine), Registry.load(root / "data" / "reg.json"), root / "data")  # type: ignore[arg-type]
            face = http_face(daemon, cfg, HttpOptions(port=0), "bench.b32.i2p", "none")
            await face.start()
            import aiohttp

            try:
                url = face.base_url + "/transmission/rpc"
                headers = {"X-Transmission-Session-Id": face.guard.session_id}
                async with aiohttp.ClientSession() as http:
                    for label, fields, fmt in (("every field", sorted(FIELDS), "objects"),
                                               ("every field, table", sorted(FIELDS), "table"),
                                               ("transmission-remote -l", LIST_FIELDS, "objects")):
                        body = json.dumps({"method": "torrent-get",
                                           "arguments": {"fields": fields, "format": fmt}}).encode()
                        times, size = [], 0
                        for _ in range(calls):
                            s = time.perf_counter()
                            async with http.post(url, data=body, headers=headers) as r:
                                raw = await r.read()
                            times.append(time.perf_counter() - s)
                            size = len(raw)
                            assert json.loads(raw)["result"] == "success"
                        times.sort()
                        report(label, n, times, size)
                body_obj = {"method": "torrent-get", "arguments": {"fields": sorted(FIELDS)}}
                now, times = time.time(), []
                for _ in range(calls):
                    now += VIEW_TICK  # every call the first of its tick: every view taken anew
                    s = time.perf_counter()
                    size = len(json.dumps(await face.core.handle(body_obj, now)).encode())
                    times.append(time.perf_counter() - s)
                report("every field, new tick", n, times, size)
            finally:
                await face.close()
        finally:
            await engine.close()


def report(label: str, n: int, times: list[float], size: int) -> None:
    times.sort()
    print(f"torrent-get {label:24s} {n} torrents: p50 {statistics.median(times) * 1000:7.1f} ms"
          f"  p99 {times[int(len(times) * 0.99) - 1] * 1000:7.1f} ms  reply {size / 1e6:.2f} MB")


async def stream_bench(size: int) -> None:
    import aiohttp

    from i2ptorrent.client import Client, ClientConfig
    from i2ptorrent.transport.router import ManagedRouter

    router = ManagedRouter()
    sam = await router.start()
    try:
        with tempfile.TemporaryDirectory(prefix="i2pt-bench-stream-") as tmp:
            root = Path(tmp)
            seeder = Client(ClientConfig(root / "seed", sam, router.session_options))
            client = Client(ClientConfig(root / "daemon", sam, router.session_options))
            t0 = time.perf_counter()
            await asyncio.gather(seeder.start(), client.start())
            print(f"two SAM sessions ready in {time.perf_counter() - t0:.1f} s")
            try:
                src = root / "movie.mp4"
                src.write_bytes(os.urandom(size))
                seeded = await seeder.seed(src)
                magnet = seeder.magnet(seeded)
                for what in ("start", "end"):
                    cfg = Config(data_dir=root / "daemon", download_dir=root / f"dl-{what}")
                    daemon = Daemon(client, Registry.load(root / f"reg-{what}.json"), cfg.data_dir)
                    face = http_face(daemon, cfg, HttpOptions(port=0), client.b32, "bench")
                    await face.start()
                    try:
                        start = time.perf_counter()
                        t = await daemon.add(magnet, root / f"dl-{what}")
                        url = face.stream_url(t.info_hash.hex(), 0)
                        rng = {"Range": f"bytes={size - 1_000_000}-"} if what == "end" else {}
                        async with aiohttp.ClientSession() as http, http.get(url, headers=rng) as r:
                            await r.content.readexactly(1)
                            first = time.perf_counter() - start
                            progress = t.status().progress
                        await t.wait_complete()
                        whole = time.perf_counter() - start
                        print(f"stream from the {what:5s}: first byte after {first:6.2f} s "
                              f"({progress:5.1%} of the file here then); whole file ({size / 1e6:.0f} MB) "
                              f"after {whole:6.2f} s")
                        await daemon.remove(t, delete_data=True)
                    finally:
                        await face.close()
            finally:
                await client.close()
                await seeder.close()
    finally:
        await router.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torrents", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--size", default="32M")
    ap.add_argument("--skip-stream", action="store_true")
    args = ap.parse_args()
    asyncio.run(rpc_bench(args.torrents, args.calls))
    if not args.skip_stream:
        asyncio.run(stream_bench(parse_size(args.size)))


if __name__ == "__main__":
    main()
