"""A seed and a leech (engine + libtorrent + SAM) under a socket audit: every address must be loopback.

The client runs in a child process under `strace -f` (all threads, libtorrent's included), which records
every connect, bind, sendto and sendmsg. The test then reads each socket address from the trace: IPv4
must be in 127.0.0.0/8, IPv6 must be ::1; only local families (unix, netlink) may appear besides.
Run as a script, this file is that child: it moves a small torrent between two destinations over SAM.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2ptorrent.engine import Engine, create_torrent  # noqa: E402
from i2ptorrent.transport.router import ManagedRouter  # noqa: E402
from i2ptorrent.transport.sam import SAMAddress, StreamSession, new_destination  # noqa: E402

from test_engine_support import digest_tree, make_files  # noqa: E402

FAMILY = re.compile(r"sa_family=(AF_[A-Z0-9]+)")
IPV4 = re.compile(r'inet_addr\("([^"]+)"\)')
IPV6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')
LOCAL_FAMILIES = {"AF_UNIX", "AF_LOCAL", "AF_NETLINK"}


def audit(trace: str) -> tuple[list[str], set[str]]:
    """(problems, loopback addresses seen) from an strace log of connect/bind/sendto/sendmsg."""
    problems: list[str] = []
    seen: set[str] = set()
    for line in trace.splitlines():
        fams = FAMILY.findall(line)
        for fam in fams:
            if fam not in LOCAL_FAMILIES | {"AF_INET", "AF_INET6", "AF_UNSPEC"}:
                problems.append(f"socket family {fam}: {line.strip()}")
        for addr in IPV4.findall(line) + IPV6.findall(line):
            ip = ipaddress.ip_address(addr)
            mapped = getattr(ip, "ipv4_mapped", None)
            if (mapped or ip).is_loopback:
                seen.add(addr)
            elif ip.is_unspecified and " bind(" in f" {line}":
                problems.append(f"bind to all interfaces: {line.strip()}")
            elif not ip.is_unspecified:
                problems.append(f"non-loopback address {addr}: {line.strip()}")
            else:
                problems.append(f"unspecified address {addr}: {line.strip()}")
    return problems, seen


def test_audit_flags_foreign_addresses() -> None:
    """The audit itself: it must catch what it is there to catch."""
    trace = "\n".join([
        '12 connect(5, {sa_family=AF_INET, sin_port=htons(7656), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '12 connect(6, {sa_family=AF_INET, sin_port=htons(25401), sin_addr=inet_addr("93.184.216.34")}, 16) = 0',
        '12 sendto(7, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(19302), '
        'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:4860::1", &sin6_addr), sin6_scope_id=0}, 28) = 1',
        '12 bind(8, {sa_family=AF_INET, sin_port=htons(6881), sin_addr=inet_addr("0.0.0.0")}, 16) = 0',
        '12 bind(9, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 0',
    ])
    problems, seen = audit(trace)
    assert seen == {"127.0.0.1"}
    assert len(problems) == 3
    assert any("93.184.216.34" in p for p in problems) and any("2001:4860::1" in p for p in problems)
    assert any("all interfaces" in p for p in problems)


@pytest.mark.timeout(400)
async def test_seed_and_leech_touch_only_loopback(router: ManagedRouter, tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is not installed (apt-get install strace)")
    assert router.sam is not None
    log = tmp_path / "trace.log"
    proc = await asyncio.create_subprocess_exec(
        strace, "-f", "-qq", "-e", "trace=connect,bind,sendto,sendmsg", "-o", str(log),
        sys.executable, __file__, "--sam", f"{router.sam.host}:{router.sam.port}",
        "--options", json.dumps(router.session_options), "--workdir", str(tmp_path / "work"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    finally:
        if proc.returncode is None:  # the group is strace and the client it started
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "TRANSFER OK" in text
    problems, seen = audit(log.read_text())
    assert not problems, "\n".join(problems[:20])
    assert router.sam.host in seen  # the audit did see the SAM connections


# -- the audited client ---------------------------------------------------------------------------


async def run_client(sam: SAMAddress, options: dict[str, str], work: Path) -> None:
    src = work / "src"
    make_files(src, {"share/a.bin": 3_000_000, "share/b/c.bin": 1_000_000}, seed=5)
    torrent = create_torrent(src / "share", piece_size=65536)
    dests = await asyncio.gather(new_destination(sam), new_destination(sam))
    s_seed, s_leech = await asyncio.gather(*(StreamSession.create(sam, d, options) for d in dests))
    seed = Engine(work / "seed-state", own_addresses=[s_seed.b32])
    leech = Engine(work / "leech-state", dial=lambda b32: s_leech.connect(b32, timeout=60),
                   own_addresses=[s_leech.b32])

    async def accept() -> None:
        while True:
            stream = await s_seed.accept()
            asyncio.ensure_future(seed.handle_incoming(stream))

    acceptor = asyncio.ensure_future(accept())
    try:
        await seed.start()
        await leech.start()
        await seed.add(torrent, src)
        t = await leech.add(torrent, work / "dl")
        t.add_candidates([s_seed.b32])
        await asyncio.wait_for(t.wait_complete(), 240)
        assert digest_tree(work / "dl" / "share") == digest_tree(src / "share")
        print("TRANSFER OK", flush=True)
    finally:
        acceptor.cancel()
        await leech.close()
        await seed.close()
        await s_seed.close()
        await s_leech.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--sam", required=True)
    p.add_argument("--options", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    host, port = a.sam.rsplit(":", 1)
    asyncio.run(run_client(SAMAddress(host, int(port)), json.loads(a.options), Path(a.workdir)))
