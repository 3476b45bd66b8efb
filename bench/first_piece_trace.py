"""Where a new leecher's time to its first piece goes: bench/testnet.py with a timeline printed.

Runs bench/testnet.py with the same arguments and prints one `TRACE +seconds` line per step of each
new connection, counted from the latest `Client.add` (every leecher is a new client): the SAM connect
and lease-set lookup, RTC setup begin/end, the first wire events per peer, interested / metadata /
request messages, and the first verified piece. Seeders and the leecher share the process (each client on
its router's namespace loop), so both sides of a connection show. Read each gap as round trips: at
(3 hops, 50 ms per link) one is ~0.7 s.

    python3 bench/first_piece_trace.py --rows 3,50:8 --kinds xpe,webrtc-stripe --seeders 1

It wraps methods of the product at run time (a measuring aid, never imported by the product).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT)]

import testnet as bench  # noqa: E402  (bench/testnet.py: sets up the project's import path)

from i2ptorrent import announce  # noqa: E402
from i2ptorrent.client import Client  # noqa: E402
from i2ptorrent.engine.engine import Torrent  # noqa: E402
from i2ptorrent.engine import swarm  # noqa: E402
from i2ptorrent.transport import rtc, sam, signaling  # noqa: E402
from i2ptorrent.wire.connection import PeerWire  # noqa: E402

_t0 = time.monotonic()
FIRST_EVENTS = 14
"""Wire event batches printed per peer: the handshake-to-first-blocks part."""
SENDS_SHOWN = 6


def trace(msg: str) -> None:
    print(f"TRACE {time.monotonic() - _t0:7.2f} {msg}", flush=True)


def wrap_async(cls: type, name: str, before: Callable[..., str], after: Callable[..., str] | None = None) -> None:
    original = getattr(cls, name)

    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        trace(before(self, *args))
        result = await original(self, *args, **kwargs)
        if after is not None:
            trace(after(self, *args) + f" after {time.monotonic() - started:.2f} s")
        return result
    setattr(cls, name, wrapper)


def install() -> None:
    add = Client.add

    async def traced_add(self: Client, *args: Any, **kwargs: Any) -> Any:
        global _t0
        _t0 = time.monotonic()
        trace(f"add by {self.b32[:8]}")
        return await add(self, *args, **kwargs)
    Client.add = traced_add  # type: ignore[method-assign]

    wrap_async(sam.StreamSession, "connect", lambda s, peer, *a: f"connect -> {peer[:8]}",
               lambda s, peer, *a: f"connect -> {peer[:8]} ok")
    wrap_async(rtc.RTCStream, "start", lambda s, *a: f"rtc setup with {s.remote[:8]} begins",
               lambda s, *a: f"rtc setup with {s.remote[:8]} done")

    attach = signaling.Offer._attach

    def traced_attach(self: signaling.Offer, stream: Any, rest: bytes, lane: int, count: int) -> None:
        trace(f"lane {lane}/{count} from {stream.remote[:8]} accepted")
        attach(self, stream, rest, lane, count)
    signaling.Offer._attach = traced_attach  # type: ignore[method-assign]

    http_announce = announce.http_announce

    async def traced_announce(opener: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        trace(f"http announce to {url[7:19]} ({kwargs.get('event')})")
        result = await http_announce(opener, url, *args, **kwargs)
        trace(f"http announce answered after {time.monotonic() - started:.2f} s: {len(result.peers)} peers")
        return result
    announce.http_announce = traced_announce  # type: ignore[assignment]

    candidates = Torrent.add_candidates

    def traced_candidates(self: Torrent, b32s: Any) -> None:
        b32s = list(b32s)
        trace(f"candidates {[b[:8] for b in b32s]}")
        candidates(self, b32s)
    Torrent.add_candidates = traced_candidates  # type: ignore[method-assign]

    batches: dict[int, int] = {}
    handle = swarm.SwarmCore._handle

    def traced_handle(self: swarm.SwarmCore, ps: Any, events: list[Any], now: float) -> None:
        if batches.get(id(ps), 0) < FIRST_EVENTS and events:
            batches[id(ps)] = batches.get(id(ps), 0) + 1
            names = [type(e).__name__ for e in events]
            blocks = names.count("BlockReceived")
            names = [n for n in names if n != "BlockReceived"] + ([f"BlockReceived x{blocks}"] if blocks else [])
            trace(f"{ps.remote[:8]} said {names}")
        handle(self, ps, events, now)
    swarm.SwarmCore._handle = traced_handle  # type: ignore[method-assign]

    verified = swarm.SwarmCore._piece_verified

    def traced_verified(self: swarm.SwarmCore, piece: int, now: float) -> None:
        if self.picker is not None and self.picker.num_have == 0:
            trace(f"first piece verified ({piece})")
        verified(self, piece, now)
    swarm.SwarmCore._piece_verified = traced_verified  # type: ignore[method-assign]

    for name in ("send_interested", "send_unchoke", "send_request", "send_metadata_request"):
        original = getattr(PeerWire, name)
        count = [0]

        def traced(self: PeerWire, *args: Any, _original: Any = original, _name: str = name,
                   _count: list[int] = count) -> None:
            _count[0] += 1
            if _count[0] <= SENDS_SHOWN:
                trace(f"{_name}{args[:2]}")
            _original(self, *args)
        setattr(PeerWire, name, traced)


if __name__ == "__main__":
    install()
    sys.argv = [str(ROOT / "testnet.py")] + sys.argv[1:]
    asyncio.run(bench.main())
