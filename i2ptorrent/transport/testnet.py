"""A private I2P network in a box: N i2pd routers, each in a network namespace of its own, joined by a
userspace hub that gives every router-to-router link a one-way delay, jitter and loss.

Real users have 3-hop tunnels and round trips of seconds; one private 0-hop router (router.py) has 3 ms.
This builds the former on one machine (see shared/notes/i2p-testnet.md for what was measured):
- namespaces `<prefix><pid>r<i>`, each with lo and a TUN `tn0` at 198.18.0.<10+i>/15: the only
  addresses the routers know, and the hub forwards only between them, so nothing leaves the box;
- the kernel has no netem: the hub process (testnet_hub.py) owns the TUNs and delays/drops each packet;
- i2pd: NTCP2 on 198.18.0.x:12000, SSU2 off, no reseed, a private netid, transit on, 2 floodfills,
  `reservedrange = false` (else 198.18/15 peers are refused); every router.info is copied into every other
  router's netDb before the real start, so no reseed is ever needed;
- SAM on 127.0.0.1:7656 inside each namespace. A client reaches it from a thread that entered the
  namespace (`Testnet.run(i, coro)` runs a coroutine on that router's namespace loop), or as a process
  started with `ip netns exec` (`Testnet.exec_args(i)`).
Everything is owned by PID and removed on close(), at exit and on SIGTERM. Needs root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from i2ptorrent.transport.router import _LOG_NOISE, I2PD_ENV, NETWORK_OPTIONS, RouterError, i2pd_executable
from i2ptorrent.transport.sam import SAMAddress, SAMError, _connect_hello
from i2ptorrent.transport.testnet_hub import setns

log = logging.getLogger(__name__)

T = TypeVar("T")
TUN = "tn0"
NTCP2_PORT = 12000
SAM_PORT = 7656
NETID = 99
SUBNET = "198.18.0.0/15"
DEFAULT_PREFIX = "i2pt"


def router_address(index: int) -> str:
    return f"198.18.0.{10 + index}"


def session_options(hops: int, quantity: int = 3) -> dict[str, str]:
    """SESSION CREATE options for a client on a testnet router: the product's network profile, with the
    tunnel length set. Clients must sit on non-floodfill routers (i2pd 2.45 fails local LeaseSet2 lookups
    on a floodfill)."""
    opts = dict(NETWORK_OPTIONS)
    opts.update({"inbound.length": str(hops), "outbound.length": str(hops),
                 "inbound.quantity": str(quantity), "outbound.quantity": str(quantity)})
    return opts


def parse_delay(text: str) -> float:
    """'50ms', '0.05s', '0.05' or '0' -> seconds."""
    t = text.strip().lower()
    if t.endswith("ms"):
        return float(t[:-2]) / 1000
    if t.endswith("s"):
        return float(t[:-1])
    return float(t)


def router_config(datadir: Path, address: str, floodfill: bool, loglevel: str = "info") -> str:
    off = "\n".join(f"[{s}]\nenabled = false" for s in
                    ("http", "httpproxy", "socksproxy", "bob", "i2cp", "i2pcontrol", "upnp", "nettime"))
    # No `defaulturl =` line: an empty one made every router abort ~3 min after start (notes/i2p-testnet.md).
    return f"""\
