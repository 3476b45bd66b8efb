"""`i2ptorrent demo`: the whole system on one machine, with no I2P network and nothing left behind.

It starts a private loopback-only i2pd (never the user's router), a tracker eepsite on its own .b32, a
seeder of a freshly generated file, and a leecher that is given a magnet with only the tracker in it, so
it finds the seeder through the tracker. It shows the download, compares the bytes, says what happened and
stops everything it started (also on Ctrl-C or failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from i2ptorrent.app.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UserError
from i2ptorrent.app.output import Output
from i2ptorrent.app.progress import format_bytes, format_rate
from i2ptorrent.app.runtime import StopSignal

STEP_TIMEOUT = 180.0  # a bound on each wait, so a broken demo ends with a message, never hangs


def make_file(path: Path, size: int) -> str:
    """Pseudo-random content (so no two pieces are alike); returns its SHA-256."""
    digest = hashlib.sha256()
    seed = os.urandom(32)
    with open(path, "wb") as f:
        written, counter = 0, 0
        while written < size:
            block = hashlib.sha512(seed + counter.to_bytes(8, "big")).digest() * 1024  # 64 KiB
            block = block[: size - written]
            f.write(block)
            digest.update(block)
            written += len(block)
            counter += 1
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def carrier_of(stream: Any) -> str:
    """How a peer's bytes travel, for the demo's explanation."""
    if type(stream).__name__ == "RTCStream":
        return "a WebRTC data channel (DTLS+SCTP, no ICE) over I2P"
    return "a plain I2P stream (classic BitTorrent over SAM)"


async def _wait_for(predicate: Any, what: str, timeout: float = STEP_TIMEOUT) -> None:
    """Wait until the awaitable `predicate()` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise UserError(f"demo: timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _here(coro: Any) -> Any:
    return await coro


async def _value(fn: Any) -> Any:
    return fn()


async def run_demo(out: Output, size: int = 4 * 1024 * 1024, via_tracker: bool = True,
                   workdir: Path | None = None, testnet: bool = False, hops: int = 3,
                   delay: float = 0.05) -> int:
    """`testnet`: run across a private network of 8 routers in namespaces (transport/testnet.py) with
    `hops`-hop tunnels and `delay` s one way per link, the tracker, seeder and leecher each on a router of
    its own (every call on them goes through that router's namespace loop), instead of one 0-hop router."""
    from i2ptorrent.client import Client, ClientConfig
    from i2ptorrent.tracker.eepsite import start_tracker
    from i2ptorrent.transport.router import ManagedRouter
    from i2ptorrent.transport.testnet import Testnet, TestnetConfig, session_options

    if size <= 0 or size > 1 << 30:
        raise UserError("demo: --size must be between 1 byte and 1G", EXIT_USAGE)
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="i2ptorrent-demo-")) if workdir is None else workdir
    started = time.monotonic()
    router = ManagedRouter(root / "router")
    stack = contextlib.AsyncExitStack()
    try:
        with StopSignal() as stop:
            if testnet:
                out.say(f"[1/6] starting a private I2P network: 8 i2pd routers in network namespaces, "
                        f"{hops}-hop tunnels, {delay * 1000:.0f} ms one way per link (~30 s)")
                net = Testnet(TestnetConfig(routers=8, delay=delay), root / "testnet")
                stack.push_async_callback(net.close)
                await net.start()
                sam = net.sam(0)
                opts = session_options(hops)
                places = {"tracker": 2, "seeder": 3, "leecher": 4}  # non-floodfill routers
                run = {role: (lambda coro, i=i: net.run(i, coro)) for role, i in places.items()}
            else:
                out.say(f"[1/6] starting a private I2P router (i2pd, loopback only) in {root}")
                sam = await router.start()
                stack.push_async_callback(router.stop)
                opts = router.session_options
                run = {role: _here for role in ("tracker", "seeder", "leecher")}

            out.say("[2/6] generating a test file")
            share = root / "seeder" / "share"
            share.mkdir(parents=True)
            original = share / "i2ptorrent-demo.bin"
            expected = await asyncio.to_thread(make_file, original, size)

            out.say("[3/6] opening three I2P destinations at once: tracker, seeder, leecher "
                    "(the router builds their tunnels; ~20 s)")
            seeder = Client(ClientConfig(root / "seeder" / "data", sam, dict(opts)))
            leecher = Client(ClientConfig(root / "leecher" / "data", sam, dict(opts)))
            tracker_task = asyncio.ensure_future(run["tracker"](start_tracker(root / "tracker", sam, dict(opts),
                                                                              private=False)))
            starts = asyncio.gather(run["seeder"](seeder.start()), run["leecher"](leecher.start()), tracker_task,
                                    return_exceptions=True)
            stopper = asyncio.ensure_future(stop.event.wait())
            await asyncio.wait({starts, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stop.event.is_set():
                starts.cancel()
                with contextlib.suppress(BaseException):
                    await starts
                out.say("demo interrupted; cleaning up")
                return EXIT_INTERRUPTED
            stopper.cancel()
            results = starts.result()
            for role, closer, res in (("seeder", seeder.close, results[0]), ("leecher", leecher.close, results[1]),
                                      ("tracker", getattr(results[2], "close", None), results[2])):
                if not isinstance(res, BaseException):
                    stack.push_async_callback(lambda r=role, c=closer: run[r](c()))
            for res in results:
                if isinstance(res, BaseException):
                    raise res
            site = results[2]
            out.say(f"      tracker  {site.b32}")
            out.say(f"      seeder   {seeder.b32}")
            out.say(f"      leecher  {leecher.b32}")

            trackers = [site.announce_url, site.http_announce_url] if via_tracker else []
            out.say(f"[4/6] seeder hashes the file and announces it to the tracker ({len(trackers)} URLs)")
            t_seed = await run["seeder"](seeder.seed(original, trackers))
            if via_tracker:
                async def announced() -> bool:
                    return (await run["tracker"](_value(site.server.core.stats))).get("seeders", 0) >= 1
                await _wait_for(announced, "the seeder's announce to reach the tracker")
                magnet = t_seed.magnet()  # trackers only: the leecher must find the seeder through them
            else:
                magnet = seeder.magnet(t_seed)  # x.pe: the seeder's own .b32
            out.say(f"      magnet   {magnet}")

            out.say("[5/6] leecher adds the magnet" + (" (no peer address in it: it asks the tracker)"
                                                        if via_tracker else ""))
            dest = root / "leecher" / "downloads"
            t_leech = await run["leecher"](leecher.add(magnet, dest))
            loop = asyncio.get_running_loop()
            added_at = loop.time()
            deadline = added_at + STEP_TIMEOUT
            carriers: set[str] = set()
            while True:
                st = await run["leecher"](_value(t_leech.status))
                carriers |= await run["leecher"](_value(lambda: {carrier_of(p.stream) for p in t_leech.swarm.peers}))
                out.show(st)
                if st.state == "seeding":
                    break
                if await stop.sleep(0.25):
                    out.say("demo interrupted; cleaning up")
                    return EXIT_INTERRUPTED
                if loop.time() > deadline:
                    raise UserError(f"demo: the download did not finish in {STEP_TIMEOUT:.0f} s "
                                    f"(state {st.state}, {st.progress:.0%}, peers {st.peers})")
            took = loop.time() - added_at
            st = await run["leecher"](_value(t_leech.status))
            out.show(st, force=True)

            out.say("[6/6] verifying: every piece was hash-checked on arrival; comparing the whole file")
            got = await asyncio.to_thread(sha256_of, dest / original.name)
            same = got == expected
            out.result(
                "\n".join([
                    "what happened:",
                    (f"  8 i2pd routers in network namespaces carried 3 I2P destinations over {hops}-hop "
                     f"tunnels, {delay * 1000:.0f} ms one way per link" if testnet else
                     "  a private i2pd served 3 I2P destinations over 0-hop tunnels on 127.0.0.1"),
                    f"  the seeder shared {original.name} ({format_bytes(size)}, {st.pieces_total} pieces)",
                    "  the leecher found it " + ("through the tracker eepsite " + site.b32
                                                 if via_tracker else "by the seeder's .b32 in the magnet"),
                    "  pieces came over " + (" and ".join(sorted(carriers)) or "?"),
                    f"  magnet to verified file in {took:.1f} s ({format_rate(size / max(took, 1e-3))} "
                    f"including the metadata exchange and the tracker lookup)",
                    f"  SHA-256 original {expected[:16]}..  download {got[:16]}..  "
                    + ("IDENTICAL" if same else "DIFFERENT"),
                    f"  total time {time.monotonic() - started:.1f} s; now stopping everything",
                ]),
                event="demo", identical=same, sha256=got, size=size, pieces=st.pieces_total,
                tracker=site.b32 if via_tracker else None, seeder=seeder.b32, leecher=leecher.b32,
                carriers=sorted(carriers), magnet=magnet, download_seconds=round(took, 2), seconds=round(time.monotonic() - started, 1))
            return EXIT_OK if same else EXIT_FAILURE
    finally:
        await stack.aclose()
        with contextlib.suppress(Exception):
            await router.stop()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
        out.say("cleaned up: router stopped, temporary files removed")
