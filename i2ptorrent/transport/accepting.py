"""An accept loop that outlives a failed accept.

A router hiccup, a garbled SAM reply or a briefly unreachable bridge must not leave a seeder or a tracker
deaf for the rest of its life: the loop logs, backs off (0.5 s doubling to 30 s) and accepts again. Only a
closed session (or cancellation) ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from i2ptorrent.transport.sam_protocol import SAMError
from i2ptorrent.transport.stream import ByteStream

S = TypeVar("S", bound=ByteStream)

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


def backoff(failures: int, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait after `failures` accepts in a row failed."""
    return min(cap, 0.5 * 2 ** min(failures - 1, 10))


async def accept_forever(accept: Callable[[], Awaitable[S]], handle: Callable[[S], Awaitable[None]],
                         closed: Callable[[], bool], what: str = "accept") -> None:
    """Await `handle` (which should hand the stream off quickly) for every accepted stream until `closed()`
    is true; failed accepts back off and retry."""
    failures = 0
    while not closed():
        try:
            stream = await accept()
        except (SAMError, OSError) as err:
            if closed():
                return
            failures += 1
            log.warning("%s failed (%d in a row), retrying: %s", what, failures, err)
            await asyncio.sleep(backoff(failures))
            continue
        failures = 0
        await handle(stream)
