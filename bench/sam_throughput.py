"""The ceiling every transfer is measured against: raw SAM stream bulk and loss-free datagram rates.

Runs on a private managed i2pd (loopback only). Usage: python bench/sam_throughput.py [--mib 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from i2ptorrent.transport.router import ManagedRouter
from i2ptorrent.transport.sam import DatagramSession, StreamSession, new_destination


async def stream_bulk(a: StreamSession, b: StreamSession, total: int) -> float:
    accepting = asyncio.create_task(b.accept())
    out = await a.connect(b.b32, timeout=30)
    inc = await accepting
    block = os.urandom(256 * 1024)

    async def send() -> None:
        sent = 0
        while sent < total:
            await out.write(block)
            sent += len(block)

    start = time.perf_counter()
    sender = asyncio.create_task(send())
    got = 0
    while got < total:
        chunk = await asyncio.wait_for(inc.read(1 << 20), 60)
        if not chunk:
            raise RuntimeError("stream closed early")
        got += len(chunk)
    elapsed = time.perf_counter() - start
    await sender
    await out.close()
    await inc.close()
    return total / elapsed / 1e6


async def datagram_run(a: DatagramSession, b: DatagramSession, size: int, count: int, rate: float) -> tuple[float, float]:
    """Send `count` datagrams of `size` bytes paced at `rate` B/s; return (MB/s delivered, loss fraction)."""
    a._pacer.rate = rate  # the pacing under test (bytes/s; the packet limit lifted)
    a._pacer.burst = max(size * 4, 40_000)
    a._pacer.packet_rate = 1e6
    dest = b.destination.public
    start = time.perf_counter()
    for i in range(count):
        await a.send(dest, i.to_bytes(4, "big") + bytes(size - 4))
    got = set()
    last = time.perf_counter()
    while len(got) < count:
        try:
            _, payload = await asyncio.wait_for(b.recv(), 1.0)
        except TimeoutError:
            break
        got.add(int.from_bytes(payload[:4], "big"))
        last = time.perf_counter()
    elapsed = last - start
    return len(got) * size / elapsed / 1e6, 1 - len(got) / count


async def main(mib: int) -> None:
    router = ManagedRouter()
    sam = await router.start()
    opts = router.session_options
    try:
        dests = await asyncio.gather(*(new_destination(sam) for _ in range(4)))
        sa, sb, da, db = await asyncio.gather(
            StreamSession.create(sam, dests[0], opts), StreamSession.create(sam, dests[1], opts),
            DatagramSession.create(sam, dests[2], opts), DatagramSession.create(sam, dests[3], opts))
        print(f"i2pd {router.executable}, 0-hop private router, {mib} MiB stream bulk")
        runs = [await stream_bulk(sa, sb, mib << 20) for _ in range(3)]
        print(f"{'stream bulk':<34} {max(runs):7.1f} MB/s  (runs: {', '.join(f'{r:.1f}' for r in runs)})")
        await datagram_run(da, db, 1200, 50, 1e6)  # warm-up: lease set lookup
        print(f"{'datagrams size x count @ pacing':<34} {'MB/s':>7}  loss")
        best = {}
        for size in (1200, 16000):
            for rate in (1e6, 2e6, 4e6, 8e6, 16e6):
                count = max(200, int(rate * 1.0 / size))
                mbps, loss = await datagram_run(da, db, size, count, rate)
                print(f"{size:>6} B x {count:<5} @ {rate / 1e6:4.0f} MB/s{'':<9} {mbps:7.2f}  {loss:6.1%}")
                if loss == 0:
                    best[size] = max(best.get(size, 0), mbps)
        for size, mbps in best.items():
            print(f"loss-free datagrams, {size} B: {mbps:.2f} MB/s = {mbps / max(runs):.2f} of stream bulk")
        for s in (sa, sb, da, db):
            await s.close()
    finally:
        await router.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mib", type=int, default=64)
    asyncio.run(main(p.parse_args().mib))