log = file
logfile = {datadir}/i2pd.log
loglevel = {loglevel}
host = {address}
address4 = {address}
nat = false
ipv4 = true
ipv6 = false
port = {NTCP2_PORT}
netid = {NETID}
notransit = false
floodfill = {str(floodfill).lower()}
bandwidth = X
reservedrange = false
[ntcp2]
enabled = true
published = true
port = {NTCP2_PORT}
[ssu2]
enabled = false
[addressbook]
enabled = true
subscriptions =
[reseed]
verify = false
urls =
yggurls =
file =
zipfile =
threshold = 0
[sam]
enabled = true
address = 127.0.0.1
port = {SAM_PORT}
singlethread = false
{off}
[precomputation]
elgamal = false
{EXPLORATORY}"""


EXPLORATORY = """\
[exploratory]
inbound.length = 1
outbound.length = 3
"""
"""Exploratory tunnels that make a new session's outbound tunnels finish before its inbound ones. i2pd
2.45 drops each lease set publication tried while a session has no outbound tunnel, with no retry until
an inbound tunnel is replaced ~10 minutes later (i2pd issue 1072): when all of a new session's inbound
tunnels were built first, nobody could find it (the tracker, CANT_REACH_PEER for minutes). A new
session's first tunnels are built through the router's exploratory ones: an inbound build's request goes
out through an exploratory outbound tunnel, an outbound build's reply comes back through an exploratory
inbound one. With i2pd's default 2 and 2 hops both take the same number of links (a coin toss per tunnel);
with 3 out and 1 in, an outbound build takes two links fewer than an inbound one."""


def router_info_name(info: bytes) -> str:
    """netDb file name of a router.info: routerInfo-<I2P base64 of SHA-256(RouterIdentity)>.dat, where the
    identity is the first 387 + certificate length bytes."""
    if len(info) < 387:
        raise RouterError("router.info too short")
    certlen = int.from_bytes(info[385:387], "big")
    digest = hashlib.sha256(info[:387 + certlen]).digest()
    b64 = base64.b64encode(digest).decode().replace("+", "-").replace("/", "~")
    return f"r{b64[0]}/routerInfo-{b64}.dat"


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RouterError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")


class NamespaceLoop:
    """An asyncio loop on a thread that entered a network namespace: sockets it opens (and threads and
    processes it starts) live in that namespace, so a Client on it reaches that router's SAM on 127.0.0.1."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name=f"netns-{netns}", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> "NamespaceLoop":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RouterError(f"cannot enter namespace {self.netns}: {self._error}")
        return self

    def _main(self) -> None:
        try:
            setns(f"/run/netns/{self.netns}")
            self.loop = asyncio.new_event_loop()
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(20)


