"""Add a torrent from code and follow it with a progress callback.

    python examples/add_with_progress.py [MAGNET|FILE.torrent --sam HOST:PORT]

With no arguments it starts a private loopback i2pd and a seeder of its own, so there is something to
fetch on a machine with no I2P network. With a magnet and --sam it downloads from the real I2P network.
"""

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.config import open_router, parse_sam
from i2ptorrent.engine import Torrent, TorrentStatus


async def download(client: Client, source: str, dest: Path,
                   on_progress: Callable[[TorrentStatus], None], every: float = 0.5) -> Torrent:
    """Add `source` and call `on_progress` with its status until it is complete."""
    torrent = await client.add(source, dest)
    while True:
        status = torrent.status()
        on_progress(status)
        if status.state == "seeding":
            return torrent
        await asyncio.sleep(every)


def print_progress(st: TorrentStatus) -> None:
    print(f"{st.name}: {st.state:<11} {st.progress:6.1%}  {st.download_rate / 1e6:6.2f} MB/s  peers {st.peers}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("source", nargs="?", help="magnet or .torrent (default: one this script seeds)")
    ap.add_argument("--sam", help="use this SAM bridge instead of a private router")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="i2ptorrent-example-"))
    try:
        async with open_router(parse_sam(args.sam) if args.sam else None) as (sam, options):
            clients = [Client(ClientConfig(work / "me", sam, options))]
            if args.source is None:
                clients.append(Client(ClientConfig(work / "seeder", sam, options)))
            print("opening I2P destinations (building tunnels)...")
            await asyncio.gather(*(c.start() for c in clients))
            try:
                source = args.source
                if source is None:
                    share = work / "sample.bin"
                    share.write_bytes(os.urandom(4 << 20))
                    source = clients[1].magnet(await clients[1].seed(share))
                torrent = await asyncio.wait_for(
                    download(clients[0], source, work / "downloads", print_progress), 600)
                print("done:", torrent.name)
            finally:
                await asyncio.gather(*(c.close() for c in clients))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
