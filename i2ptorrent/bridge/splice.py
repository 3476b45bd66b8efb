"""Join two ByteStreams end to end (a browser's channel to a remote I2P peer's stream).

Each direction copies with the writer's backpressure, so memory stays at one read per direction. When
either side ends or fails, both are closed: a half-open splice would hold a channel slot forever.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..transport.stream import ByteStream

READ_SIZE = 64 * 1024


async def _copy(src: ByteStream, dst: ByteStream, counter: list[int]) -> None:
    while True:
        data = await src.read(READ_SIZE)
        if not data:
            return
        await dst.write(data)
        counter[0] += len(data)


async def splice(a: ByteStream, b: ByteStream) -> tuple[int, int]:
    """Copy a->b and b->a until one side ends; close both. Returns bytes moved (a->b, b->a)."""
    ab, ba = [0], [0]
    tasks = [asyncio.ensure_future(_copy(a, b, ab)), asyncio.ensure_future(_copy(b, a, ba))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for s in (a, b):
            with contextlib.suppress(Exception):
                await s.close()
    return ab[0], ba[0]
