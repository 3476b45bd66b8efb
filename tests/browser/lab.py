"""A private network namespace with Chromium in it, for the bridge tests and benchmark.

ICE (Chromium's and aioice's) ignores loopback, so a browser and the bridge need a real interface. Rather
than use the machine's own, a thread of the test process unshares a new network namespace of its own
(only that thread and the processes it starts are in it), adds a veth pair with a private address, and
runs an asyncio loop there (the veth has 198.18.77.1, from the benchmarking range that the project's
network rule allows inside namespaces a test creates). Everything that must meet the browser (the bridge, a private i2pd, the
engines, the page server, Chromium) lives on that loop. Nothing can leave: the namespace holds only lo
and the veth pair. When the thread ends and its children are killed, the namespace disappears.
Needs root (CAP_SYS_ADMIN for unshare).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from i2ptorrent.bridge import Bridge
from i2ptorrent.client import Client, ClientConfig
from i2ptorrent.engine import Engine
from i2ptorrent.transport.router import ManagedRouter
from i2ptorrent.transport.sam import StreamSession, new_destination

HERE = Path(__file__).resolve().parent
PAGE_DIR = HERE / "page"
WEBTORRENT_JS = HERE / "node_modules" / "webtorrent" / "dist" / "webtorrent.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CLONE_NEWNET = 0x40000000
VETH_ADDRESS = "198.18.77.1"
NS_SETUP = [
    ["ip", "link", "set", "lo", "up"],
    ["ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"],
    ["ip", "addr", "add", f"{VETH_ADDRESS}/24", "dev", "veth0"],
    ["ip", "link", "set", "veth0", "up"],
    ["ip", "link", "set", "veth1", "up"],
    ["ip", "route", "add", "default", "dev", "veth0"],  # gives Chromium a normal host candidate
]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]

T = TypeVar("T")


def missing_requirements() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if not os.path.exists(CHROMIUM):
        return "chromium is not installed (run scripts/setup-browser.sh)"
    if not WEBTORRENT_JS.exists():
        return "the webtorrent bundle is not installed (run scripts/setup-browser.sh)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


class NetnsLoop:
    """An asyncio loop on a thread inside a fresh network namespace (lo + veth0 VETH_ADDRESS/24 + veth1)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="netns-loop", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 20.0) -> "NetnsLoop":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("network namespace thread did not start")
        if self._error is not None:
            raise RuntimeError(f"cannot set up the network namespace: {self._error}")
        return self

    def _main(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
            for cmd in NS_SETUP:
                subprocess.run(cmd, check=True, capture_output=True, timeout=10)
            self.loop = asyncio.new_event_loop()
        except BaseException as e:  # reported to start()
            self._error = e
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run a coroutine on the namespace's loop and wait for it (cancelled after `timeout`)."""
        assert self.loop is not None
        fut = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop)
        try:
            return fut.result(timeout + 15)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


