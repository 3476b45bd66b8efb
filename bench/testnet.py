"""Side by side on one private I2P network (8 i2pd routers in namespaces, transport/testnet.py), per
(tunnel hops, one-way delay per link) row: a raw SAM stream, our classic peers, our WebRTC peers over each
carrier, and libtorrent 2.1.1's own I2P client (qBittorrent's engine, through tests/sam_proxy.py), each
with one seeder -> one leecher and four seeders -> one leecher, on the same files and routers.

Every leecher is a new client with a new SAM session (cold); times run from `add` to the first verified
piece and to completion, and every download's bytes are compared. Each kind finds its peers one way only:
`xpe` (classic peers) from the magnet's x.pe of the seeders, no tracker; `classic` and libtorrent through
our tracker eepsite's HTTP announce; WebRTC peers through its WebSocket announce alone (offers and
answers, no address). MB/s = size / (completion - first piece). "after session up" counts the first
piece from the moment the leecher's own SAM session is up: for ours that is `add` (a Client starts its
session before), for libtorrent the SAM proxy's SESSION STATUS OK (its session is made after `add`).
Progress is sampled every 50 ms on the leecher's own loop; completion is the completion event itself.

    python3 bench/testnet.py                                # every row: 1,0  3,50  3,150
    python3 bench/testnet.py --rows 3,50 --mib 2            # one row
    python3 bench/testnet.py --rows "1,0:32 3,50:8 3,150:2" # a size per row (MiB), the plain form takes --mib
    python3 bench/testnet.py --rows 3,50 --mib 8 --seeders 1 --kinds raw,webrtc-stripe --stripe-variants 1:8:plain,4:8
                    # sam-stripe once per SCTP window (MiB) : lanes [: plain aiortc timeouts], side by side
Needs root (namespaces). Seeders: routers 3,5,6,7; leechers: router 4; tracker: router 2.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Coroutine

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import libtorrent as lt  # noqa: E402

from i2ptorrent.engine import Torrent  # noqa: E402
from i2ptorrent.engine.metainfo import magnet_of  # noqa: E402
from i2ptorrent.engine.settings import anonymous_settings  # noqa: E402
from i2ptorrent.transport.carrier_io import StripedCarrier  # noqa: E402
from i2ptorrent.transport.rtc import _LosslessCarrierSctp  # noqa: E402
from i2ptorrent.transport.sam import SAMAddress, StreamSession, new_destination  # noqa: E402
from i2ptorrent.transport.sam_protocol import b32_address  # noqa: E402
from i2ptorrent.transport.sdp import CARRIER_DATAGRAM, CARRIER_STREAM, CARRIER_STRIPE  # noqa: E402
from i2ptorrent.transport.signaling import RTCConfig  # noqa: E402
from i2ptorrent.transport.testnet import Testnet, TestnetConfig, session_options  # noqa: E402
from sam_proxy import SessionRewritingProxy  # noqa: E402
from testnet_nodes import PUBLISH_WAIT, Node, Progress, start_node, start_tracker  # noqa: E402

MiB = 1024 * 1024
SEEDER_ROUTERS = [3, 5, 6, 7]
LEECHER_ROUTER = 4
TRACKER_ROUTER = 2
TIMEOUT = 600.0
"""Bound on each transfer: a stuck kind is reported as FAILED and the others still run."""
LOSSLESS = StripedCarrier.lossless
POLL = 0.05
"""Seconds between progress samples: a 2 MiB transfer at (1 hop, 0 ms) takes ~0.5-1 s."""
KINDS = ("raw", "xpe", "classic", "webrtc-stream", "webrtc-datagram", "webrtc-stripe", "libtorrent")


@dataclass
class Result:
    first: float
    done: float
    size: int
    session_first: float | None = None
    """First piece, seconds after the leecher's SAM session was up."""
    path: str = ""
    """How the leecher found its peers: x.pe, HTTP tracker, WebSocket tracker."""

    @property
    def rate(self) -> float:
        return self.size / max(1e-6, self.done - self.first) / 1e6

    def __str__(self) -> str:
        up = f"  first piece {self.session_first:6.2f} s after session up ({self.path})" \
            if self.session_first is not None else ""
        return f"first piece {self.first:6.2f} s  done {self.done:6.2f} s  {self.rate:6.3f} MB/s{up}"


