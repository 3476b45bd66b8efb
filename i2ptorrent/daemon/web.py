"""The daemon's HTTP face (aiohttp): the Transmission RPC, the web page and /stream on one port.

A thin adapter: access rules are guard.py's, the RPC is rpc_core.py's, the page is static/index.html (one
file, inline JS/CSS, nothing loaded from anywhere else; it drives the daemon through the RPC itself).
Bound: request bodies (a base64 .torrent at most), concurrent RPC requests, and nothing buffered per
stream beyond one piece.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from importlib import resources
from typing import Any

from aiohttp import web

from i2ptorrent.daemon.guard import SESSION_HEADER, Guard, host_allowed
from i2ptorrent.daemon.rpc_core import MAX_METAINFO, RpcCore
from i2ptorrent.loopback import is_loopback

log = logging.getLogger(__name__)

RPC_PATH = "/transmission/rpc"
DEFAULT_PORT = 9091
MAX_BODY = MAX_METAINFO * 4 // 3 + 64 * 1024  # a base64 .torrent as large as the engine accepts
MAX_CONCURRENT = 16
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; img-src 'self' data:; media-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def page_html() -> bytes:
    return resources.files("i2ptorrent.daemon").joinpath("static/index.html").read_bytes()


class HttpFace:
    """The Transmission RPC at /transmission/rpc, the page at /, streams at /stream/<hash>/<file>."""

    def __init__(self, core: RpcCore, guard: Guard, host: str = "127.0.0.1", port: int | None = None,
                 stream: Any = None) -> None:
        """port None: DEFAULT_PORT, or any free port when another program (a Transmission?) has it."""
        self.core = core
        self.guard = guard
        self.host = host
        self.port = DEFAULT_PORT if port is None else port
        self._fallback = port is None
        self.stream = stream  # stream.StreamServer, or None when streaming is off
        self._runner: web.AppRunner | None = None
        self._busy = asyncio.Semaphore(MAX_CONCURRENT)
        # the page carries the session id: only a page of this origin can read it, as the 409's header
        self._page = page_html().replace(b"{{SESSION_ID}}", guard.session_id.encode())

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stream_url(self, info_hash: str, index: int) -> str:
        return f"{self.base_url}/stream/{info_hash}/{index}?key={self.guard.stream_key}"

    async def start(self) -> dict[str, Any]:
        if not is_loopback(self.host):
            log.warning("the RPC, web page and streams listen on %s, not loopback: anyone who can reach it "
                        "and knows the password (if any) controls this daemon", self.host)
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._protect])
        app.router.add_route("*", RPC_PATH, self._rpc)
        app.router.add_route("*", RPC_PATH + "/", self._rpc)  # transmission-remote 3.x adds the slash
        app.router.add_get("/", self._index)
        app.router.add_get("/stream/{info_hash}/{index}", self._stream)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            if not self._fallback:
                await self._runner.cleanup()
                raise
            log.warning("port %d is taken (%s): the RPC, web page and streams use another port; "
                        "give --rpc-port to choose it", self.port, exc.strerror or exc)
            site = web.TCPSite(self._runner, self.host, 0, reuse_address=True)
            await site.start()
        server = site._server  # noqa: SLF001 - the port actually bound when 0 was asked
        if server is not None and server.sockets:  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return {"rpc": self.base_url + RPC_PATH, "web": self.base_url + "/"}

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- access ----------------------------------------------------------------------------------

    @web.middleware
    async def _protect(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Host check for everything, then basic auth, except for streams: their key is their credential
        (a player given the URL cannot answer a password prompt)."""
        if not host_allowed(request.headers.get("Host")):
            resp: web.StreamResponse = web.Response(status=421, text="Misdirected Request: use 127.0.0.1 or "
                                                    "localhost (protection against DNS rebinding)")
        elif not request.path.startswith("/stream/") and not self.guard.auth_ok(request.headers.get("Authorization")):
            resp = web.Response(status=401, text="Unauthorized",
                                headers={"WWW-Authenticate": 'Basic realm="i2ptorrent"'})
        else:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                resp = web.Response(status=exc.status, text=exc.text or exc.reason)
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        return resp

    # -- handlers --------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def _rpc(self, request: web.Request) -> web.Response:
        if not self.guard.session_ok(request.headers.get(SESSION_HEADER)):
            return web.Response(status=409, text=f"<h1>409: Conflict</h1><p>Send the {SESSION_HEADER} header.</p>",
                                content_type="text/html", headers={SESSION_HEADER: self.guard.session_id})
        if request.method != "POST":
            return web.Response(status=405, text="POST a JSON request", headers={"Allow": "POST"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request too large")
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="request is not JSON")
        async with self._busy:
            reply = await self.core.handle(obj, time.time())
        return web.Response(body=json.dumps(reply).encode(), content_type="application/json",
                            headers={SESSION_HEADER: self.guard.session_id})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if not self.guard.stream_ok(request.query.get("key"), request.headers.get("Sec-Fetch-Site")):
            return web.Response(status=403, text="Forbidden")
        if self.stream is None:
            return web.Response(status=404, text="streaming is off")
        return await self.stream.serve(request)