@dataclass
class TestnetRouter:
    """One i2pd of the testnet, in its own namespace, owned by PID."""

    index: int
    netns: str
    datadir: Path
    floodfill: bool
    executable: str = "i2pd"
    """Set by Testnet.start from i2pd_executable() ($I2PTORRENT_I2PD or the system i2pd)."""
    process: subprocess.Popen[bytes] | None = None
    log_start: int = 0
    """Size of i2pd.log when this process was started: what it logged since is after that offset."""
    killed: bool = False
    """Killed on purpose (Testnet.kill): not reported as a death."""
    ns_loop: NamespaceLoop | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return router_address(self.index)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def spawn(self) -> None:
        d = self.datadir
        with contextlib.suppress(OSError):
            self.log_start = (d / "i2pd.log").stat().st_size
        args = ["ip", "netns", "exec", self.netns, self.executable, f"--datadir={d}",
                f"--conf={d}/i2pd.conf", f"--tunconf={d}/tunnels.conf", f"--tunnelsdir={d}/tunnels.d",
                f"--certsdir={d}/certificates", f"--pidfile={d}/i2pd.pid"]
        # `ip netns exec` execs i2pd in place: the PID we hold is the router's.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=open(d / "stderr.log", "ab"), start_new_session=True)
        self.killed = False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def died(self) -> bool:
        """Ended on its own (not stopped or killed by us)."""
        return self.process is not None and self.process.poll() is not None and not self.killed

    def exit_report(self, lines: int = 20) -> str:
        """How the router ended and the end of its logs (the same shape as ManagedRouter.exit_report)."""
        code = self.process.returncode if self.process is not None else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"testnet router {self.index} ({self.netns}): {how}\n{self.log_tail(lines)}"

    def log_tail(self, lines: int = 20) -> str:
        """The end of the router's logs without the lines a private router prints all the time."""
        parts = []
        for name in ("stderr.log", "i2pd.log"):
            with contextlib.suppress(OSError):
                text = (self.datadir / name).read_text(errors="replace").strip()
                kept = [ln for ln in text.splitlines() if not any(n in ln for n in _LOG_NOISE)]
                if kept:
                    parts.append(f"{name}:\n" + "\n".join(kept[-lines:]))
        return "\n".join(parts)

    def stop_sync(self, grace: float = 5.0) -> None:
        """SIGTERM, wait, SIGKILL (i2pd 2.45 hangs on SIGTERM while SAM sessions are open)."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


@dataclass
class TestnetConfig:
    routers: int = 8
    floodfills: int = 2
    delay: float = 0.05
    """One-way delay per router-to-router link, seconds."""
    jitter: float = 0.0
    loss: float = 0.0
    prefix: str = DEFAULT_PREFIX
    """Namespaces are named <prefix><pid>r<i>: parallel runs never collide."""
    loglevel: str = "info"
    """i2pd's log level: at least `info`, which says when each tunnel is built (start() waits for the
    exploratory ones) and when a floodfill stores a lease set ("NetDb: LeaseSet2 updated: <b32>")."""


_live: list["Testnet"] = []
_exit_hooks_installed = False


def _close_all_at_exit() -> None:
    for net in list(_live):
        net.close_sync()


def _on_sigterm(signum: int, frame: object) -> None:
    _close_all_at_exit()
    raise SystemExit(128 + signum)


def _install_exit_hooks() -> None:
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    atexit.register(_close_all_at_exit)
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


def missing_requirements() -> str | None:
    """Why a testnet cannot run here, or None."""
    if os.geteuid() != 0:
        return "the testnet needs root (network namespaces and TUN devices)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if not os.environ.get(I2PD_ENV) and shutil.which("i2pd") is None:
        return "i2pd is not installed"  # an unusable I2PTORRENT_I2PD is an error at start, not a skip
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    return None


def remove_stale_namespaces(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Delete namespaces `<prefix><pid>r<i>` whose owning process is gone (a run that was SIGKILLed)."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir("/run/netns"):
            if not name.startswith(prefix) or "r" not in name[len(prefix):]:
                continue
            pid = name[len(prefix):].split("r", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(RouterError):
                    _run("ip", "netns", "del", name)
                    removed.append(name)
    return removed


class Testnet:
    """`async with Testnet(TestnetConfig(routers=8, delay=0.05)) as net:` then clients on
    `net.client_routers` through `await net.run(i, coro)`."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, config: TestnetConfig | None = None, workdir: Path | None = None) -> None:
        self.config = config or TestnetConfig()
        if not 2 <= self.config.routers <= 200 or not 1 <= self.config.floodfills < self.config.routers:
            raise ValueError("a testnet needs 2-200 routers and 1..routers-1 floodfills")
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="i2ptorrent-testnet-"))
        base = f"{self.config.prefix}{os.getpid()}"
        self.routers = [TestnetRouter(i, f"{base}r{i}", self.workdir / f"r{i}", i < self.config.floodfills)
                        for i in range(self.config.routers)]
        self.hub: subprocess.Popen[str] | None = None
        self._hub_lock = threading.Lock()
        self._namespaces: list[str] = []
        self._closed = False

    @property
    def client_routers(self) -> list[int]:
        """Routers clients should use: the non-floodfills (see session_options)."""
        return [r.index for r in self.routers if not r.floodfill]

    def sam(self, index: int) -> SAMAddress:
        """The SAM bridge of router `index`, as seen from inside its namespace."""
        return SAMAddress("127.0.0.1", SAM_PORT)

    def exec_args(self, index: int) -> list[str]:
        """Prefix for a command that must run inside router `index`'s namespace."""
        return ["ip", "netns", "exec", self.routers[index].netns]

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self, timeout: float = 60.0) -> "Testnet":
        why = missing_requirements()
        if why:
            raise RouterError(why)
        executable = i2pd_executable()
        for r in self.routers:
            r.executable = executable
        _install_exit_hooks()
        _live.append(self)
        try:
            await asyncio.to_thread(self._build)
            # first start: each router makes its identity and router.info, then stops
            for r in self.routers:
                r.spawn()
            await asyncio.gather(*(self._wait_router_info(r, timeout) for r in self.routers))
            await asyncio.to_thread(lambda: [r.stop_sync() for r in self.routers])
            self._share_router_infos()
            for r in self.routers:
                r.spawn()
                r.ns_loop = NamespaceLoop(r.netns).start()
            await asyncio.gather(*(self._wait_sam(r, timeout) for r in self.routers))
            await asyncio.gather(*(self._wait_exploratory(r, timeout) for r in self.routers))
        except BaseException:
            await asyncio.to_thread(self.close_sync)
            raise
        log.info("testnet up: %d routers, %.0f ms per link", len(self.routers), self.config.delay * 1000)
        return self

    def _build(self) -> None:
        remove_stale_namespaces(self.config.prefix)
        for r in self.routers:
            _run("ip", "netns", "add", r.netns)
            self._namespaces.append(r.netns)
            n = ["ip", "-n", r.netns]
            _run(*n, "link", "set", "lo", "up")
            _run(*n, "tuntap", "add", "dev", TUN, "mode", "tun")
            _run(*n, "addr", "add", f"{r.address}/15", "dev", TUN)
            _run(*n, "link", "set", TUN, "up")
            for sub in ("tunnels.d", "certificates", "netDb"):
                (r.datadir / sub).mkdir(parents=True, exist_ok=True)
            conf = router_config(r.datadir, r.address, r.floodfill, self.config.loglevel)
            (r.datadir / "i2pd.conf").write_text(conf)
            (r.datadir / "tunnels.conf").write_text("")
        cfg = {"tun": TUN, "nodes": [[r.netns, r.address] for r in self.routers],
               "delay": self.config.delay, "jitter": self.config.jitter, "loss": self.config.loss}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
        self.hub = subprocess.Popen([sys.executable, "-m", "i2ptorrent.transport.testnet_hub", json.dumps(cfg)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                    start_new_session=True)
        assert self.hub.stdout is not None
        first = self.hub.stdout.readline()
        if not first or not json.loads(first).get("ready"):
            raise RouterError(f"the testnet hub did not start (exit code {self.hub.poll()})")

    async def _wait_router_info(self, r: TestnetRouter, timeout: float) -> None:
        path = r.datadir / "router.info"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (path.exists() and path.stat().st_size >= 387 and (r.datadir / "router.keys").exists()):
            if not r.alive():
                raise RouterError(f"i2pd exited at its first start: {r.exit_report()}")
            if loop.time() > deadline:
                raise RouterError(f"router {r.index} wrote no router.info within {timeout:.0f} s")
            await asyncio.sleep(0.1)

    def _share_router_infos(self) -> None:
        infos = [(r.datadir / "router.info").read_bytes() for r in self.routers]
        for r in self.routers:
            for j, info in enumerate(infos):
                if j == r.index:
                    continue
                dest = r.datadir / "netDb" / router_info_name(info)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(info)

    async def _wait_sam(self, r: TestnetRouter, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not r.alive():
                raise RouterError(f"i2pd exited at start: {r.exit_report()}")
            try:
                await self.run(r.index, self._hello(), timeout=5)
                return
            except (SAMError, OSError, asyncio.TimeoutError):
                if loop.time() > deadline:
                    raise RouterError(f"router {r.index} did not answer SAM within {timeout:.0f} s") from None
                await asyncio.sleep(0.1)

    async def _wait_exploratory(self, r: TestnetRouter, timeout: float) -> None:
        """Wait until the router has built an inbound and an outbound (exploratory) tunnel, as a user's
        long-running router has. A session made before that cannot build outbound tunnels (their build
        replies need an inbound tunnel) until its own inbound ones exist, so its lease set is never
        published (see EXPLORATORY): the session-wide tracker, made at once, was unreachable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        log_path = r.datadir / "i2pd.log"
        while True:
            with contextlib.suppress(OSError):
                text = log_path.read_bytes()[r.log_start:]
                if b"Inbound tunnel" in text and b"Outbound tunnel" in text:
                    return
            if not r.alive():
                raise RouterError(f"i2pd exited at start: {r.exit_report()}")
            if loop.time() > deadline:
                raise RouterError(f"router {r.index} built no exploratory tunnels within {timeout:.0f} s "
                                  "(or its log level is below info)")
            await asyncio.sleep(0.2)

    @staticmethod
    async def _hello() -> None:
        _, writer = await _connect_hello(SAMAddress("127.0.0.1", SAM_PORT))
        writer.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        """Stop every router by PID, the hub, the namespace loops; delete the namespaces and files."""
        if self._closed:
            return
        self._closed = True
        threads = [threading.Thread(target=r.stop_sync) for r in self.routers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in self.routers:
            if r.ns_loop is not None:
                r.ns_loop.stop()
        if self.hub is not None and self.hub.poll() is None:
            self.hub.kill()
            self.hub.wait()
        for name in self._namespaces:
            with contextlib.suppress(RouterError, subprocess.TimeoutExpired):
                _run("ip", "netns", "del", name)
        self._namespaces.clear()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _live.remove(self)

    async def __aenter__(self) -> "Testnet":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- using it -------------------------------------------------------------------------------

    async def run(self, index: int, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on router `index`'s namespace loop (where its SAM is 127.0.0.1:7656) and await it."""
        ns_loop = self.routers[index].ns_loop
        if ns_loop is None:
            coro.close()
            raise RouterError("the testnet is not started")
        if timeout is not None:
            coro = asyncio.wait_for(coro, timeout)
        return await asyncio.wrap_future(ns_loop.submit(coro))

    def set_links(self, delay: float, jitter: float = 0.0, loss: float = 0.0) -> None:
        """Change every link's one-way delay, jitter and loss (in effect for the next packet)."""
        reply = self._hub_call({"op": "links", "delay": delay, "jitter": jitter, "loss": loss})
        if not reply.get("ok"):
            raise RouterError(f"hub refused the link settings: {reply.get('error')}")
        self.config.delay, self.config.jitter, self.config.loss = delay, jitter, loss

    def traffic(self) -> dict[int, int]:
        """Bytes each router has sent through the hub so far."""
        reply = self._hub_call({"op": "stats"})
        return {int(k): v for k, v in reply.get("sent", {}).items()}

    def _hub_call(self, msg: dict) -> dict:
        hub = self.hub
        if hub is None or hub.poll() is not None or hub.stdin is None or hub.stdout is None:
            raise RouterError("the testnet hub is not running")
        with self._hub_lock:
            hub.stdin.write(json.dumps(msg) + "\n")
            hub.stdin.flush()
            line = hub.stdout.readline()
        if not line:
            raise RouterError("the testnet hub exited")
        return json.loads(line)

    def kill(self, index: int) -> None:
        """Kill router `index` at once (a transit router dying under the clients); not reported as dead."""
        r = self.routers[index]
        r.killed = True
        if r.alive():
            assert r.process is not None
            r.process.kill()
            r.process.wait()

    async def restart(self, index: int, timeout: float = 60.0) -> None:
        """Start a stopped or killed router again under the same identity."""
        r = self.routers[index]
        if r.alive():
            return
        r.spawn()
        await self._wait_sam(r, timeout)

    def published(self, b32: str) -> bool:
        """Whether a floodfill has stored the lease set of `b32` since its router started (its log at
        info says so): what another router's lookup of it would find."""
        name = re.escape(b32.removesuffix(".b32.i2p").encode())
        stored = re.compile(rb"NetDb: LeaseSet2? (?:added|updated): " + name)
        for r in self.routers:
            if r.floodfill:
                with contextlib.suppress(OSError):
                    if stored.search((r.datadir / "i2pd.log").read_bytes()[r.log_start:]):
                        return True
        return False

    async def wait_published(self, b32s: list[str], timeout: float) -> list[str]:
        """Wait until the lease sets of all `b32s` are stored on a floodfill; returns those that are not
        after `timeout` s. i2pd 2.45 leaves a new session unpublished for ~10 minutes when its inbound
        tunnels are built before its first outbound one (see EXPLORATORY): only a new session helps."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            missing = [b for b in b32s if not self.published(b)]
            if not missing or loop.time() > deadline:
                return missing
            await asyncio.sleep(0.5)

    def dead(self) -> list[TestnetRouter]:
        """Routers that ended on their own (crashed): a fixture reports them with exit_report()."""
        hub_dead = self.hub is not None and self.hub.poll() is not None and not self._closed
        if hub_dead:
            raise RouterError(f"the testnet hub died (exit code {self.hub.returncode})")  # type: ignore[union-attr]
        return [r for r in self.routers if r.died()]
