"""The tracker's asyncio/aiohttp adapter: sockets in, TrackerCore calls, frames out.

Routes: /announce (WebSocket upgrade or classic HTTP GET), /scrape, /stats.json and / (a small status
page). A connection whose first request is a WebSocket upgrade is served by `_TrackerProtocol` itself
(frames go from data_received into the core); every other connection is handed to aiohttp. Every request's identity comes from the transport: `serve_stream` is handed streams that SAM
accepted, with the caller's destination; plain TCP serving (tests, benchmarks) labels callers by their
loopback address, or, only when `identity_header` is set explicitly for tests, by a header.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import socket
import time
from typing import TYPE_CHECKING, Callable, Mapping

from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from ..loopback import is_loopback
from ..transport.stream import ByteStream
from .access import AccessList
from .classic import failure as classic_failure
from .core import STORE_UNAVAILABLE, TrackerCore
from .identity import PeerIdentity
from .limits import TrackerLimits
from .websocket import MAX_HANDSHAKE, OP_TEXT, Closed, Message, Upgrade, WebSocketError, WebSocketServer
from .websocket import accept_upgrade, frame_header

if TYPE_CHECKING:
    from .shared import SwarmStore

log = logging.getLogger(__name__)

SLOW_PEER_BUFFER = 256 * 1024  # a WebSocket with this much unsent is not reading: drop it
SWEEP_INTERVAL = 15.0
FIRST_REQUEST_TIMEOUT = 60.0  # an accepted stream must carry a request by then


class TrackerServer:
    """Serves one TrackerCore over HTTP/WebSocket. Start with `start_tcp` and/or feed `serve_stream`.

    With a `store`, the swarms and the access list are shared with other instances through it (the
    core then has no `access` of its own: the store's allowlist is the one)."""

    def __init__(self, core: TrackerCore | None = None, *, access: AccessList | None = None,
                 limits: TrackerLimits | None = None, identity_header: str | None = None,
                 clock: Callable[[], float] = time.monotonic, store: "SwarmStore | None" = None) -> None:
        self.access = access
        self.store = store
        if core is None and store is not None:
            core = TrackerCore(limits, store.access, instance=store.instance)
        self.core = core or TrackerCore(limits, access)
        self.identity_header = identity_header
        self.clock = clock
        self._ids = itertools.count(1)
        self._transports: dict[int, asyncio.Transport] = {}  # open WebSockets by connection id
        self._pending: dict[int, bytearray] = {}
        self._flush_scheduled = False
        self._stream_identity: dict[asyncio.BaseTransport, PeerIdentity] = {}
        self._stream_used: set[asyncio.BaseTransport] = set()
        self.first_request_timeout = FIRST_REQUEST_TIMEOUT
        self._runner: web.AppRunner | None = None
        self._listeners: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.app = self._make_app()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the aiohttp runner (needed before `serve_stream`); idempotent."""
        if self._runner is None:
            if self.store is not None:
                await self.store.start(self)  # the swarms as the other instances have them, first
            self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
            await self._runner.setup()
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on loopback (tests, benchmarks, the demo); returns the port."""
        if not is_loopback(host):
            raise ValueError("the tracker listens on loopback only")
        await self.start()
        listener = await asyncio.get_running_loop().create_server(
            lambda: _TrackerProtocol(self), host, port, backlog=4096)
        self._listeners.append(listener)
        return listener.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()  # first: our peers keep their place for the other instances
        if self._sweeper is not None:
            self._sweeper.cancel()
        for listener in self._listeners:
            listener.close()
        for conn_id in list(self._transports):
            self._drop(conn_id)  # no close handshake: thousands of peers must not delay a stop
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- streams from SAM ------------------------------------------------------------------------

    async def serve_stream(self, stream: ByteStream, identity: PeerIdentity) -> None:
        """Serve HTTP/WebSocket on one accepted stream whose caller the transport identified.

        asyncio protocols only speak to transports, so the stream is spliced to one end of a
        socketpair that we serve; the identity is bound to that transport before the first byte.
        """
        await self.start()
        assert self._runner is not None and self._runner.server is not None
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(lambda: _TrackerProtocol(self), theirs)
        self._stream_identity[transport] = identity
        splice = asyncio.ensure_future(_splice(stream, ours, loop))
        try:
            await asyncio.wait((splice,), timeout=self.first_request_timeout)
            if not splice.done() and transport not in self._stream_used:
                splice.cancel()  # a caller that sends no request in time holds no stream
            await splice
        except asyncio.CancelledError:
            splice.cancel()
            if not splice.done():
                raise
        finally:
            self._stream_identity.pop(transport, None)
            self._stream_used.discard(transport)
            ours.close()
            transport.close()
            await stream.close()

    # -- identity --------------------------------------------------------------------------------

    def identity_of(self, request: web.Request) -> PeerIdentity:
        return self._identity(request.transport, request.headers, websocket=False)

    def _identity(self, transport: asyncio.BaseTransport | None, headers: Mapping[str, str],
                  websocket: bool) -> PeerIdentity:
        if transport is not None:
            ident = self._stream_identity.get(transport)
            if ident is not None:
                self._stream_used.add(transport)
                return ident
        if self.identity_header is not None:
            name = headers.get(self.identity_header) or headers.get(self.identity_header.lower())
            if name:
                return PeerIdentity(name.strip().lower())
        # Plain TCP (tests, benchmarks): a WebSocket is one peer per connection; classic HTTP requests
        # come on fresh connections, so they are told apart by host only. Never I2P identities.
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer:
            return PeerIdentity("loopback:?")
        return PeerIdentity(f"loopback:{peer[0]}:{peer[1]}" if websocket else f"loopback:{peer[0]}")

    # -- the app ---------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.core.limits.max_message_size)
        app.router.add_get("/announce", self._announce)
        app.router.add_get("/scrape", self._scrape)
        app.router.add_get("/stats.json", self._stats_json)
        app.router.add_get("/", self._status_page)
        app.router.add_get("/stats", self._status_page)
        return app

    async def _announce(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            # Upgrades are taken by _TrackerProtocol when they open a connection; not mid-keep-alive.
            return web.Response(status=400, text="a WebSocket upgrade must be a connection's first request")
        ident = self.identity_of(request)
        query = request.rel_url.raw_query_string
        if self.store is not None and not self.core.is_allowed(ident):
            invite = request.rel_url.query.get("invite")
            if invite:  # spent in the shared store before the core looks at the announce
                try:
                    await self.store.spend(invite[:128], ident.name)
                except Exception as err:  # Redis away: refuse this time, the invite stays unspent
                    log.warning("Redis: could not check an invite: %s", err)
                    return web.Response(body=classic_failure(STORE_UNAVAILABLE), content_type="text/plain")
        body = self.core.http_announce(ident, query, self.clock())
        self._after_core()
        return web.Response(body=body, content_type="text/plain")

    async def _scrape(self, request: web.Request) -> web.Response:
        ident = self.identity_of(request)
        body = self.core.http_scrape(ident, request.rel_url.raw_query_string, self.clock())
        return web.Response(body=body, content_type="text/plain")

    # -- WebSockets (served by _TrackerProtocol, not aiohttp) ------------------------------------

    def _open_websocket(self, proto: "_TrackerProtocol", upgrade: Upgrade) -> bool:
        transport = proto.transport
        assert transport is not None
        ident = self._identity(transport, upgrade.headers, websocket=True)
        query = parse_qs(urlsplit(upgrade.path).query)
        invite = query.get("invite", [None])[0]
        conn_id = next(self._ids)
        if not self.core.connect(conn_id, ident, self.clock(), invite=invite[:128] if invite else None):
            transport.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            transport.close()
            return False
        transport.write(upgrade.reply)
        proto.ws = WebSocketServer(self.core.limits.max_message_size)
        proto.conn_id = conn_id
        self._transports[conn_id] = transport  # type: ignore[assignment]
        return True

    def _websocket_data(self, proto: "_TrackerProtocol", data: bytes) -> None:
        ws, transport, conn_id = proto.ws, proto.transport, proto.conn_id
        assert ws is not None and transport is not None
        try:
            events = ws.receive(data)
        except WebSocketError as err:
            log.debug("dropping WebSocket %d: %s", conn_id, err)
            self._drop(conn_id)
            return
        control = ws.data_to_send()  # pongs, the reply to a close
        if control:
            transport.write(control)
        for event in events:
            if isinstance(event, Message):
                out = self.core.ws_message(conn_id, event.data, self.clock())
                if out:
                    self._dispatch(out)
            elif isinstance(event, Closed):
                transport.close()
                break
        self._after_core()

    def _websocket_closed(self, conn_id: int) -> None:
        self._transports.pop(conn_id, None)
        self.core.disconnect(conn_id)
        self._after_core()

    def _after_core(self) -> None:
        """Hand what the core left for other instances to the store (shared mode)."""
        if self.store is not None and (self.core.changes or self.core.outbox):
            self.store.wake()

    def send(self, out: list[tuple[int, bytes]]) -> None:
        """Frames for our connections that came from elsewhere (another instance, the store)."""
        self._dispatch(out)
        self._after_core()

    def core_redeemed(self, conn_id: int, ok: bool | None) -> None:
        self.send(self.core.redeemed(conn_id, ok, self.clock()))

    def access_changed(self) -> None:
        """The allowlist changed: close what it no longer admits."""
        for conn_id in self.core.enforce_access():
            self._drop(conn_id)

    def _dispatch(self, out: list[tuple[int, bytes]]) -> None:
        """Queue frames per socket; one write per socket per loop iteration (a syscall per frame
        is what bounds a tracker's rate). A socket that stopped reading is dropped, not waited on."""
        pending = self._pending
        for conn_id, data in out:
            if conn_id not in self._transports:
                continue
            buf = pending.get(conn_id)
            if buf is None:
                buf = pending[conn_id] = bytearray()
            buf += frame_header(OP_TEXT, len(data))
            buf += data
        if pending and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        for conn_id, buf in pending.items():
            transport = self._transports.get(conn_id)
            if transport is None or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > SLOW_PEER_BUFFER:
                self._drop(conn_id)
                continue
            transport.write(buf)

    def _drop(self, conn_id: int) -> None:
        self.core.disconnect(conn_id)
        self._after_core()
        transport = self._transports.pop(conn_id, None)
        if transport is not None:
            transport.abort()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                self.sweep()
            except Exception:  # a bad access file must not stop the sweeps
                log.exception("tracker sweep failed")
            if self.store is not None:
                try:
                    await self.store.sweep(self.clock() - self.core.limits.peer_ttl)
                except Exception as err:  # Redis away: the store's own loops report and retry
                    log.debug("shared store sweep failed: %s", err)

    def sweep(self) -> None:
        """Age out state, close idle sockets, and pick up access-list edits made by the CLI."""
        for conn_id in self.core.expire(self.clock()):
            self._drop(conn_id)
        if self.access is not None and self.access.reload():
            for conn_id in self.core.enforce_access():
                self._drop(conn_id)

    # -- statistics ------------------------------------------------------------------------------

    def _may_see_swarms(self, request: web.Request) -> bool:
        return self.core.is_allowed(self.identity_of(request))

    async def _stats_json(self, request: web.Request) -> web.Response:
        if not self._may_see_swarms(request):
            return web.json_response({"failure reason": "access denied: this is a private tracker"},
                                     status=403)
        stats = self.core.stats()
        if self.store is not None:
            stats["instance"] = self.store.instance
            stats["instances"] = self.store.instances
        stats["swarms"] = [{"info_hash": s.info_hash.encode("latin-1").hex(), "complete": s.complete,
                            "incomplete": s.incomplete, "downloaded": s.downloaded}
                           for s in self.core.swarm_stats()[-1000:]]
        return web.json_response(stats)

    async def _status_page(self, request: web.Request) -> web.Response:
        if not self._may_see_swarms(request):
            return web.Response(text="<!doctype html><title>tracker</title><p>Private tracker.</p>",
                                content_type="text/html", status=403)
        stats = self.core.stats()
        rows = "".join(
            f"<tr><td><code>{s.info_hash.encode('latin-1').hex()}</code></td><td>{s.complete}</td>"
            f"<td>{s.incomplete}</td><td>{s.downloaded}</td></tr>"
            for s in self.core.swarm_stats()[-500:])
        page = (
            "<!doctype html><meta charset=utf-8><title>i2ptorrent tracker</title>"
            "<h1>i2ptorrent tracker</h1>"
            f"<p>{stats['torrents']} swarms, {stats['seeders']} seeders, {stats['leechers']} leechers, "
            f"{stats['completed']} completed, {stats['websockets']} WebSocket peers.</p>"
            f"{self._instances_html()}"
            "<table><tr><th>info hash</th><th>seeders</th><th>leechers</th><th>completed</th></tr>"
            f"{rows}</table>")
        return web.Response(text=page, content_type="text/html")

    def _instances_html(self) -> str:
        """With a shared store: the live instances (by their heartbeats), so an operator sees one die."""
        if self.store is None:
            return ""
        items = "".join(
            f"<li><code>{html.escape(name)}</code>{' (this one)' if name == self.store.instance else ''}: "
            f"{html.escape(str(rec.get('websockets', '?')))} WebSocket peers</li>"
            for name, rec in sorted(self.store.instances.items()))
        return f"<p>Instances sharing these swarms, live: {len(self.store.instances)}</p><ul>{items}</ul>"


async def _splice(stream: ByteStream, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    """Copy both ways between a ByteStream and our end of the socketpair until either side ends."""

    async def inbound() -> None:
        while True:
            data = await stream.read(65536)
            if not data:
                break
            await loop.sock_sendall(sock, data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    async def outbound() -> None:
        while True:
            try:
                data = await loop.sock_recv(sock, 65536)
            except OSError:
                break
            if not data:
                break
            await stream.write(data)

    reader = asyncio.ensure_future(inbound())
    writer = asyncio.ensure_future(outbound())
    try:
        await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
        if reader.done():
            # The caller half-closed: let the response finish, bounded in time.
            await asyncio.wait((writer,), timeout=30)
    finally:
        reader.cancel()
        writer.cancel()


class _TrackerProtocol(asyncio.Protocol):
    """One connection: its first request decides. A WebSocket upgrade to /announce is served here,
    frames going straight into the core; anything else is handed, bytes and all, to aiohttp."""

    def __init__(self, server: TrackerServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.ws: WebSocketServer | None = None
        self.conn_id = 0
        self._head = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self.server._websocket_data(self, data)
            return
        assert self.transport is not None
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HANDSHAKE:
                self._refuse(431, "request head too large")
            return
        try:
            upgrade = accept_upgrade(bytes(self._head[:end]))
        except (WebSocketError, UnicodeDecodeError) as err:
            self._refuse(400, str(err))
            return
        if upgrade is None:
            self._to_aiohttp()
            return
        if urlsplit(upgrade.path).path != "/announce":
            self._refuse(404, "WebSocket endpoint is /announce")
            return
        rest = bytes(self._head[end + 4:])
        self._head = bytearray()
        if self.server._open_websocket(self, upgrade) and rest:
            self.server._websocket_data(self, rest)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn_id:
            self.server._websocket_closed(self.conn_id)

    def _to_aiohttp(self) -> None:
        runner = self.server._runner
        assert self.transport is not None and runner is not None and runner.server is not None
        handler = runner.server()
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        data, self._head = bytes(self._head), bytearray()
        handler.data_received(data)

    def _refuse(self, status: int, reason: str) -> None:
        assert self.transport is not None
        body = reason.encode("utf-8", "replace")[:200]
        self.transport.write(f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        self.transport.close()
