"""The one timed wait of long-lived loops (supervisor.wait_at_most), offline: what the router tests cannot pin."""

from __future__ import annotations

import asyncio
import time

import pytest

from i2ptorrent.supervisor import wait_at_most


async def test_wait_at_most_ends_at_done_or_after_the_delay() -> None:
    done = asyncio.Event()
    start = time.monotonic()
    assert await wait_at_most(done.wait(), 0.2) is False
    assert time.monotonic() - start >= 0.19
    asyncio.get_running_loop().call_later(0.05, done.set)
    assert await asyncio.wait_for(wait_at_most(done.wait(), 3600), 5) is True


async def test_a_loop_cancelled_as_its_download_completes_stops() -> None:
    """The Client's close often comes right after `wait_complete()` returned, in the same loop turn as the
    announce loop's own wake-up: that cancellation must end the loop (with asyncio.wait_for on Python 3.11
    it was swallowed and the loop went on into its next interval, and the Client's close hung)."""
    complete = asyncio.Event()

    async def announce_loop() -> None:
        while True:
            await wait_at_most(complete.wait(), 3600)
            # here the real loop announces `completed`
            await asyncio.sleep(3600)  # the tracker's interval

    loop = asyncio.ensure_future(announce_loop())
    user = asyncio.ensure_future(complete.wait())  # what a caller awaits: Torrent.wait_complete()
    await asyncio.sleep(0)
    complete.set()
    await user
    loop.cancel()  # Client.close, before the loop had its turn
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 5)
