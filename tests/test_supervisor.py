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
