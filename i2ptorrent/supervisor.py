"""Background tasks whose failure is never silent.

Used by every layer that runs tasks (the Client, the announcer, the tracker client, the RTC endpoint);
it imports nothing of the package.

A bare `asyncio.ensure_future` drops a task's exception until the task is garbage collected, so a crashed
announce loop used to stop without a word. Every task the Client runs goes through a Supervisor: a
failure is logged once, with its traceback, and kept (the newest few) for status to show.

It also holds the one way a long-lived loop waits with a timeout (`wait_at_most`), because the obvious
one loses cancellations on the Python we run on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

async def wait_at_most(aw: Awaitable[object], delay: float) -> bool:
    """Wait for `aw` at most `delay` seconds; True when it finished in time.

    `asyncio.timeout`, never `asyncio.wait_for`, in anything a close may cancel: on Python 3.11 wait_for
    swallows a cancellation that arrives just as the awaited thing finishes (CPython issue 86296), and
    the loop around it lives on (an announce loop slept through a Client's close that way)."""
    try:
        async with asyncio.timeout(max(delay, 0.0)):
            await aw
    except TimeoutError:
        return False
    return True


MAX_FAILURES = 20
CLOSE_TIMEOUT = 30.0
"""How long close() waits for cancelled tasks to finish their cleanup."""


class Supervisor:
    """Owns a set of tasks: runs them, reports their failures, and cancels what is left on close."""

    def __init__(self, log: logging.Logger, max_failures: int = MAX_FAILURES) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures: deque[str] = deque(maxlen=max_failures)
        """The newest failures, oldest first, as '<task name>: <exception>'."""

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str,
              on_failure: Callable[[str], None] | None = None) -> asyncio.Task[Any]:
        """Run `coro`; if it raises, log it, record it, and tell `on_failure` (e.g. a torrent's status)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, on_failure))
        return task

    def _done(self, task: asyncio.Task[Any], on_failure: Callable[[str], None] | None) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        message = f"{task.get_name()}: {type(exc).__name__}: {exc}"
        self._log.error("background task %s failed", task.get_name(), exc_info=exc)
        self.failures.append(message)
        if on_failure is not None:
            on_failure(message)

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> list[asyncio.Task[Any]]:
        """Cancel every task now (without waiting); returns them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Cancel every task and wait for them (a task's own cleanup may take a moment), at most `timeout`:
        a task that lives on after its cancellation (one swallowed, as asyncio.wait_for can on Python
        3.11) is logged and recorded by name instead of holding its owner's close forever. Our own
        cancellation is not swallowed."""
        tasks = self.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            self._log.error("background task %s did not stop within %.0f s of its cancellation",
                            task.get_name(), timeout)
            self.failures.append(f"{task.get_name()}: did not stop when cancelled")
