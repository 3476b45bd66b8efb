"""Seed a file from one Client and fetch it by magnet with another, all over I2P.

    python examples/seed_and_fetch.py [FILE] [--sam HOST:PORT]

By default it starts a private loopback-only i2pd (so it runs on a machine with no I2P at all) and shares a
generated file. With --sam it uses your router instead (then use real tunnels: NETWORK_OPTIONS).
"""

import argparse
import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.config import parse_sam
from i2ptorrent.transport.router import NETWORK_OPTIONS, ManagedRouter


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--sam", help="use this SAM bridge instead of a private router")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="i2ptorrent-example-"))
    router = None
    if args.sam:
        sam, options = parse_sam(args.sam), NETWORK_OPTIONS
    else:
        router = ManagedRouter(work / "router")
        sam, options = await router.start(), router.session_options
    try:
        share = args.file or work / "hello.bin"
        if args.file is None:
            share.write_bytes(os.urandom(1 << 20))
        seeder = Client(ClientConfig(work / "seeder", sam, dict(options)))
        leecher = Client(ClientConfig(work / "leecher", sam, dict(options)))
        print("opening two I2P destinations (building tunnels)...")
        await asyncio.gather(seeder.start(), leecher.start())
        try:
            torrent = await seeder.seed(share)
            magnet = seeder.magnet(torrent)  # names the seeder's .b32 (x.pe): no tracker needed
            print("magnet:", magnet)
            download = await leecher.add(magnet, work / "downloads")
            await asyncio.wait_for(download.wait_complete(), 300)
            got = (work / "downloads" / share.name).read_bytes()
            same = hashlib.sha256(got).digest() == hashlib.sha256(share.read_bytes()).digest()
            print(f"fetched {len(got)} bytes over I2P; identical: {same}")
        finally:
            await asyncio.gather(seeder.close(), leecher.close())
    finally:
        if router is not None:
            await router.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
