"""Seed a file from one Client and fetch it by magnet with another, all over I2P.

    python examples/seed_and_fetch.py [FILE] [--sam HOST:PORT]

By default it starts a private loopback-only i2pd (so it runs on a machine with no I2P at all) and shares a
generated file. With --sam it uses your router instead, with real (3-hop) tunnels.
"""

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.config import open_router, parse_sam


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--sam", help="use this SAM bridge instead of a private router")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="i2ptorrent-example-"))
    try:
        async with open_router(parse_sam(args.sam) if args.sam else None) as (sam, options):
            share = args.file or work / "hello.bin"
            if args.file is None:
                share.write_bytes(os.urandom(1 << 20))
            seeder = Client(ClientConfig(work / "seeder", sam, options))
            leecher = Client(ClientConfig(work / "leecher", sam, options))
            print("opening two I2P destinations (building tunnels)...")
            await asyncio.gather(seeder.start(), leecher.start())
            try:
                torrent = await seeder.seed(share)
                magnet = seeder.magnet(torrent)  # names the seeder's .b32 (x.pe): no tracker needed
                print("magnet:", magnet)
                download = await leecher.add(magnet, work / "downloads")
                await asyncio.wait_for(download.wait_complete(), 300)
                same = (work / "downloads" / share.name).read_bytes() == share.read_bytes()
                print(f"fetched {share.stat().st_size} bytes over I2P; identical: {same}")
            finally:
                await asyncio.gather(seeder.close(), leecher.close())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
