"""Socket audits: run a command under `strace -f` and check every address it connected, bound or sent to.

What counts as staying on the machine (`Audit.check()`, the rule every anonymity test shares):
- IPv4 in 127.0.0.0/8, IPv6 ::1 (or ::ffff:127.x.y.z): loopback, never a bind to all interfaces;
- AF_UNIX (local sockets: the daemon's control socket) and AF_NETLINK (the kernel: libtorrent and
  i2pd watch interface changes; nothing leaves the machine);
- AF_UNSPEC in connect() (it dissolves a datagram socket's association);
- an address the test names (`allowed`: the browser's address in the test's own namespace, for the bridge).
Anything else is in `non_loopback`: another address (a failed call counts too: it was an attempt),
0.0.0.0 or ::, or another family (AF_PACKET, ...). An audit that saw no SAM traffic proves nothing, so
check() also wants a SAM connection: each starts by sending `HELLO VERSION`, which strace shows.

    audit = await run_traced([sys.executable, "-m", "i2ptorrent", "demo"], tmp_path / "trace.log")
    audit.check()
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

SYSCALLS = "connect,bind,sendto,sendmsg,sendmmsg"
LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\(")
FAMILY = re.compile(r"sa_family=(AF_[A-Z0-9]+)")
IPV4 = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
IPV6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')
LOCAL_FAMILIES = {"AF_UNIX", "AF_LOCAL", "AF_NETLINK", "AF_UNSPEC"}
SAM_HELLO = re.compile(r'\bsend(?:to|msg)\(\d+, (?:[^"]*iov_base=)?"HELLO VERSION')


@dataclass(frozen=True, slots=True)
class Use:
    """One IP socket address in one traced call."""

    pid: int
    call: str  # connect | bind | sendto | sendmsg | sendmmsg
    address: str
    port: int


@dataclass
class Audit:
    non_loopback: list[str] = field(default_factory=list)
    """Each offending trace line, with why."""
    uses: list[Use] = field(default_factory=list)
    """Every IP address use, allowed or not."""
    sam_connects: int = 0
    """SAM connections opened (HELLO VERSION sent)."""
    returncode: int | None = None
    output: str = ""
    """The traced command's stdout and stderr."""

    @property
    def loopback(self) -> set[str]:
        return {u.address for u in self.uses if _is_loopback(u.address)}

    def check(self) -> None:
        assert self.sam_connects > 0, "the audit saw no SAM traffic: it traced nothing that matters"
        assert not self.non_loopback, "\n".join(self.non_loopback[:20])


def _is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def parse(trace: str, allowed: frozenset[str] = frozenset()) -> Audit:
    """An Audit of an strace log of SYSCALLS."""
    audit = Audit()
    for line in trace.splitlines():
        m = LINE.match(line)
        if m is None:
            continue  # "<... resumed>": the addresses were on the call's first line
        pid, call = int(m[1]), m[2]
        if SAM_HELLO.search(line):
            audit.sam_connects += 1
        for fam in FAMILY.findall(line):
            if fam not in LOCAL_FAMILIES | {"AF_INET", "AF_INET6"}:
                audit.non_loopback.append(f"socket family {fam}: {line.strip()}")
        for port, addr in IPV4.findall(line) + IPV6.findall(line):
            audit.uses.append(Use(pid, call, addr, int(port)))
            if _is_loopback(addr) or addr in allowed:
                continue
            if ipaddress.ip_address(addr).is_unspecified:
                audit.non_loopback.append(f"{call} to all interfaces / unspecified address: {line.strip()}")
            else:
                audit.non_loopback.append(f"non-loopback address {addr}: {line.strip()}")
    return audit


def audit(trace: str, allowed: frozenset[str] = frozenset()) -> tuple[list[str], list[Use]]:
    """(problems, every IP address use) of an strace log: `parse` for callers that want the pair."""
    a = parse(trace, allowed)
    return a.non_loopback, a.uses


class Traced:
    """A command running under strace (it and every process and thread it starts)."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, allowed: frozenset[str]) -> None:
        self.proc = proc
        self.log = log
        self.allowed = allowed

    @classmethod
    async def start(cls, cmd: Sequence[str], log: Path, env: dict[str, str] | None = None,
                    allowed: frozenset[str] = frozenset()) -> "Traced":
        strace = shutil.which("strace")
        assert strace is not None, "strace is not installed (apt-get install strace; scripts/setup.sh --test)"
        proc = await asyncio.create_subprocess_exec(
            strace, "-f", "-qq", "-e", f"trace={SYSCALLS}", "-o", str(log), *cmd, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        return cls(proc, log, allowed)

    async def finish(self, timeout: float) -> Audit:
        """Wait for the command to end (killed, with strace, after `timeout`), then audit its trace."""
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), timeout)
        finally:
            self.kill()
            await self.proc.wait()
        result = parse(self.log.read_text(), self.allowed)
        result.returncode, result.output = self.proc.returncode, (out or b"").decode(errors="replace")
        return result

    def kill(self) -> None:
        """The process group is strace and everything it traces."""
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


async def run_traced(cmd: Sequence[str], log: Path, env: dict[str, str] | None = None,
                     timeout: float = 300.0, allowed: frozenset[str] = frozenset()) -> Audit:
    return await (await Traced.start(cmd, log, env, allowed)).finish(timeout)
