"""What several SAM streams to one peer carry together on the testnet, without any of our layers on top.

The striped carrier (transport/stripe.py) puts one WebRTC connection on several I2P streams. This measures
the ceiling under it: N raw SAM streams from one router's destination to another's, the file split evenly
over them, side by side with N = 1 in the same run and on the same routers. Each N gets new destinations
(every stream starts cold, as a new peer's would). Prints the aggregate MB/s (size / (last byte - first
byte)), the slowest and fastest stream, and the ratio to N = 1.

    python3 bench/parallel_streams.py --rows 3,50 --mib 8 --streams 1,8,16
    python3 bench/parallel_streams.py --rows 3,50 --mib 8 --streams 1,8 --quantity 3,6

Needs root (namespaces). Sender: router 3; receiver: router 4.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from i2ptorrent.transport.sam import SAMAddress, StreamSession, new_destination  # noqa: E402
from i2ptorrent.transport.testnet import Testnet, TestnetConfig, session_options  # noqa: E402
from testnet import read_bytes  # noqa: E402  (bench/testnet.py)

MiB = 1024 * 1024
SENDER, RECEIVER = 3, 4
TIMEOUT = 900.0


async def session(hops: int, quantity: int) -> StreamSession:
    sam = SAMAddress()
    return await StreamSession.create(sam, await new_destination(sam), session_options(hops, quantity))


async def run(net: Testnet, hops: int, quantity: int, streams: int, size: int) -> tuple[float, list[float]]:
    """(aggregate MB/s, per stream MB/s) for `streams` streams carrying `size` bytes between them."""
    a, b = await asyncio.gather(net.run(SENDER, session(hops, quantity)),
                                net.run(RECEIVER, session(hops, quantity)))
    share = size // streams
    block = os.urandom(64 * 1024)
    firsts: list[float] = []
    rates: list[float] = []
    lasts: list[float] = []

    async def receive_all() -> None:
        async def one(s: Any) -> None:
            first, last = await read_bytes(s, share)
            firsts.append(first)
            lasts.append(last)
            rates.append(share / max(1e-6, last - first) / 1e6)
        tasks = []
        for _ in range(streams):  # one accept at a time (i2pd 2.45 garbles concurrent ones)
            tasks.append(asyncio.ensure_future(one(await b.accept())))
        await asyncio.gather(*tasks)

    async def send_all() -> None:
        async def one() -> None:
            s = await a.connect(b.b32, timeout=120)
            sent = 0
            while sent < share:
                n = min(len(block), share - sent)
                await s.write(block[:n])
                sent += n
            for _ in range(1200):  # closing early could cut what is still in the router
                if len(lasts) == streams:
                    return
                await asyncio.sleep(0.1)
        await asyncio.gather(*(one() for _ in range(streams)))

    try:
        receiving = asyncio.ensure_future(net.run(RECEIVER, receive_all(), timeout=TIMEOUT))
        sending = asyncio.ensure_future(net.run(SENDER, send_all(), timeout=TIMEOUT))
        await receiving
        await sending
        total = share * streams / max(1e-6, max(lasts) - min(firsts)) / 1e6
        return total, sorted(rates)
    finally:
        await net.run(SENDER, a.close())
        await net.run(RECEIVER, b.close())


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="3,50", help="'HOPS,DELAY_MS ...'")
    ap.add_argument("--mib", type=float, default=8.0)
    ap.add_argument("--streams", default="1,8,16")
    ap.add_argument("--quantity", default="3", help="tunnels each way per session, comma separated")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    rows = [tuple(int(x) for x in r.split(",")) for r in args.rows.split()]
    size = int(args.mib * MiB)
    async with Testnet(TestnetConfig(routers=8, delay=rows[0][1] / 1000)) as net:
        for hops, delay in rows:
            net.set_links(delay / 1000)
            print(f"\n== {hops} hops, {delay} ms per link, {args.mib:g} MiB (load {os.getloadavg()[0]:.2f}) ==",
                  flush=True)
            for rep in range(args.repeat):
                base: float | None = None
                for quantity in (int(q) for q in args.quantity.split(",")):
                    for n in (int(s) for s in args.streams.split(",")):
                        try:
                            total, rates = await run(net, hops, quantity, n, size)
                        except Exception as exc:
                            print(f"quantity {quantity} streams {n:2d}: failed: {exc!r}", flush=True)
                            continue
                        base = base or total
                        print(f"[{rep}] quantity {quantity} streams {n:2d}: {total:.3f} MB/s (x{total / base:.2f})"
                              f"  per stream {rates[0]:.3f}-{rates[-1]:.3f}  load {os.getloadavg()[0]:.2f}",
                              flush=True)


if __name__ == "__main__":
    asyncio.run(main())
