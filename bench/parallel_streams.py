"""What several SAM streams to one peer carry together on the testnet, without any of our layers on top.

The striped carrier (transport/stripe.py) puts one WebRTC connection on several I2P streams. This measures
the ceiling under it: N raw SAM streams from one router's destination to another's, the file split evenly
over them, side by side with N = 1 in the same run and on the same routers. Each N gets new destinations
(every stream starts cold, as a new peer's would). Prints the aggregate MB/s (size / (last byte - first
byte)), the slowest and fastest stream, and the ratio to N = 1.

    python3 bench/parallel_streams.py --rows 3,50 --mib 8 --streams 1,8,16
    python3 bench/parallel_streams.py --rows 3,50 --mib 8 --streams 1,8:q6
    python3 bench/parallel_streams.py --rows 1,0 --mib 32 --streams 1,1:talk,1:talk:ack20

A spec is N[:qQ][:talk][:ackMS]: N streams, Q tunnels each way per session (default 3), `talk`: the
receiver also writes a 17-byte message back every 5 ms (as a BitTorrent leecher's requests do), `ackMS`:
i2pd's `i2p.streaming.initialAckDelay` for both sessions (its default is 200 ms).

Needs root (namespaces). Sender: router 3; receiver: router 4.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class Spec:
    streams: int
    quantity: int = 3
    talk: bool = False
    ack_delay: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Spec":
        n, *flags = text.split(":")
        spec = cls(int(n))
        for flag in flags:
            if flag.startswith("q"):
                spec = replace(spec, quantity=int(flag[1:]))
            elif flag == "talk":
                spec = replace(spec, talk=True)
            elif flag.startswith("ack"):
                spec = replace(spec, ack_delay=int(flag[3:]))
            else:
                raise ValueError(f"unknown flag {flag!r} in {text!r}")
        return spec


async def session(hops: int, spec: Spec) -> StreamSession:
    sam = SAMAddress()
    options = session_options(hops, spec.quantity)
    if spec.ack_delay is not None:
        options["i2p.streaming.initialAckDelay"] = str(spec.ack_delay)
    return await StreamSession.create(sam, await new_destination(sam), options)


async def run(net: Testnet, hops: int, spec: Spec, size: int) -> tuple[float, list[float]]:
    """(aggregate MB/s, per stream MB/s) for `spec.streams` streams carrying `size` bytes between them."""
    streams = spec.streams
    a, b = await asyncio.gather(net.run(SENDER, session(hops, spec)), net.run(RECEIVER, session(hops, spec)))
    share = size // streams
    block = os.urandom(64 * 1024)
    firsts: list[float] = []
    rates: list[float] = []
    lasts: list[float] = []

    async def receive_all() -> None:
        async def one(s: Any) -> None:
            talking = asyncio.ensure_future(talk_back(s)) if spec.talk else None
            try:
                first, last = await read_bytes(s, share)
            finally:
                if talking is not None:
                    talking.cancel()
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


async def talk_back(s: Any) -> None:
    """A leecher's requests, roughly: 17 bytes back to the sender every 5 ms until cancelled."""
    request = bytes(17)
    while True:
        await s.write(request)
        await asyncio.sleep(0.005)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="3,50", help="'HOPS,DELAY_MS ...'")
    ap.add_argument("--mib", type=float, default=8.0)
    ap.add_argument("--streams", default="1,8,16", help="specs, comma separated (see above)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    rows = [tuple(int(x) for x in r.split(",")) for r in args.rows.split()]
    specs = [Spec.parse(t) for t in args.streams.split(",")]
    size = int(args.mib * MiB)
    async with Testnet(TestnetConfig(routers=8, delay=rows[0][1] / 1000)) as net:
        for hops, delay in rows:
            net.set_links(delay / 1000)
            print(f"\n== {hops} hops, {delay} ms per link, {args.mib:g} MiB (load {os.getloadavg()[0]:.2f}) ==",
                  flush=True)
            for rep in range(args.repeat):
                base: float | None = None
                for spec, text in zip(specs, args.streams.split(",")):
                    try:
                        total, rates = await run(net, hops, spec, size)
                    except Exception as exc:
                        print(f"[{rep}] {text:>14s}: failed: {exc!r}", flush=True)
                        continue
                    base = base or total
                    print(f"[{rep}] {text:>14s}: {total:.3f} MB/s (x{total / base:.2f})"
                          f"  per stream {rates[0]:.3f}-{rates[-1]:.3f}  load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
