"""A private router never outlives the process that started it, even one killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

pytestmark = pytest.mark.router

OWNER = """
import asyncio
from i2ptorrent.transport.router import ManagedRouter

async def main():
    r = ManagedRouter()
    await r.start()
    print(r.process.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split(") ", 1)[1][0] != "Z"


async def test_router_stops_when_its_owner_is_killed() -> None:
    owner = await asyncio.create_subprocess_exec(sys.executable, "-c", OWNER, stdout=asyncio.subprocess.PIPE)
    router_pid = 0
    try:
        assert owner.stdout is not None
        router_pid = int(await asyncio.wait_for(owner.stdout.readline(), 60))
        assert alive(router_pid)
        owner.kill()
        await owner.wait()
        for _ in range(200):  # i2pd's orderly SIGTERM shutdown takes a moment
            if not alive(router_pid):
                break
            await asyncio.sleep(0.1)
        assert not alive(router_pid), "the private i2pd outlived the process that started it"
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()
        if router_pid and alive(router_pid):
            os.kill(router_pid, signal.SIGKILL)
