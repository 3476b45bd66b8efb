"""Background tasks never fail silently: the failure is logged once, kept for status, and told to its owner."""

from __future__ import annotations

import asyncio
import logging

import pytest

from i2ptorrent.supervisor import Supervisor


async def test_a_failed_task_is_logged_once_and_surfaced(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.supervisor")
    sup = Supervisor(log, max_failures=2)
    told: list[str] = []

    async def crash() -> None:
        raise RuntimeError("announce loop broke")

    async def forever() -> None:
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="test.supervisor"):
        task = sup.spawn(crash(), "http announce abc", told.append)
        running = sup.spawn(forever(), "forever")
        await asyncio.wait([task])  # the supervisor's callback was added first, so it has run
    assert sup.failures[-1] == "http announce abc: RuntimeError: announce loop broke"
    assert told == [sup.failures[-1]]
    records = [r for r in caplog.records if r.name == "test.supervisor"]
    assert len(records) == 1 and records[0].exc_info is not None and "http announce abc" in records[0].getMessage()
    assert len(sup) == 1 and not running.done()

    await asyncio.wait([sup.spawn(crash(), f"crash {i}") for i in range(3)])  # only the newest are kept
    assert [f.split(":")[0] for f in sup.failures] == ["crash 1", "crash 2"]

    await sup.close()  # cancelling is not a failure
    assert running.cancelled() and len(sup) == 0 and len(sup.failures) == 2


async def test_close_is_bounded_when_a_task_ignores_its_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    """A task that lives on after cancel() (asyncio.wait_for on 3.11 can swallow one) is named in the log
    and in failures; close() returns instead of waiting for it forever."""
    sup = Supervisor(logging.getLogger("test.supervisor"))
    cancelled = asyncio.Event()
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
        await release.wait()

    task = sup.spawn(stubborn(), "stubborn loop")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="test.supervisor"):
        await asyncio.wait_for(sup.close(timeout=0.2), 5)
    assert cancelled.is_set() and not task.done()
    assert list(sup.failures) == ["stubborn loop: did not stop when cancelled"]
    assert any("stubborn loop" in r.getMessage() for r in caplog.records)
    release.set()
    await task


async def test_close_does_not_swallow_the_callers_cancellation() -> None:
    """Cancelling whoever is closing (a Ctrl-C while the Client closes) still cancels it."""
    sup = Supervisor(logging.getLogger("test.supervisor"))
    cleaning = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await asyncio.sleep(0.5)

    sup.spawn(slow_cleanup(), "slow cleanup")
    await asyncio.sleep(0)
    closer = asyncio.ensure_future(sup.close())
    await cleaning.wait()
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
