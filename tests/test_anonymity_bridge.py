"""`i2ptorrent bridge` under a socket audit while a real Chromium downloads through it from an I2P peer.

In a network namespace the test creates (tests/browser/lab.py): a private i2pd, a seeder reachable only
over I2P, the page server and Chromium, none of them traced; and the bridge itself, the real command, run
under `strace -f` (every thread) recording connect, bind, sendto and sendmsg. The bridge fetches the file
over I2P from the seeder while the browser downloads it from the bridge; the bytes are compared. Then
every address in the trace must be loopback, except the browser-facing ICE, which may use only the
browser's own address in this namespace. An audit that saw no SAM traffic, or no ICE toward the browser,
fails: it would not have watched the path it is there to watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from audit import audit  # noqa: E402
from lab import VETH_ADDRESS, Chromium, NetnsLoop, PageServer, missing_requirements  # noqa: E402

from i2ptorrent.engine import Engine, create_torrent  # noqa: E402
from i2ptorrent.transport.router import ManagedRouter  # noqa: E402
from i2ptorrent.transport.sam import StreamSession, new_destination  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.router, pytest.mark.timeout(360)]

ROOT = Path(__file__).resolve().parent.parent
SIZE = 1024 * 1024 + 321


def test_audit_allows_only_loopback_and_the_named_address() -> None:
    """The parser itself: it must catch what it is there to catch."""
    trace = "\n".join([
        '12 connect(5, {sa_family=AF_INET, sin_port=htons(7656), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '13 sendto(7, "x", 1, 0, {sa_family=AF_INET, sin_port=htons(5000), sin_addr=inet_addr("198.18.77.1")}, 16) = 1',
        '13 bind(8, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("198.18.77.1")}, 16) = 0',
        '14 connect(6, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("93.184.216.34")}, 16) = -1',
        '14 sendmsg(9, {msg_name={sa_family=AF_INET6, sin6_port=htons(19302), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2001:4860::1", &sin6_addr), sin6_scope_id=0}, msg_namelen=28}, 0) = 1',
        '14 bind(10, {sa_family=AF_INET, sin_port=htons(6881), sin_addr=inet_addr("0.0.0.0")}, 16) = 0',
        '14 bind(11, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 0',
        '14 bind(12, {sa_family=AF_PACKET, sll_protocol=htons(ETH_P_ALL)}, 20) = 0',
    ])
    problems, uses = audit(trace, allowed=frozenset({"198.18.77.1"}))
    assert [(u.call, u.address, u.port) for u in uses][:3] == [
        ("connect", "127.0.0.1", 7656), ("sendto", "198.18.77.1", 5000), ("bind", "198.18.77.1", 0)]
    assert len(problems) == 4, problems
    assert any("93.184.216.34" in p for p in problems) and any("2001:4860::1" in p for p in problems)
    assert any("all interfaces" in p for p in problems) and any("AF_PACKET" in p for p in problems)
    assert audit(trace)[0] != problems  # without the exception, the namespace address is a problem too


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


async def _ready(proc: asyncio.subprocess.Process, log: list[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        log.append(line.decode(errors="replace"))
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "ready":
                return event  # type: ignore[no-any-return]
    raise AssertionError(f"the bridge ended before it was ready: {''.join(log)[-2000:]}")


async def _scenario(tmp: Path, strace: str) -> dict[str, Any]:
    data = random.Random(12).randbytes(SIZE)
    router = ManagedRouter()
    page = PageServer()
    seeder: Engine | None = None
    session: StreamSession | None = None
    proc: asyncio.subprocess.Process | None = None
    chrome: Chromium | None = None
    accept: asyncio.Task[None] | None = None
    stderr = tmp / "bridge.stderr"
    try:
        sam = await router.start()
        (tmp / "seed").mkdir()
        (tmp / "seed" / "audited.bin").write_bytes(data)
        seeder = Engine(tmp / "seeder")
        await seeder.start()
        t = await seeder.add(create_torrent(tmp / "seed" / "audited.bin", piece_size=65536), tmp / "seed")
        dest = await new_destination(sam)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
               "XDG_CONFIG_HOME": str(tmp / "cfg"), "I2PTORRENT_DATA_DIR": str(tmp / "bridge-data"),
               "I2PTORRENT_SAM": f"{sam.host}:{sam.port}", "I2PTORRENT_PROFILE": "local"}
        with open(stderr, "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                strace, "-f", "-qq", "-e", "trace=connect,bind,sendto,sendmsg", "-o", str(tmp / "trace.log"),
                sys.executable, "-m", "i2ptorrent", "bridge", "--json", "-v", "-o", str(tmp / "bridge-dl"),
                t.magnet(peers=[dest.b32]), env=env, stdout=asyncio.subprocess.PIPE, stderr=err,
                start_new_session=True)
        # the seeder's session is created while the bridge creates its own: i2pd makes each wait 20 s
        session = await StreamSession.create(sam, dest, router.session_options)
        accept = asyncio.ensure_future(_accept(session, seeder))
        out: list[str] = []
        ready = await asyncio.wait_for(_ready(proc, out), 120)
        await page.start()
        chrome = Chromium(page.url(mode="download", magnet=t.magnet(), tracker=ready["announce"])).start()
        try:
            got = await asyncio.wait_for(page.result("download"), 150)
        except BaseException:
            print("page log:", *page.logs[-30:], chrome.log_tail(1500), stderr.read_text()[-3000:], sep="\n")
            raise
        for child in _children(proc.pid):  # the bridge itself, not strace: it stops as on Ctrl-C
            os.kill(child, signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
        out.append(rest.decode(errors="replace"))
        return {"got": got, "data": data, "rc": proc.returncode, "out": "".join(out), "sam": sam,
                "announce": ready["announce"], "trace": (tmp / "trace.log").read_text(),
                "stderr": stderr.read_text(errors="replace")}
    finally:
        if chrome is not None:
            chrome.stop()
        if proc is not None and proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        if accept is not None:
            accept.cancel()
        await page.close()
        if seeder is not None:
            await seeder.close(save_resume=False)
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
        await router.stop()


async def _accept(session: StreamSession, engine: Engine) -> None:
    while True:
        stream = await session.accept()
        asyncio.ensure_future(engine.handle_incoming(stream))


def test_bridge_touches_only_loopback_and_the_browser() -> None:
    skip = missing_requirements()
    if skip:
        pytest.skip(skip)
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is not installed (apt-get install strace)")
    lab = NetnsLoop().start()
    tmpdir = tempfile.TemporaryDirectory(prefix="i2pt-audit-bridge-")
    try:
        r = lab.run(_scenario(Path(tmpdir.name), strace), timeout=300)
    finally:
        lab.stop()
        tmpdir.cleanup()
    assert hashlib.sha256(r["got"]).digest() == hashlib.sha256(r["data"]).digest()
    assert r["rc"] == 0, r["stderr"][-3000:]
    assert "bridge stopping" in r["stderr"]
    problems, uses = audit(r["trace"], allowed=frozenset({VETH_ADDRESS}))
    assert not problems, "\n".join(problems[:20])
    sam = r["sam"]
    assert any(u.call == "connect" and u.address == sam.host and u.port == sam.port for u in uses), \
        "the audit saw no SAM connection"
    assert any(u.call in ("sendto", "sendmsg") and u.address == VETH_ADDRESS for u in uses), \
        "the audit saw no ICE toward the browser"
    assert str(r["announce"]).startswith("ws://127.0.0.1:")
