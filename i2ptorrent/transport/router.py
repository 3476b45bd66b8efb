"""A private loopback-only i2pd for `--private-router`, the demo and the tests.

A managed router never touches the clearnet: no reseed, NTCP2 bound to 127.0.0.1, SSU2, UPnP and every other
service off, its own data directory. It is its own floodfill and serves 0-hop tunnels, so clients on this
machine reach each other through real I2P streams and datagrams with no network at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from i2ptorrent.transport.sam import SAMAddress, SAMError, sam_answers

log = logging.getLogger(__name__)

LOCAL_ROUTER_OPTIONS: dict[str, str] = {
    "inbound.length": "0",
    "outbound.length": "0",
    "inbound.quantity": "1",
    "outbound.quantity": "1",
    # i2pd 2.45 fails local lookups of LeaseSet2 ("incorrect number of leases"): use the old lease set.
    "i2cp.leaseSetType": "1",
}
"""SESSION CREATE options for a private 0-hop router (see shared/notes/i2pd-router.md)."""

NETWORK_OPTIONS: dict[str, str] = {
    "inbound.length": "3",
    "outbound.length": "3",
    "inbound.quantity": "3",
    "outbound.quantity": "3",
    "i2cp.leaseSetEncType": "4,0",
}
"""SESSION CREATE options for a router on the real I2P network."""

INSTALL_HINT = "install it with `apt-get install i2pd` (Debian/Ubuntu), or start an I2P router with SAM enabled"

I2PD_ENV = "I2PTORRENT_I2PD"
"""Names another i2pd executable to run instead of the one on PATH: e.g. a wrapper that runs a newer i2pd
with its own loader and libraries beside the system's (docs/INTERFACES.md, "Another i2pd")."""


