"""The accept loop keeps serving after failed accepts and stops when its session closes."""

import asyncio

from i2ptorrent.transport.accepting import accept_forever, backoff
from i2ptorrent.transport.sam_protocol import SAMError, SAMProtocolError


def test_backoff_doubles_to_a_cap() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff(50) == 30.0


async def test_failed_accepts_do_not_end_the_loop() -> None:
    state = {"closed": False}
    script: list[object] = [SAMProtocolError("malformed SAM reply: 'T733...'"), OSError("refused"), "s1", "s2"]
    handled: list[object] = []

    async def accept() -> object:
        item = script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    async def handle(stream: object) -> None:
        handled.append(stream)
        if not script:
            state["closed"] = True

    await asyncio.wait_for(accept_forever(accept, handle, lambda: state["closed"]), 10)  # type: ignore[arg-type]
    assert handled == ["s1", "s2"]


async def test_a_closed_session_ends_the_loop_without_retrying() -> None:
    calls = 0
    state = {"closed": False}

    async def accept() -> object:
        nonlocal calls
        calls += 1
        state["closed"] = True
        raise SAMError("SAM session closed", "CLOSED")

    async def handle(stream: object) -> None:
        raise AssertionError("nothing was accepted")

    await asyncio.wait_for(accept_forever(accept, handle, lambda: state["closed"]), 10)  # type: ignore[arg-type]
    assert calls == 1
