"""Our clients on a testnet router: each Client lives on its router's namespace loop (where that router's
SAM is 127.0.0.1:7656) and is driven from the test's loop through Testnet.run. Shared by
tests/test_testnet.py and bench/testnet.py."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.engine import Torrent, TorrentStatus
from i2ptorrent.tracker import AccessList, TrackerEepsite, TrackerServer
from i2ptorrent.transport.sam import StreamSession, new_destination
from i2ptorrent.transport.sdp import CARRIER_STREAM
from i2ptorrent.transport.testnet import Testnet, session_options

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Node:
    """One of our clients on router `router` of `net`."""

    net: Testnet
    router: int
    client: Client

    async def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return await self.net.run(self.router, coro, timeout)

    async def status(self, t: Torrent) -> TorrentStatus:
        async def get() -> TorrentStatus:
            return t.status()
        return await self.call(get())

    async def peer_kinds(self, t: Torrent) -> set[str]:
        """How this node's connected peers are carried: 'sam' (a plain SAM stream) or 'rtc:<carrier>'."""
        async def get() -> set[str]:
            kinds = set()
            for p in t.swarm.peers:
                carrier = getattr(p.stream, "carrier", None)
                kinds.add(f"rtc:{type(carrier).__name__}" if carrier is not None else "sam")
            return kinds
        return await self.call(get())

    async def close(self) -> None:
        await self.call(self.client.close(), timeout=60)


PUBLISH_WAIT = 40.0
"""How long a new session's lease set may take to reach a floodfill once its session is up (seconds)."""
STARTS = 3


async def start_node(net: Testnet, router: int, data_dir: Path, hops: int,
                     carriers: tuple[str, ...] = (CARRIER_STREAM,), webrtc: bool = True) -> Node:
    """A Client with its own new SAM session (~20 s on i2pd 2.45) on `router`, findable by others: one
    whose lease sets never reached a floodfill (i2pd 2.45, Testnet.wait_published) is started again,
    as a user would restart a seeder nobody can reach."""
    async def make(data_dir: Path) -> Client:
        cfg = ClientConfig(data_dir, net.sam(router), session_options(hops), rtc_carriers=carriers,
                           webrtc=webrtc)
        return await Client(cfg).start()

    async def addresses(client: Client) -> list[str]:
        dg = client._datagrams  # the datagram carrier's own destination, when there is one
        return [client.b32] + ([dg.b32] if dg is not None else [])

    for attempt in range(STARTS):
        # new keys each time: i2pd 2.45 can leave keys used moments before unreachable (issue 2558)
        fresh = data_dir if attempt == 0 else data_dir.with_name(f"{data_dir.name}-{attempt}")
        node = Node(net, router, await net.run(router, make(fresh), timeout=180))
        missing = await net.wait_published(await node.call(addresses(node.client)), PUBLISH_WAIT)
        if not missing:
            return node
        await node.close()
        log.warning("router %d: lease set of %s not published (i2pd issue 1072); starting the node again",
                    router, missing)
    raise AssertionError(f"router {router}: a new node's lease set was never published in {STARTS} starts")


@dataclass
class Tracker:
    """Our tracker eepsite (HTTP + WebSocket announce) on a testnet router."""

    net: Testnet
    router: int
    site: TrackerEepsite
    session: StreamSession

    async def close(self) -> None:
        async def stop() -> None:
            await self.site.close()
            await self.session.close()
        await self.net.run(self.router, stop(), timeout=60)


async def start_tracker(net: Testnet, router: int, hops: int) -> Tracker:
    """Our tracker eepsite, findable by others (started again if its lease set was never published)."""
    async def make() -> tuple[TrackerEepsite, StreamSession]:
        sam = net.sam(router)
        session = await StreamSession.create(sam, await new_destination(sam), session_options(hops))
        site = TrackerEepsite(TrackerServer(access=AccessList(None, private=False)), session)
        await site.start()
        return site, session

    for _ in range(STARTS):
        site, session = await net.run(router, make(), timeout=180)
        tracker = Tracker(net, router, site, session)
        missing = await net.wait_published([session.b32], PUBLISH_WAIT)
        if not missing:
            return tracker
        await tracker.close()
        log.warning("router %d: the tracker's lease set was not published (i2pd issue 1072); starting again",
                    router)
    raise AssertionError(f"router {router}: the tracker's lease set was never published in {STARTS} starts")


@dataclass
class Progress:
    """When a download reached its milestones, seconds after `start`."""

    start: float = field(default_factory=time.monotonic)
    first_piece: float | None = None
    complete: float | None = None
    peer_kinds: set[str] = field(default_factory=set)


async def watch_download(node: Node, t: Torrent, timeout: float, progress: Progress | None = None,
                         on_poll: Any = None) -> Progress:
    """Wait until every piece is verified and written; note the first verified piece and the kinds of
    peers seen on the way. `on_poll(status)` is awaited on every poll (a test that acts mid-transfer)."""
    progress = progress or Progress()
    done = asyncio.ensure_future(node.call(t.wait_complete()))
    st: TorrentStatus | None = None
    try:
        async with asyncio.timeout(timeout):
            while not done.done():
                st = await node.status(t)
                if st.pieces_done and progress.first_piece is None:
                    progress.first_piece = time.monotonic() - progress.start
                progress.peer_kinds |= await node.peer_kinds(t)
                if on_poll is not None:
                    await on_poll(st)
                await asyncio.wait({done}, timeout=0.25)
            await done
    except TimeoutError:
        raise AssertionError(f"download not complete after {timeout:.0f} s: {st}, peers seen: "
                             f"{progress.peer_kinds}") from None
    finally:
        done.cancel()
    progress.complete = time.monotonic() - progress.start
    if progress.first_piece is None:
        progress.first_piece = progress.complete
    return progress