class RouterError(SAMError):
    """A managed router could not be started, or no router is reachable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, result="NO_ROUTER")


def _free_port(pair: bool = False) -> int:
    """A free loopback TCP port; with pair=True also port-1 free for UDP (i2pd's fixed SAM UDP port)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        if port < 1025:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port - 1))
            with socket.socket() as t:
                t.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RouterError("could not find free loopback ports for a private router")


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the forked child: SIGTERM when the process that started us dies, even by SIGKILL, so a killed
    client or test never leaves its private router running (stop() still handles every orderly end)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def router_config(datadir: Path, ntcp_port: int, sam_port: int) -> str:
    """The i2pd.conf of a private loopback router (every option that could reach out, off). SAM keeps
    i2pd's default `singlethread = true`, what users' routers run: only then does i2pd wait 5 s before it
    deletes a closed session's destination; with `false` it deletes it at once, under streams still
    closing (see transport/linger.py)."""
    off = "\n".join(f"[{s}]\nenabled = false" for s in
                    ("http", "httpproxy", "socksproxy", "bob", "i2cp", "i2pcontrol", "upnp", "nettime"))
    return f"""\
log = file
logfile = {datadir}/i2pd.log
loglevel = warn
host = 127.0.0.1
address4 = 127.0.0.1
nat = false
ipv4 = true
ipv6 = false
port = {ntcp_port}
notransit = true
floodfill = true
[ntcp2]
enabled = true
published = true
port = {ntcp_port}
[ssu2]
enabled = false
[addressbook]
enabled = true
subscriptions =
defaulturl =
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
port = {sam_port}
singlethread = true
{off}
[limits]
transittunnels = 0
[precomputation]
elgamal = false
"""


_LOG_NOISE = ("Duplicate message", "Can't select next hop", "no peers available", "Another remote lease",
              "Another outbound tunnel", "Publish confirmation was not received", "no more floodfills found",
              "No outbound tunnels for DatabaseStore reply")
"""i2pd log lines a private router prints all the time; left out of a dead router's report."""


def i2pd_executable() -> str:
    """The i2pd a managed router or testnet runs: $I2PTORRENT_I2PD when set, else `i2pd` on PATH.

    An override that is not an executable file is an error, never a silent fall back to the system i2pd:
    whoever set it means to test that router."""
    override = os.environ.get(I2PD_ENV)
    if override:
        found = shutil.which(override)
        if found is None:
            raise RouterError(f"{I2PD_ENV}={override} is not an executable file (unset it to run the system i2pd)")
        return found
    found = shutil.which("i2pd")
    if found is None:
        raise RouterError(f"i2pd is not installed: {INSTALL_HINT}")
    return found


class ManagedRouter:
    """A private i2pd that we start, own (by PID) and stop."""

    def __init__(self, datadir: Path | None = None, executable: str | None = None) -> None:
        self.executable = executable
        """None: i2pd_executable() decides at start."""
        self._own_dir = datadir is None
        self.datadir = Path(datadir) if datadir else Path(tempfile.mkdtemp(prefix="i2ptorrent-router-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.sam: SAMAddress | None = None
        self.session_options: dict[str, str] = dict(LOCAL_ROUTER_OPTIONS)
        self._ports: tuple[int, int] | None = None  # (SAM, NTCP): kept, so a restart answers where it did

    @property
    def log_path(self) -> Path:
        return self.datadir / "i2pd.log"

    async def start(self, timeout: float = 30.0) -> SAMAddress:
        if not self.executable:
            self.executable = i2pd_executable()
        d = self.datadir
        for sub in ("tunnels.d", "certificates", "netDb"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        if self._ports is None:
            self._ports = (_free_port(pair=True), _free_port())
        sam_port, ntcp_port = self._ports
        (d / "i2pd.conf").write_text(router_config(d, ntcp_port, sam_port))
        (d / "tunnels.conf").write_text("")
        args = [self.executable, f"--datadir={d}", f"--conf={d}/i2pd.conf", f"--tunconf={d}/tunnels.conf",
                f"--tunnelsdir={d}/tunnels.d", f"--certsdir={d}/certificates", f"--pidfile={d}/i2pd.pid"]
        with open(d / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=stderr, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        sam = SAMAddress("127.0.0.1", sam_port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.process.poll() is not None:
                tail = self._log_tail()
                await self.stop()
                raise RouterError(f"{self.executable} exited at start (code {self.process.returncode}): {tail}")
            if await sam_answers(sam):
                break
            if loop.time() > deadline:
                await self.stop()
                raise RouterError(f"the private i2pd did not answer SAM within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        self.sam = sam
        log.info("private i2pd (pid %d) answers SAM at %s", self.process.pid, sam)
        return sam

    def _log_tail(self) -> str:
        for name in ("stderr.log", "i2pd.log"):
            with contextlib.suppress(OSError):
                text = (self.datadir / name).read_text(errors="replace").strip()
                if text:
                    return text.splitlines()[-1][:300]
        return "no log output"

    def exit_report(self, lines: int = 20) -> str:
        """How the router ended (exit code or signal) and the end of its logs, for a router that died."""
        code = self.process.returncode if self.process is not None else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        parts = [how]
        for name in ("stderr.log", "i2pd.log"):
            with contextlib.suppress(OSError):
                text = (self.datadir / name).read_text(errors="replace").strip()
                kept = [ln for ln in text.splitlines() if not any(n in ln for n in _LOG_NOISE)]
                if kept:
                    parts.append(f"{name}:\n" + "\n".join(kept[-lines:]))
        return "\n".join(parts)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, wait, then SIGKILL. Close SAM sessions first: with sessions open, i2pd 2.45 hangs."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            while proc.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._own_dir:
            shutil.rmtree(self.datadir, ignore_errors=True)

    def kill(self) -> None:
        """Kill at once (tests of a router dying under its clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def restart(self, timeout: float = 30.0) -> SAMAddress:
        """Start again on the same ports and data dir, after `kill()` or a crash (router-loss tests)."""
        self.kill()
        return await self.start(timeout)

    async def __aenter__(self) -> "ManagedRouter":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
