"""WebRTC data channels over I2P carriers, measured side by side in one run on a private i2pd.

Rows: aiortc over an in-memory pipe (the ceiling for pure-Python SCTP here), RTC over the SAM stream
carrier (with and without per-tick coalescing of DTLS records), RTC over the SAM datagram carrier, raw
SAM stream bulk, and an I2P-like run with 250 ms added each way (one channel vs several in parallel).
Every transfer checks the received bytes' SHA-256.

Usage: python bench/rtc.py [--mib 64] [--delay-mib 32] [--parallel 4] [--dgram-rate 4e6] [--dgram-size 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable

from aiortc import RTCCertificate

from i2ptorrent.transport.carrier import LinkConfig
from i2ptorrent.transport.carrier_io import Carrier, DatagramMux, DelayedCarrier, MemoryCarrier, StreamCarrier
from i2ptorrent.transport.rtc import RTCStream, local_fingerprints
from i2ptorrent.transport.router import ManagedRouter
from i2ptorrent.transport.sam import DatagramSession, StreamSession, new_destination
from i2ptorrent.transport.sdp import CARRIER_DATAGRAM, CARRIER_STREAM
from sam_throughput import stream_bulk as raw_stream  # the one raw-SAM measurement every bench shares

MiB = 1024 * 1024
CERT_A = RTCCertificate.generateCertificate()
CERT_B = RTCCertificate.generateCertificate()


class UncoalescedStreamCarrier(StreamCarrier):
    """One SAM write per DTLS record: the baseline that shows what coalescing buys."""

    async def send(self, packet: bytes) -> None:
        from i2ptorrent.transport.carrier import StreamFramer

        self.writes += 1
        self._stream._writer.write(StreamFramer.encode(packet))  # type: ignore[attr-defined]


async def transfer(a: RTCStream, b: RTCStream, total: int) -> float:
    """total bytes a->b; returns MB/s; raises if a byte differs."""
    block = os.urandom(MiB)
    want = hashlib.sha256()
    got = hashlib.sha256()

    async def send() -> None:
        sent = 0
        while sent < total:
            piece = block[: min(len(block), total - sent)]
            want.update(piece)
            await a.write(piece)
            sent += len(piece)

    start = time.perf_counter()
    sender = asyncio.ensure_future(send())
    received = 0
    while received < total:
        chunk = await asyncio.wait_for(b.read(1 << 20), 120)
        if not chunk:
            raise RuntimeError("channel closed early")
        got.update(chunk)
        received += len(chunk)
    elapsed = time.perf_counter() - start
    await sender
    if got.digest() != want.digest():
        raise RuntimeError("DATA MISMATCH")
    return total / elapsed / 1e6


def rtc_pair(ca: Carrier, cb: Carrier) -> tuple[RTCStream, RTCStream]:
    a = RTCStream(ca, remote="b", certificate=CERT_A, remote_fingerprints=local_fingerprints(CERT_B),
                  dtls_server=True, initiator=True)
    b = RTCStream(cb, remote="a", certificate=CERT_B, remote_fingerprints=local_fingerprints(CERT_A),
                  dtls_server=False, initiator=False)
    return a, b


async def memory_run(total: int) -> float:
    a, b = rtc_pair(*MemoryCarrier.pair(max_queue=4096))
    await asyncio.gather(a.start(), b.start())
    try:
        return await transfer(a, b, total)
    finally:
        await a.close()
        await b.close()


async def sam_stream_pair(sa: StreamSession, sb: StreamSession,
                          wrap: Callable[[object], Carrier] = StreamCarrier) -> tuple[RTCStream, RTCStream]:
    accepting = asyncio.ensure_future(sb.accept())
    out = await sa.connect(sb.b32, timeout=60)
    inc = await accepting
    a, b = rtc_pair(wrap(out), wrap(inc))
    await asyncio.gather(a.start(), b.start())
    return a, b


async def dgram_pair(ma: DatagramMux, mb: DatagramMux, link: LinkConfig,
                     wrap: Callable[[Carrier], Carrier] = lambda c: c) -> tuple[RTCStream, RTCStream]:
    cid = os.urandom(8)
    ca = ma.open(mb.endpoint.destination.public, cid, LinkConfig(**vars(link)))  # type: ignore[attr-defined]
    cb = mb.open(ma.endpoint.destination.public, cid, LinkConfig(**vars(link)))  # type: ignore[attr-defined]
    a, b = rtc_pair(wrap(ca), wrap(cb))
    await asyncio.gather(a.start(), b.start())
    return a, b


async def parallel(pairs: list[tuple[RTCStream, RTCStream]], total: int) -> float:
    each = total // len(pairs)
    start = time.perf_counter()
    await asyncio.gather(*(transfer(a, b, each) for a, b in pairs))
    return each * len(pairs) / (time.perf_counter() - start) / 1e6


async def close_all(pairs: list[tuple[RTCStream, RTCStream]]) -> None:
    for a, b in pairs:
        await a.close()
        await b.close()


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(label: str, run: Callable[[], Awaitable[float]], rows: list[tuple[str, float, float, float]],
                router_pid: int | None) -> float:
    cpu0, r0 = time.process_time(), cpu_of(router_pid) if router_pid else 0.0
    mbps = await run()
    cpu = time.process_time() - cpu0
    rcpu = (cpu_of(router_pid) - r0) if router_pid else 0.0
    rows.append((label, mbps, cpu, rcpu))
    print(f"  {label:<58} {mbps:7.2f} MB/s  (python {cpu:5.1f} s, i2pd {rcpu:5.1f} s CPU)", flush=True)
    return mbps


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--delay-mib", type=int, default=32)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--delay", type=float, default=0.25, help="added one-way delay (s) in the I2P-like run")
    ap.add_argument("--dgram-rate", type=float, default=LinkConfig.rate, help="datagram pacing (B/s)")
    ap.add_argument("--dgram-size", type=int, default=LinkConfig.max_datagram, help="largest batched datagram")
    args = ap.parse_args()
    total = args.mib * MiB
    rows: list[tuple[str, float, float, float]] = []
    print(f"bench/rtc.py: {args.mib} MiB per transfer, one direction, SHA-256 checked", flush=True)

    mem = await timed("aiortc over an in-memory pipe", lambda: memory_run(total), rows, None)

    async with ManagedRouter() as router:
        assert router.sam is not None and router.process is not None
        pid = router.process.pid
        opts = router.session_options
        dests = await asyncio.gather(*(new_destination(router.sam) for _ in range(4)))
        sa, sb = await asyncio.gather(StreamSession.create(router.sam, dests[0], opts),
                                      StreamSession.create(router.sam, dests[1], opts))
        rate = args.dgram_rate
        da, db = await asyncio.gather(
            # each link paces itself; the session's pacer caps the sum of all links (the router's socket
            # is shared): both at the same rate (the session's default of 2 MB/s would halve this row)
            DatagramSession.create(router.sam, dests[2], opts, rate=rate, burst=LinkConfig.burst),
            DatagramSession.create(router.sam, dests[3], opts, rate=rate, burst=LinkConfig.burst))
        link = LinkConfig(rate=rate, max_datagram=args.dgram_size)
        ma, mb = DatagramMux(da), DatagramMux(db)
        try:
            raw = await timed("raw SAM stream bulk", lambda: raw_stream(sa, sb, total), rows, pid)

            async def over_stream() -> float:
                a, b = await sam_stream_pair(sa, sb)
                try:
                    mbps = await transfer(a, b, total)
                    writes = a.carrier.writes  # type: ignore[attr-defined]
                    print(f"    {writes} SAM writes from the sender, {total / max(writes, 1) / 1024:.1f} KiB each")
                    return mbps
                finally:
                    await close_all([(a, b)])

            stream = await timed("RTC, SAM stream carrier (records coalesced per tick)", over_stream, rows, pid)

            async def over_stream_uncoalesced() -> float:
                a, b = await sam_stream_pair(sa, sb, UncoalescedStreamCarrier)
                try:
                    return await transfer(a, b, total // 4)
                finally:
                    await close_all([(a, b)])

            await timed(f"RTC, SAM stream carrier, one write per record ({args.mib // 4} MiB)",
                        over_stream_uncoalesced, rows, pid)

            async def over_datagrams() -> float:
                a, b = await dgram_pair(ma, mb, link)
                try:
                    mbps = await transfer(a, b, total)
                    s = a.carrier.link.stats  # type: ignore[attr-defined]
                    r = b.carrier.link.stats  # type: ignore[attr-defined]
                    print(f"    sender: {s.sent_datagrams} datagrams, {s.sent_packets} records, {s.repaired} repaired; "
                          f"receiver: {r.gaps_skipped} gaps given up, {r.nacks_sent} NACKs, {r.duplicates} dups, "
                          f"{r.reordered} early")
                    return mbps
                finally:
                    await close_all([(a, b)])

            dgram = await timed(f"RTC, SAM datagram carrier (paced {rate / 1e6:.1f} MB/s)", over_datagrams, rows, pid)

            # I2P-like: the same carriers with `delay` added each way (the receiving side holds every packet)
            delay_total = args.delay_mib * MiB
            rtt = f"{2 * args.delay * 1000:.0f} ms RTT added"

            def late(c: Carrier) -> Carrier:
                return DelayedCarrier(c, args.delay)

            async def delayed(carrier: str, n: int) -> float:
                pairs = []
                for _ in range(n):
                    if carrier == CARRIER_STREAM:
                        pairs.append(await sam_stream_pair(sa, sb, lambda s: late(StreamCarrier(s))))
                    else:
                        pairs.append(await dgram_pair(ma, mb, link, late))
                try:
                    return await parallel(pairs, delay_total)
                finally:
                    await close_all(pairs)

            d1 = await timed(f"I2P-like ({rtt}), stream carrier, 1 channel, {args.delay_mib} MiB",
                             lambda: delayed(CARRIER_STREAM, 1), rows, pid)
            dn = await timed(f"I2P-like ({rtt}), stream carrier, {args.parallel} channels",
                             lambda: delayed(CARRIER_STREAM, args.parallel), rows, pid)
            g1 = await timed(f"I2P-like ({rtt}), datagram carrier, 1 channel",
                             lambda: delayed(CARRIER_DATAGRAM, 1), rows, pid)
            gn = await timed(f"I2P-like ({rtt}), datagram carrier, {args.parallel} channels",
                             lambda: delayed(CARRIER_DATAGRAM, args.parallel), rows, pid)
        finally:
            await ma.close()
            await mb.close()
            for s in (sa, sb, da, db):
                await s.close()

    print()
    print(f"{'run':<64} {'MB/s':>7} {'py CPU s':>9} {'i2pd CPU s':>10}")
    for label, mbps, cpu, rcpu in rows:
        print(f"{label:<64} {mbps:7.2f} {cpu:9.1f} {rcpu:10.1f}")
    print()
    print(f"stream carrier / in-memory aiortc   = {stream / mem:5.2f}   (goal >= 0.70)")
    print(f"datagram carrier / stream carrier   = {dgram / stream:5.2f}   (goal >= 0.50, no data lost: SHA-256 equal)")
    print(f"stream carrier / raw SAM stream     = {stream / raw:5.2f}")
    print(f"delayed, {args.parallel} channels / 1 channel: stream {dn / d1:5.2f}, datagram {gn / g1:5.2f}")


if __name__ == "__main__":
    asyncio.run(main())