class Chromium:
    """Debian's Chromium, headless, in its own process group with its own HOME and TMPDIR."""

    def __init__(self, url: str, *, mdns_hides_addresses: bool = False) -> None:
        self.url = url
        # Stock Chrome names its host candidates with mDNS (.local); the tests turn that off by default
        # and can turn it back on to check the bridge connects without ever resolving those names.
        self.flags = [f for f in CHROMIUM_FLAGS
                      if not (mdns_hides_addresses and f == "--disable-features=WebRtcHideLocalIpsWithMdns")]
        self.dir = Path(tempfile.mkdtemp(prefix="i2pt-chromium-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Chromium":
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir / "home"),
               "TMPDIR": str(self.dir / "tmp"), "LANG": "C.UTF-8"}
        for sub in ("home", "tmp", "profile"):
            (self.dir / sub).mkdir()
        log = open(self.dir / "chromium.log", "wb")
        try:
            self.process = subprocess.Popen(
                [CHROMIUM, *self.flags, f"--user-data-dir={self.dir / 'profile'}", self.url],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            log.close()
        return self

    def log_tail(self, n: int = 3000) -> str:
        try:
            return (self.dir / "chromium.log").read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the whole process group (Chromium's helpers included), then remove its folders."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc is not None:
            try:  # helpers that outlived the leader still hold the group id
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PageServer:
    """Serves the test page and the webtorrent bundle on the namespace's loopback; collects results."""

    MAX_RESULT = 64 * 1024 * 1024

    def __init__(self) -> None:
        self.file = b""
        self.logs: list[str] = []
        self._results: dict[str, asyncio.Future[bytes]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _future(self, kind: str) -> asyncio.Future[bytes]:
        fut = self._results.get(kind)
        if fut is None:
            fut = self._results[kind] = asyncio.get_running_loop().create_future()
        return fut

    def reset(self) -> None:
        for fut in self._results.values():
            fut.cancel()
        self._results.clear()
        self.logs.clear()

    async def result(self, kind: str) -> bytes:
        """What the page posted to /result/<kind>; an error the page posted fails it instead."""
        want, error = self._future(kind), self._future("error")
        done, _ = await asyncio.wait({want, error}, return_when=asyncio.FIRST_COMPLETED)
        if want in done:
            return want.result()
        raise AssertionError(f"the page reported an error: {error.result().decode(errors='replace')}")

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, host: str = "127.0.0.1", **query: str) -> str:
        """The page's URL; another `host` (e.g. 'localhost') makes it a page at another origin."""
        from urllib.parse import urlencode
        return f"http://{host}:{self.port}/index.html?{urlencode(query)}"

    async def start(self) -> None:
        app = web.Application(client_max_size=self.MAX_RESULT)
        app.router.add_get("/index.html", _static(PAGE_DIR / "index.html", "text/html"))
        app.router.add_get("/app.js", _static(PAGE_DIR / "app.js", "text/javascript"))
        app.router.add_get("/webtorrent.min.js", _static(WEBTORRENT_JS, "text/javascript"))
        app.router.add_get("/file", self._file)
        app.router.add_post("/result/{kind}", self._result)
        app.router.add_post("/log", self._log)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=self.file)

    async def _result(self, request: web.Request) -> web.Response:
        fut = self._future(request.match_info["kind"])
        data = await request.read()
        if not fut.done():
            fut.set_result(data)
        return web.Response(text="ok")

    async def _log(self, request: web.Request) -> web.Response:
        if len(self.logs) < 1000:
            self.logs.append((await request.text())[:2000])
        return web.Response(text="ok")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _static(path: Path, content_type: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=path.read_bytes(), content_type=content_type)
    return handler


class I2PWorld:
    """Router, named I2P identities (an engine each, accepting on I2P), a bridge on the last, page server.

    The last identity is a Client, as in `i2ptorrent bridge`: the bridge uses its public API. Start and close
    it on a NetnsLoop. Engines dial .b32 candidates through their own session.
    """

    def __init__(self, tmp: Path, names: tuple[str, ...]) -> None:
        self.tmp = tmp
        self.names = names
        self.router = ManagedRouter()
        self.sessions: list[StreamSession] = []
        self.engines: list[Engine] = []
        self.client: Client
        self.tasks: list[asyncio.Task[None]] = []
        self.page = PageServer()
        self.chromes: list[Chromium] = []
        self.bridge: Bridge

    async def start(self) -> None:
        sam = await self.router.start()
        opts = self.router.session_options
        dests = await asyncio.gather(*(new_destination(sam) for _ in self.names))
        # created together: i2pd makes every new session wait 20 s, so several cost the same as one
        self.sessions = list(await asyncio.gather(*(StreamSession.create(sam, d, opts) for d in dests)))
        for session, name in zip(self.sessions[:-1], self.names[:-1]):
            await self._engine(session, name)
        self.client = Client(ClientConfig(data_dir=self.tmp / self.names[-1] / "state", sam=sam,
                                          session_options=opts, connect_timeout=30), session=self.sessions[-1])
        await self.client.start()
        assert self.client.engine is not None
        self.engines.append(self.client.engine)
        self.bridge = Bridge(self.client, adopt_dir=self.tmp / "adopted")
        await self.bridge.start()
        await self.page.start()

    async def _engine(self, session: StreamSession, name: str) -> Engine:
        async def dial(b32: str) -> Any:
            return await session.connect(b32, timeout=30)

        engine = Engine(self.tmp / name / "state", dial=dial, own_addresses=[session.b32])
        await engine.start()
        self.engines.append(engine)
        self.tasks.append(asyncio.get_running_loop().create_task(self._accept(session, engine)))
        return engine

    @staticmethod
    async def _accept(session: StreamSession, engine: Engine) -> None:
        while True:
            stream = await session.accept()
            asyncio.get_running_loop().create_task(engine.handle_incoming(stream))

    @property
    def chromium_version(self) -> str:
        try:
            return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    def browser(self, **query: str) -> Chromium:
        chrome = Chromium(self.page.url(tracker=self.bridge.announce_url, **query)).start()
        self.chromes.append(chrome)
        return chrome

    def stop_browsers(self) -> None:
        for chrome in self.chromes:
            chrome.stop()
        self.chromes.clear()

    async def close(self) -> None:
        self.stop_browsers()
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.bridge.close()
        await self.page.close()
        with contextlib.suppress(Exception):
            await self.client.close()
        for engine in self.engines[:-1]:
            with contextlib.suppress(Exception):
                await engine.close(save_resume=False)
        for session in self.sessions:
            with contextlib.suppress(Exception):
                await session.close()
        await self.router.stop()
