"""Which socket addresses a traced process used: strace's connect, bind, sendto and sendmsg, read back.

The anonymity audits run a node under `strace -f -e trace=connect,bind,sendto,sendmsg -o LOG`; every
address in the log must be loopback (127.0.0.0/8, ::1, IPv4-mapped loopback) or one the test names
(`allowed`: the browser's address in the test's own namespace, for the bridge). Only local families
(unix, netlink) may appear besides. A failed call counts too: it was an attempt.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\(")
FAMILY = re.compile(r"sa_family=(AF_[A-Z0-9]+)")
IPV4 = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
IPV6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')
LOCAL_FAMILIES = {"AF_UNIX", "AF_LOCAL", "AF_NETLINK", "AF_UNSPEC"}


@dataclass(frozen=True, slots=True)
class Use:
    """One IP socket address in one traced call."""

    pid: int
    call: str  # connect | bind | sendto | sendmsg
    address: str
    port: int


def audit(trace: str, allowed: frozenset[str] = frozenset()) -> tuple[list[str], list[Use]]:
    """(problems, every IP address use) of an strace log; a problem is any non-local family, any address
    neither loopback nor allowed, and any bind to all interfaces."""
    problems: list[str] = []
    uses: list[Use] = []
    for line in trace.splitlines():
        m = LINE.match(line)
        if m is None:
            continue
        pid, call = int(m[1]), m[2]
        for fam in FAMILY.findall(line):
            if fam not in LOCAL_FAMILIES | {"AF_INET", "AF_INET6"}:
                problems.append(f"socket family {fam}: {line.strip()}")
        for port, addr in IPV4.findall(line) + IPV6.findall(line):
            uses.append(Use(pid, call, addr, int(port)))
            ip = ipaddress.ip_address(addr)
            mapped = getattr(ip, "ipv4_mapped", None)
            if (mapped or ip).is_loopback or addr in allowed:
                continue
            if ip.is_unspecified:
                problems.append(f"{call} to all interfaces / unspecified address: {line.strip()}")
            else:
                problems.append(f"non-loopback address {addr}: {line.strip()}")
    return problems, uses
