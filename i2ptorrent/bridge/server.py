"""The bridge's asyncio side: the local WebSocket endpoint, aiortc answers, and joining channels to I2P.

A browser's WebTorrent client uses `Bridge.announce_url` (it holds the bridge's secret) as its tracker.
gate.py decides who may connect at all; BridgeCore decides what to say
and which offers to answer; here each answered offer becomes an aiortc RTCPeerConnection with no STUN or
TURN server and candidates filtered both ways (ice.py), and its data channel, once open, is joined to:
- the local engine, when it has the torrent (the browser downloads what we have or fetch over I2P, and
  our I2P peers download what the browser gives us);
- a torrent the bridge adopts, when `adopt_dir` is set and the browser seeds something the engine lacks
  (the engine fetches it from the browser and serves it to I2P peers from then on);
- a remote I2P peer's stream from `connect_remote(info_hash)`, spliced byte for byte.
The browser only ever sees the bridge's loopback endpoint and one local ICE address (one it named itself
when it can); the I2P side sees our destination. Neither learns the other's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import ifaddr
from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from ..engine import Torrent
from ..loopback import is_loopback
from ..transport.stream import ByteStream
from .channel import ChannelStream
from .core import (
    AnswerOffer, BridgeCore, BridgeLimits, ChannelKey, CloseSocket, DropChannels, Send, SwarmView,
)
from .gate import Gate, new_secret
from .ice import (
    AddressFilter, IPAddress, OfferError, address_filter, answer_address, candidate_addresses, check_offer,
    filter_candidates,
)
from .splice import splice

log = logging.getLogger(__name__)

RemoteConnector = Callable[[bytes], Awaitable[ByteStream | None]]
SEND_TIMEOUT = 10.0
SWEEP_INTERVAL = 15.0
ADOPT_TIMEOUT = 30.0


class BridgeError(Exception):
    """The bridge cannot start as asked (address not local, port in use)."""


class Node(Protocol):
    """What the bridge uses of the node it serves: the Client's public API (i2ptorrent/client.py).

    An Engine has the same four members; tests with no I2P at all hand the bridge an Engine.
    """

    @property
    def peer_id(self) -> bytes: ...

    def get(self, info_hash: bytes) -> Torrent | None: ...

    async def add(self, source: str, save_path: Path) -> Torrent: ...

    async def add_peer(self, t: Torrent, stream: ByteStream) -> bool: ...


def local_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address on this machine's (or this network namespace's) interfaces."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            addr = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            with contextlib.suppress(ValueError):
                found.add(ipaddress.ip_address(addr.split("%")[0]))
    return found


class Bridge:
    """Browser WebTorrent <-> I2P. `await start()`, give the browser `announce_url`, `await close()`."""

    def __init__(self, node: Node, *, secret: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 limits: BridgeLimits | None = None, ice_addresses: Iterable[str] | None = None,
                 adopt_dir: Path | str | None = None, max_adopted: int = 16,
                 connect_remote: RemoteConnector | None = None,
                 on_adopted: Callable[[Torrent], Any] | None = None,
                 allowed_origins: Iterable[str] | None = None) -> None:
        if not is_loopback(host):
            raise BridgeError("the bridge listens on loopback only (the browser is on this machine)")
        self.node = node
        self.secret = secret or new_secret()  # a bridge built without one still serves no page but its own
        self.host = host
        self.port = port
        self.limits = limits or BridgeLimits()
        self.allow: AddressFilter = address_filter(ice_addresses)
        self.adopt_dir = Path(adopt_dir) if adopt_dir is not None else None
        self.max_adopted = max_adopted
        self.connect_remote = connect_remote
        self.on_adopted = on_adopted
        self.allowed_origins = None if allowed_origins is None else list(allowed_origins)
        self.gate: Gate
        self.core: BridgeCore
        self._ids = itertools.count(1)
        self._sockets: dict[int, web.WebSocketResponse] = {}
        self._streams: dict[ChannelKey, set[ChannelStream]] = {}
        self._pcs: set[RTCPeerConnection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._adopting: dict[bytes, asyncio.Task[Torrent | None]] = {}
        self.adopted: list[Torrent] = []
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.bytes_to_browsers = 0
        self.bytes_from_browsers = 0
        self.channels_opened = 0
        self.turned_away = 0  # requests without the secret, right Host or a listed Origin

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def announce_url(self) -> str:
        """The one URL that works: it carries the secret, so only a page the user gives it can connect."""
        return f"ws://{self.netloc}/{self.secret}/announce"

    async def start(self) -> None:
        self.core = BridgeCore(self.node.peer_id, self._serves, self.limits)
        app = web.Application(client_max_size=self.limits.max_message_size)
        app.router.add_get("/{path:.*}", self._websocket)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise BridgeError(f"cannot listen on {self.host}:{self.port}: {e}") from None
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.gate = Gate.of(self.secret, self.netloc, self.allowed_origins)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for ws in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await ws.close()
        for task in [*self._tasks, *self._adopting.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._adopting.values(), return_exceptions=True)
        for streams in list(self._streams.values()):
            for s in list(streams):
                await s.close()
        for pc in list(self._pcs):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stats(self) -> dict[str, int]:
        live = [s for streams in self._streams.values() for s in streams]
        return {"sockets": len(self._sockets), "channels": self.core.channels,
                "channels_opened": self.channels_opened, "refused": self.core.refused,
                "bytes_to_browsers": self.bytes_to_browsers + sum(s.bytes_sent for s in live),
                "bytes_from_browsers": self.bytes_from_browsers + sum(s.bytes_received for s in live),
                "adopted": len(self.adopted), "turned_away": self.turned_away}

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            await self._apply(self.core.expire(time.monotonic()))

    # -- what we serve -----------------------------------------------------------------------------

    def _serves(self, info_hash: bytes, left: float) -> SwarmView | None:
        t = self.node.get(info_hash)
        if t is not None:
            try:
                seeding = t.status().state == "seeding"
            except Exception:  # a status glitch must not cost the browser its socket
                log.exception("status of %s failed", info_hash.hex())
                seeding = False
            return SwarmView(complete=1 if seeding else 0, incomplete=0 if seeding else 1)
        if info_hash in self._adopting:
            return SwarmView(0, 1)
        if self.adopt_dir is not None and left == 0 and len(self.adopted) + len(self._adopting) < self.max_adopted:
            task = asyncio.get_running_loop().create_task(self._adopt(info_hash))
            self._adopting[info_hash] = task
            return SwarmView(0, 1)
        if self.connect_remote is not None:
            return SwarmView(0, 1)
        return None

    async def _adopt(self, info_hash: bytes) -> Torrent | None:
        """The browser seeds a torrent we lack: fetch it from the browser, then serve it on I2P."""
        assert self.adopt_dir is not None
        try:
            t = await self.node.add(f"magnet:?xt=urn:btih:{info_hash.hex()}", self.adopt_dir / info_hash.hex())
        except Exception as e:
            log.warning("cannot adopt %s: %s", info_hash.hex(), e)
            return None
        finally:
            self._adopting.pop(info_hash, None)
        self.adopted.append(t)
        if self.on_adopted is not None:
            with contextlib.suppress(Exception):
                result = self.on_adopted(t)
                if asyncio.iscoroutine(result):
                    await result
        return t

    # -- the browser's tracker socket --------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.gate.admits(request.path, request.headers.get("Host"), request.headers.get("Origin")):
            self.turned_away += 1
            return web.Response(status=404, text="not found\n")  # the same for every reason: no hints
        ws = web.WebSocketResponse(compress=False, max_msg_size=4 * self.limits.max_message_size,
                                   autoping=True, heartbeat=None)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="WebSocket tracker: connect with a WebTorrent client\n")
        await ws.prepare(request)
        sid = next(self._ids)
        if not self.core.connect(sid, time.monotonic()):
            await ws.close(code=1013, message=b"too many browser connections")
            return ws
        self._sockets[sid] = ws
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    # In order, and this socket waits for its own replies (its backpressure, nobody else's).
                    await self._apply(self.core.receive(sid, msg.data, time.monotonic()))
                else:
                    break
        finally:
            self.core.disconnect(sid)
            self._sockets.pop(sid, None)
        return ws

    async def _apply(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                await self._send(action.socket_id, action.data)
            elif isinstance(action, AnswerOffer):
                self._spawn(self._answer(action))
            elif isinstance(action, CloseSocket):
                ws = self._sockets.get(action.socket_id)
                if ws is not None:
                    log.info("closing browser socket %d: %s", action.socket_id, action.reason)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(code=1008, message=action.reason[:120].encode()), SEND_TIMEOUT)
            elif isinstance(action, DropChannels):
                for s in list(self._streams.get(action.key, ())):
                    self._spawn(s.close())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, sid: int, data: bytes) -> None:
        ws = self._sockets.get(sid)
        if ws is None or ws.closed:
            return
        try:
            await asyncio.wait_for(ws.send_str(data.decode("utf-8")), SEND_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError) as e:
            log.info("browser socket %d not reading (%s): closed", sid, e)
            with contextlib.suppress(Exception):
                await ws.close()

    # -- answering offers ------------------------------------------------------------------------

    async def _answer(self, action: AnswerOffer) -> None:
        key, offer = action.key, action.offer
        opened = False
        pc: RTCPeerConnection | None = None
        stream: ChannelStream | None = None
        try:
            try:
                check_offer(offer.sdp)
                mine = local_addresses()
                sdp, _ = filter_candidates(offer.sdp, lambda ip: ip in mine and self.allow(ip))
                offered = candidate_addresses(sdp)
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # never a STUN/TURN server
                self._pcs.add(pc)
                stream = await asyncio.wait_for(self._connect(pc, action, sdp, offered), self.limits.connect_timeout)
            except (OfferError, ValueError) as e:
                await self._send(action.socket_id, self.core.offer_failed(key, f"offer refused: {e}"))
                return
            except (asyncio.TimeoutError, ConnectionError) as e:
                log.info("browser offer for %s not connected: %s", key[1].encode("latin-1").hex()[:12], e)
                return
            opened = True
            log.info("browser channel open: %s for %s", stream.remote, key[1].encode("latin-1").hex())
            self.core.channel_open(action.socket_id, key)
            self.channels_opened += 1
            self._streams.setdefault(key, set()).add(stream)
            await self._join(key, stream, action.left)
            await stream.wait_closed()
        except Exception:  # a bug here costs this browser peer its channel, nothing more
            log.exception("browser channel for %s failed", key[1].encode("latin-1").hex()[:12])
        finally:
            if stream is not None:
                await stream.close()
                self.bytes_to_browsers += stream.bytes_sent
                self.bytes_from_browsers += stream.bytes_received
                streams = self._streams.get(key)
                if streams is not None:
                    streams.discard(stream)
                    if not streams:
                        del self._streams[key]
            if pc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pc.close(), 5.0)
                self._pcs.discard(pc)
            self.core.channel_closed(action.socket_id, key, opened)

    async def _connect(self, pc: RTCPeerConnection, action: AnswerOffer, sdp: str,
                       offered: list[IPAddress]) -> ChannelStream:
        loop = asyncio.get_running_loop()
        channel_ready: asyncio.Future[ChannelStream | None] = loop.create_future()
        label = "browser:" + action.key[0].encode("latin-1").hex()

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel_ready.done():
                channel.close()  # WebTorrent opens one channel; refuse extras
            else:  # the stream's listeners go on now: the browser's first message may be right behind
                channel_ready.set_result(ChannelStream(pc, channel, label))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and not channel_ready.done():
                channel_ready.set_result(None)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (OfferError, ConnectionError):
            raise
        except Exception as e:  # aiortc's SDP parser raises whatever it meets; it is still bad input
            raise OfferError(f"{type(e).__name__}: {e}") from None
        chosen = answer_address(pc.localDescription.sdp, offered, self.allow)
        answer, kept = filter_candidates(pc.localDescription.sdp, lambda ip: ip == chosen)
        if kept == 0:
            raise ConnectionError("no local address is allowed for ICE")
        await self._send(action.socket_id, self.core.answer(action.key, action.offer.offer_id, answer))
        stream = await channel_ready
        if stream is None:
            raise ConnectionError(f"ICE/DTLS {pc.connectionState}")
        return stream

    async def _join(self, key: ChannelKey, stream: ChannelStream, left: float) -> None:
        info_hash = key[1].encode("latin-1")
        t = self.node.get(info_hash)
        if t is None and info_hash in self._adopting:
            with contextlib.suppress(asyncio.TimeoutError):
                t = await asyncio.wait_for(asyncio.shield(self._adopting[info_hash]), ADOPT_TIMEOUT)
        if t is not None:
            if not await self.node.add_peer(t, stream):
                await stream.close()
            return
        if self.connect_remote is not None:
            try:
                remote = await self.connect_remote(info_hash)
            except Exception as e:
                log.info("no remote I2P peer for %s: %s", info_hash.hex()[:12], e)
                remote = None
            if remote is not None:
                self._spawn(splice(stream, remote))
                return
        await stream.close()