def sha(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


# ---- raw SAM stream ---------------------------------------------------------------------------------

async def read_bytes(stream: Any, size: int) -> tuple[float, float]:
    """Read `size` bytes off a SAM stream: (time.monotonic() of the first byte, of the last)."""
    got, first = 0, 0.0
    while got < size:
        chunk = await stream.read(1 << 20)
        if not chunk:
            raise RuntimeError(f"stream closed after {got} of {size} bytes")
        first = first or time.monotonic()
        got += len(chunk)
    return first, time.monotonic()


async def raw_stream(net: Testnet, hops: int, size: int) -> Result:
    """One SAM stream from a seeder router to the leecher router: connect to first byte, to last byte."""
    async def session() -> StreamSession:
        sam = SAMAddress()
        return await StreamSession.create(sam, await new_destination(sam), session_options(hops))
    a, b = await asyncio.gather(net.run(SEEDER_ROUTERS[0], session()), net.run(LEECHER_ROUTER, session()))
    block = os.urandom(256 * 1024)

    async def receive() -> tuple[float, float]:
        s = await b.accept()
        times = await read_bytes(s, size)
        await s.close()
        return times

    async def send() -> None:
        s = await a.connect(b.b32, timeout=120)
        sent = 0
        while sent < size:
            await s.write(block)
            sent += len(block)
        await asyncio.sleep(5)
        await s.close()

    try:
        start = time.monotonic()
        receiving = asyncio.ensure_future(net.run(LEECHER_ROUTER, receive(), timeout=TIMEOUT))
        await net.run(SEEDER_ROUTERS[0], send(), timeout=TIMEOUT)
        first, last = await receiving
        return Result(first - start, last - start, size)
    finally:
        await net.run(SEEDER_ROUTERS[0], a.close())
        await net.run(LEECHER_ROUTER, b.close())


# ---- ours ---------------------------------------------------------------------------------------------

@dataclass
class Variant:
    """RTC settings for one webrtc run: the leecher's SCTP window (what the seeder's SCTP may keep in flight)
    and the lanes both sides open for sam-stripe (the answerer's count is the one used); `plain`: SCTP takes
    a stalled lane's timeout for loss, as aiortc does alone (StripedCarrier.lossless off, process-wide);
    `stripe_bytes`: bytes sent on one lane before the next takes over (RTCConfig.stripe_bytes); `late`: SCTP
    waits for its COOKIE ACK before the first message, as aiortc does alone (process-wide)."""
    window: int
    lanes: int
    plain: bool = False
    stripe_bytes: int | None = None
    late: bool = False

    @classmethod
    def parse(cls, spec: str) -> "Variant":
        """'WINDOW_MIB:LANES[:plain][:late][:bBYTES]'"""
        window, lanes, *flags = spec.split(":")
        stripe = [int(f[1:]) for f in flags if f.startswith("b")]
        return cls(int(float(window) * MiB), int(lanes), "plain" in flags, stripe[0] if stripe else None,
                   "late" in flags)

    @property
    def label(self) -> str:
        return (f"w{self.window // MiB}l{self.lanes}" + ("-plain" if self.plain else "")
                + ("-late" if self.late else "") + (f"-b{self.stripe_bytes}" if self.stripe_bytes else ""))


def apply_variant(node: Node, variant: Variant | None) -> Coroutine[Any, Any, None]:
    async def apply() -> None:
        if variant is not None and node.client.rtc is not None:
            node.client.rtc.config.stripe_window = variant.window
            node.client.rtc.config.stripe_lanes = variant.lanes
            node.client.rtc.config.stripe_bytes = variant.stripe_bytes or RTCConfig.stripe_bytes
            StripedCarrier.lossless = not variant.plain
            _LosslessCarrierSctp.ESTABLISH_ON_COOKIE_ECHO = not variant.late
    return apply()


async def sample_sctp(node: Node, torrent: Any, label: str, every: float = 5.0) -> None:
    """Print the sending side's SCTP state every `every` s (flight, window, threshold, srtt): what bounds it."""
    async def read() -> list[str]:
        out = []
        for p in torrent.swarm.peers:
            state = getattr(p.stream, "sctp_state", lambda: None)()
            if state:
                out.append(f"flight {state['flight'] / 1e3:.0f} KB cwnd {state['cwnd'] / 1e3:.0f} KB "
                           f"ssthresh {state['ssthresh'] / 1e3:.0f} KB srtt {state['srtt']:.2f} s "
                           f"stalls {state['stalls']}")
        return out
    start = time.monotonic()
    try:
        while True:
            await asyncio.sleep(every)
            for line in await node.call(read()):
                print(f"  sctp {label} t={time.monotonic() - start:5.0f}s {line}", flush=True)
    except Exception as exc:  # the figures go on without the samples
        print(f"  sctp {label}: sampling failed: {exc!r}", flush=True)


async def timeline(t: Torrent, start: float, timeout: float,
                   seen: dict[int, tuple[str, bool]] | None = None) -> tuple[float, float]:
    """(first verified piece, completion), seconds after `start`: sampled every POLL on the torrent's own
    loop (no cross-loop call per sample), completion from the event itself. `seen` collects the peer
    connections met on the way: id -> (remote, outgoing)."""
    done = asyncio.ensure_future(t.wait_complete())
    first: float | None = None
    try:
        async with asyncio.timeout(timeout):
            while not done.done():
                if first is None and t.status().pieces_done:
                    first = time.monotonic() - start
                if seen is not None:
                    seen.update((id(p), (p.remote, p.outgoing)) for p in t.swarm.peers)
                await asyncio.wait({done}, timeout=POLL)
            await done
    except TimeoutError:
        raise RuntimeError(f"download not complete after {timeout:.0f} s: {t.status()}") from None
    finally:
        done.cancel()
    complete = time.monotonic() - start
    return (complete if first is None else first), complete


async def ours_leech(net: Testnet, hops: int, work: Path, magnet: str, carriers: tuple[str, ...],
                     webrtc: bool, src: Path, label: str, path: str, variant: Variant | None = None,
                     sender: tuple[Node, Any] | None = None) -> Result:
    leecher = await start_node(net, LEECHER_ROUTER, work / f"leech-{label}", hops, carriers, webrtc=webrtc)
    sampler = None
    try:
        await leecher.call(apply_variant(leecher, variant))
        if sender is not None:
            await sender[0].call(apply_variant(sender[0], variant))
            sampler = asyncio.ensure_future(sample_sctp(sender[0], sender[1], label))
        seen: dict[int, tuple[str, bool]] = {}

        async def download() -> tuple[float, float]:
            start = time.monotonic()
            t = await leecher.client.add(magnet, work / f"dl-{label}")
            return await timeline(t, start, TIMEOUT, seen)
        first, done = await leecher.call(download())
        print(f"  {label}: {len(seen)} peer connections to {len({r for r, _ in seen.values()})} peers, "
              f"{sum(not out for _, out in seen.values())} of them incoming", flush=True)
        if sha(work / f"dl-{label}" / src.name) != sha(src):
            raise RuntimeError(f"{label}: the downloaded bytes differ")
        # our leecher's session is up before `add`: its first piece after session up is after `add`
        return Result(first, done, src.stat().st_size, first, path)
    finally:
        if sampler is not None:
            sampler.cancel()
        StripedCarrier.lossless = LOSSLESS  # a `plain` or `late` variant ends with its run
        _LosslessCarrierSctp.ESTABLISH_ON_COOKIE_ECHO = True
        await leecher.close()


# ---- libtorrent ------------------------------------------------------------------------------------

def lt_settings(sam_port: int, hops: int) -> dict[str, Any]:
    settings = anonymous_settings()
    settings.update({
        "i2p_hostname": "127.0.0.1", "i2p_port": sam_port, "allow_i2p_mixed": False,
        "i2p_inbound_length": hops, "i2p_outbound_length": hops, "i2p_inbound_quantity": 3,
        "i2p_outbound_quantity": 3, "enable_outgoing_tcp": True,
        # no outgoing_interfaces: libtorrent checks an incoming connection's local address against them
        # and an I2P stream has none, so a seeder with "127.0.0.1" there dropped every I2P peer at once
        # (the leecher saw EOF). Its only sockets are to the SAM bridge on 127.0.0.1 anyway.
        "outgoing_interfaces": "",
        "anonymous_mode": False, "alert_mask": lt.alert_category.error | lt.alert_category.status
        | lt.alert_category.peer | lt.alert_category.connect | lt.alert_category.tracker,
    })
    return settings


class LtNode:
    """A libtorrent session with its own I2P SAM session, living on one router's namespace loop."""

    def __init__(self, net: Testnet, router: int, hops: int) -> None:
        self.net, self.router, self.hops = net, router, hops
        self.proxy: SessionRewritingProxy | None = None
        self.ses: Any = None
        self.handle: Any = None
        self.alerts: list[str] = []
        """The last alerts, for a report when it gets stuck."""
        self.session_up: float | None = None
        """time.monotonic() when its SAM session was up (the proxy saw SESSION STATUS OK)."""

    async def start(self) -> "LtNode":
        async def make() -> None:
            self.proxy = await SessionRewritingProxy("127.0.0.1", 7656).__aenter__()
            self.ses = lt.session(lt_settings(self.proxy.port, self.hops))
        await self.net.run(self.router, make())
        return self

    @property
    def b32(self) -> str | None:
        """Its I2P address, once libtorrent has asked the router for its own destination."""
        dest = self.proxy.destination if self.proxy is not None else None
        return b32_address(dest) if dest else None

    async def add(self, ti: Any, save_path: Path, tracker: str) -> None:
        async def add() -> None:
            atp = lt.add_torrent_params()
            atp.ti = ti
            atp.save_path = str(save_path)
            atp.trackers = [tracker]
            self.handle = self.ses.add_torrent(atp)
            assert self.proxy is not None
            await asyncio.wait_for(self.proxy.session_ready.wait(), 180)
            self.session_up = time.monotonic()
            self.handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
        await self.net.run(self.router, add())

    async def status(self) -> Any:
        async def get() -> Any:
            self.alerts = (self.alerts + [f"{type(a).__name__}: {a.message()}" for a in self.ses.pop_alerts()])[-30:]
            return self.handle.status()
        return await self.net.run(self.router, get())

    async def reannounce_until(self, seeding: bool, timeout: float, progress: Progress) -> None:
        """Poll until done (or, for a seeder, until it has checked its files and is seeding)."""
        deadline = time.monotonic() + timeout
        last_announce = time.monotonic()
        while True:
            st = await self.status()
            if st.num_pieces and progress.first_piece is None:
                progress.first_piece = time.monotonic() - progress.start
            if st.is_seeding:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"libtorrent on router {self.router}: not done after {timeout:.0f} s "
                                   f"({st.num_peers} peers, {st.num_pieces} pieces, {st.state}); last alerts: "
                                   f"{self.alerts}")
            if not seeding and st.num_peers == 0 and time.monotonic() - last_announce > 15:
                last_announce = time.monotonic()
                await self.net.run(self.router, self._reannounce())
            await asyncio.sleep(0.25 if seeding else POLL)

    async def _reannounce(self) -> None:
        self.handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)

    async def close(self) -> None:
        async def stop() -> None:
            self.ses = None
            self.handle = None
            if self.proxy is not None:
                await self.proxy.__aexit__(None, None, None)
        await self.net.run(self.router, stop())


