"""Run a private tracker eepsite and let two invited clients find each other through it.

    python examples/private_tracker.py [--sam HOST:PORT] [--data-dir DIR] [--serve]

The tracker lives at a persistent .b32.i2p (its key is kept in DIR, 0600). In private mode it answers only
destinations on its allowlist; a one-time invite token puts the destination that presents it on the list.
By default everything runs on a private loopback i2pd; --serve keeps the tracker up until Ctrl-C.
"""

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.config import open_router, parse_sam
from i2ptorrent.tracker.eepsite import start_tracker


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sam", help="use this SAM bridge instead of a private router")
    ap.add_argument("--data-dir", type=Path, help="tracker key and access list (default: a temp dir)")
    ap.add_argument("--serve", action="store_true", help="keep the tracker running until Ctrl-C")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="i2ptorrent-example-"))
    try:
        async with open_router(parse_sam(args.sam) if args.sam else None) as (sam, options):
            seeder_cfg = ClientConfig(work / "seeder", sam, options)
            leecher_cfg = ClientConfig(work / "leecher", sam, options)
            seeder, leecher = Client(seeder_cfg), Client(leecher_cfg)
            print("starting the tracker eepsite and two clients (building tunnels)...")
            site, *_ = await asyncio.gather(
                start_tracker(args.data_dir or work / "tracker", sam, options, private=True),
                seeder.start(), leecher.start())
            # each invite admits one destination, once; the client presents it when it announces
            seeder_cfg.invite = site.server.access.invite(ttl=3600)
            leecher_cfg.invite = site.server.access.invite(ttl=3600)
            print("tracker:", site.announce_url)
            try:
                share = work / "notes.bin"
                share.write_bytes(os.urandom(256 * 1024))
                torrent = await seeder.seed(share, trackers=[site.announce_url, site.http_announce_url])
                magnet = torrent.magnet()  # trackers only: the leecher must ask the tracker for peers
                print("magnet:", magnet)
                download = await leecher.add(magnet, work / "downloads")
                await asyncio.wait_for(download.wait_complete(), 300)
                same = (work / "downloads" / share.name).read_bytes() == share.read_bytes()
                print(f"leecher found the seeder through the private tracker; identical: {same}")
                print("allowed destinations:", sorted(site.server.access.allowed))
                if args.serve:
                    print("serving; Ctrl-C to stop")
                    await asyncio.Event().wait()
            finally:
                await asyncio.gather(seeder.close(), leecher.close(), site.close())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