async def start_lt_seeders(net: Testnet, hops: int, torrents: dict[int, list[tuple[Any, Path]]],
                           tracker: str) -> list[LtNode]:
    """libtorrent seeders (router -> [(torrent_info, its directory)]), each seeding and findable: i2pd 2.45
    leaves a new session's lease set unpublished for ~10 minutes when all its inbound tunnels are built
    before its first outbound one (i2pd issue 1072); a seeder whose lease set no floodfill stored is
    started again, as our own nodes are (tests/testnet_nodes.py start_node)."""
    nodes: dict[int, LtNode] = {}
    todo = list(torrents)
    for attempt in range(4):
        started = await asyncio.gather(*(LtNode(net, r, hops).start() for r in todo))
        for node in started:
            nodes[node.router] = node
            for ti, path in torrents[node.router]:
                await node.add(ti, path, tracker)
        for node in started:
            await node.reannounce_until(True, 120, Progress())
        b32s = {node.router: node.b32 for node in started}
        missing = await net.wait_published([b for b in b32s.values() if b], PUBLISH_WAIT)
        todo = [r for r, b in b32s.items() if b is None or b in missing]
        if not todo:
            return list(nodes.values())
        print(f"libtorrent seeders on routers {todo}: lease set not published after {PUBLISH_WAIT:.0f} s "
              f"(attempt {attempt + 1}); starting them again", flush=True)
        for r in todo:
            await nodes.pop(r).close()
    raise RuntimeError(f"libtorrent seeders on routers {todo} never became findable")


def describe_dials(dialled: list[str], tracker_url: str) -> str:
    """'N streams: T to the tracker, P to peers' (libtorrent names the tracker by host or by destination)."""
    host = tracker_url.split("/")[2].split(":")[0].lower()
    to_tracker = sum(1 for d in dialled if d.lower() == host or (not d.endswith(".i2p") and b32_address(d) == host))
    return f"{len(dialled)} streams: {to_tracker} to the tracker, {len(dialled) - to_tracker} to peers"


async def lt_leech(net: Testnet, hops: int, work: Path, ti: Any, tracker: str, src: Path, label: str) -> Result:
    node = await LtNode(net, LEECHER_ROUTER, hops).start()
    try:
        progress = Progress()
        await node.add(ti, work / f"dl-{label}", tracker)
        await node.reannounce_until(False, TIMEOUT, progress)
        progress.complete = time.monotonic() - progress.start
        assert node.proxy is not None
        print(f"  {label}: the libtorrent leecher dialled {describe_dials(node.proxy.dialled, tracker)}", flush=True)
        if sha(work / f"dl-{label}" / src.name) != sha(src):
            raise RuntimeError(f"{label}: the downloaded bytes differ")
        assert progress.first_piece is not None and node.session_up is not None
        session_first = progress.start + progress.first_piece - node.session_up
        return Result(progress.first_piece, progress.complete, src.stat().st_size, session_first, "HTTP tracker")
    finally:
        await node.close()


# ---- one row ---------------------------------------------------------------------------------------

def ratio(a: Result | None, b: Result | None) -> str:
    return f"{a.rate / b.rate:.2f}" if a and b and b.rate else "n/a"


async def run_row(net: Testnet, hops: int, delay: float, mib: float, work: Path, kinds: set[str],
                  swarms: tuple[str, ...] = ("1", "4"), variants: list[Variant] | None = None) -> None:
    net.set_links(delay)
    print(f"\n== {hops} hops, {delay * 1000:.0f} ms per link, {mib:g} MiB "
          f"(load {os.getloadavg()[0]:.2f}) ==", flush=True)
    work.mkdir(parents=True)
    size = int(mib * MiB)
    one, four = work / "share1" / "one-seeder.bin", work / "share4" / "four-seeders.bin"
    for p in (one, four):
        p.parent.mkdir()
        p.write_bytes(os.urandom(size))
    tracker = await start_tracker(net, TRACKER_ROUTER, hops)
    carriers = (CARRIER_STREAM, CARRIER_DATAGRAM, CARRIER_STRIPE)
    seeders: list[Node] = list(await asyncio.gather(*(
        start_node(net, r, work / f"seeder{r}", hops, carriers) for r in SEEDER_ROUTERS)))
    lt_seeders: list[LtNode] = []
    results: dict[str, Result | None] = {}
    try:
        trackers = [tracker.site.http_announce_url, tracker.site.announce_url]
        t1 = await seeders[0].call(seeders[0].client.seed(one, trackers=trackers))
        t4 = await seeders[0].call(seeders[0].client.seed(four, trackers=trackers))
        for s in seeders[1:]:
            await s.call(s.client.add(t4.metainfo, four.parent))
        if "raw" in kinds:
            raw = results["raw"] = await raw_stream(net, hops, size)
            print(f"raw SAM stream          {raw}", flush=True)
        http, ws = tracker.site.http_announce_url, tracker.site.announce_url
        # (kind, carriers, webrtc, the magnet's one way to the seeders, its name)
        ours = [("xpe", (CARRIER_STREAM,), False, None, "x.pe"),
                ("classic", (CARRIER_STREAM,), False, http, "HTTP tracker"),
                ("webrtc-stream", (CARRIER_STREAM,), True, ws, "WebSocket tracker"),
                ("webrtc-datagram", (CARRIER_DATAGRAM,), True, ws, "WebSocket tracker"),
                ("webrtc-stripe", (CARRIER_STRIPE,), True, ws, "WebSocket tracker")]
        for n, t in (("1", t1), ("4", t4)):
            if n not in swarms:
                continue
            src = one if n == "1" else four
            peers = [s.client.b32 for s in (seeders[:1] if n == "1" else seeders)]
            for kind, cs, webrtc, announce, path in ours:
                if kind not in kinds:
                    continue
                if announce is None:
                    magnet = magnet_of(t.metainfo, trackers=[], peers=peers)
                else:
                    magnet = magnet_of(t.metainfo, trackers=[announce], peers=())
                runs: list[Variant | None] = list(variants or [None]) if kind == "webrtc-stripe" else [None]
                for i, variant in enumerate(runs):
                    name = kind if variant is None else f"{kind}-{variant.label}"
                    if variant is not None and runs.index(variant) != i:
                        name += f"-{i}"  # a repeated variant is a new leecher with a new download
                    sender = (seeders[0], t) if webrtc else None
                    try:
                        results[f"{name}-{n}"] = await ours_leech(net, hops, work, magnet, cs, webrtc, src,
                                                                  f"{name}-{n}", path, variant, sender)
                        print(f"ours {name:15s} {n}->1 {results[f'{name}-{n}']}", flush=True)
                    except Exception as exc:  # one failed kind must not lose the others' figures
                        results[f"{name}-{n}"] = None
                        print(f"ours {name:15s} {n}->1 FAILED: {exc!r}"[:400], flush=True)
                    if variant is not None and f"{kind}-{n}" not in results:
                        results[f"{kind}-{n}"] = results[f"{name}-{n}"]  # the first variant stands for the kind
        ti1, ti4 = t1.metainfo.torrent_info(), t4.metainfo.torrent_info()
        await asyncio.gather(*(s.close() for s in seeders), return_exceptions=True)
        seeders = []  # libtorrent's leecher must find libtorrent's seeders only
        if "libtorrent" in kinds:
            # a tracker of their own: ours still lists our seeders, gone now, and libtorrent would dial them
            await tracker.close()
            tracker = await start_tracker(net, TRACKER_ROUTER, hops)
            seeding = {r: [(ti4, four.parent)] for r in SEEDER_ROUTERS}
            seeding[SEEDER_ROUTERS[0]].insert(0, (ti1, one.parent))
            lt_seeders = await start_lt_seeders(net, hops, seeding, tracker.site.http_announce_url)
            for n, ti, src in (("1", ti1, one), ("4", ti4, four)):
                try:
                    results[f"lt-{n}"] = await lt_leech(net, hops, work, ti, tracker.site.http_announce_url, src,
                                                        f"lt-{n}")
                    print(f"libtorrent I2P          {n}->1 {results[f'lt-{n}']}", flush=True)
                except Exception as exc:
                    results[f"lt-{n}"] = None
                    print(f"libtorrent I2P          {n}->1 FAILED: {exc!r}"[:4000], flush=True)
    finally:
        for node in lt_seeders:
            if node.proxy is not None:
                print(f"  libtorrent seeder on router {node.router} dialled "
                      f"{describe_dials(node.proxy.dialled, tracker.site.http_announce_url)}", flush=True)
            await node.close()
        await asyncio.gather(*(s.close() for s in seeders), return_exceptions=True)
        await tracker.close()
    print(f"-- ratios ({hops} hops, {delay * 1000:.0f} ms) --")
    for n in ("1", "4"):
        c = results.get(f"classic-{n}")
        print(f"{n}->1  ours/libtorrent = {ratio(c, results.get(f'lt-{n}'))}  "
              f"webrtc/classic = {ratio(results.get(f'webrtc-stream-{n}'), c)} (stream), "
              f"{ratio(results.get(f'webrtc-datagram-{n}'), c)} (datagram), "
              f"{ratio(results.get(f'webrtc-stripe-{n}'), c)} (stripe)  "
              f"ours/raw = {ratio(c, results.get('raw'))}  "
              f"stripe/raw = {ratio(results.get(f'webrtc-stripe-{n}'), results.get('raw'))}  "
              f"xpe/raw = {ratio(results.get(f'xpe-{n}'), results.get('raw'))}")
    for key, r in results.items():  # every variant run, repeats included (their names end in -{i})
        if variants and key.startswith("webrtc-stripe-") and key.count("-") > 2:
            print(f"{key[-1]}->1  stripe {key[len('webrtc-stripe-'):-2]}: stripe/raw = {ratio(r, results.get('raw'))}")
    print(f"four/one seeders (classic) = {ratio(results.get('classic-4'), results.get('classic-1'))}  "
          f"(stripe) = {ratio(results.get('webrtc-stripe-4'), results.get('webrtc-stripe-1'))}", flush=True)
    print("first piece after the leecher's session is up (goal: <= 5 s with x.pe, <= 10 s by WebSocket "
          "tracker alone):")
    for key, r in results.items():
        if r is not None and r.session_first is not None:
            print(f"  {key:19s} {r.session_first:6.2f} s  ({r.path})")
    print("", flush=True)


def parse_rows(text: str, mib: float) -> list[tuple[int, float, float]]:
    """'1,0:32 3,50' -> [(1, 0.0, 32.0), (3, 0.05, mib)]: (hops, one-way delay in s, MiB per transfer)."""
    rows = []
    for row in text.split():
        spec, _, size = row.partition(":")
        hops, delay = spec.split(",")
        rows.append((int(hops), float(delay) / 1000, float(size) if size else mib))
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1,0 3,50 3,150",
                    help="'HOPS,DELAY_MS[:MIB] ...' (default: all three); MIB overrides --mib for that row")
    ap.add_argument("--mib", type=float, default=2.0, help="file size per transfer (default 2 MiB)")
    ap.add_argument("--routers", type=int, default=8)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"a subset of {','.join(KINDS)}")
    ap.add_argument("--seeders", default="1,4", help="which of our swarms to run: 1 and/or 4 seeders")
    ap.add_argument("--stripe-variants", default="",
                    help="run webrtc-stripe once per 'WINDOW_MIB:LANES[:plain][:late][:bBYTES]' (comma separated), "
                    "side by side; plain: aiortc's own timeouts; late: SCTP waits for its COOKIE ACK; bBYTES: bytes per lane before the next (default stripe.STRIPE_BYTES, 4096)")
    ap.add_argument("--timeout", type=float, default=600.0, help="bound on each transfer, seconds")
    args = ap.parse_args()
    global TIMEOUT
    TIMEOUT = args.timeout
    rows = parse_rows(args.rows, args.mib)
    variants = [Variant.parse(v) for v in args.stripe_variants.split(",") if v]
    work = Path(tempfile.mkdtemp(prefix="i2pt-bench-testnet-"))
    started = time.monotonic()
    try:
        async with Testnet(TestnetConfig(routers=args.routers, delay=rows[0][1])) as net:
            print(f"testnet: {args.routers} routers up in {time.monotonic() - started:.0f} s", flush=True)
            print(f"load: {os.getloadavg()}", flush=True)
            for i, (hops, delay, mib) in enumerate(rows):
                try:
                    await run_row(net, hops, delay, mib, work / f"row{i}", set(args.kinds.split(",")),
                                  tuple(args.seeders.split(",")), variants)
                except Exception:  # a crashed i2pd shows only as "no SAM bridge answers": say which and how
                    for router in net.dead():
                        print(router.exit_report(), flush=True)
                    raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s, load: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
