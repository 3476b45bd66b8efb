"""Shared fixtures: one real private i2pd per test session, and a pool of SAM sessions on it.

A SAM session takes 20 s to become ready on i2pd 2.45 whatever else happens, and sessions created together
are ready together, so tests ask the pool for all the named sessions they need in one call and share them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from i2ptorrent.transport.router import ManagedRouter
from i2ptorrent.transport.sam import DatagramSession, Destination, StreamSession, new_destination


class SessionPool:
    """Named SAM sessions shared by the whole test session; created concurrently, closed at the end."""

    def __init__(self, router: ManagedRouter) -> None:
        self.router = router
        self._streams: dict[str, StreamSession] = {}
        self._datagrams: dict[str, DatagramSession] = {}
        self._lock = asyncio.Lock()

    async def _new(self, name: str, kind: str) -> StreamSession | DatagramSession:
        assert self.router.sam is not None
        dest: Destination = await new_destination(self.router.sam)
        opts = self.router.session_options
        if kind == "STREAM":
            return await StreamSession.create(self.router.sam, dest, opts)
        return await DatagramSession.create(self.router.sam, dest, opts, style=kind)

    async def streams(self, *names: str) -> list[StreamSession]:
        """Stream sessions by name (new names are created together, ~20 s once)."""
        async with self._lock:
            missing = [n for n in dict.fromkeys(names) if n not in self._streams]
            made = await asyncio.gather(*(self._new(n, "STREAM") for n in missing))
            self._streams.update(zip(missing, made))  # type: ignore[arg-type]
        return [self._streams[n] for n in names]

    async def datagrams(self, *names: str, style: str = "DATAGRAM") -> list[DatagramSession]:
        async with self._lock:
            keys = [f"{style}:{n}" for n in names]
            missing = [k for k in dict.fromkeys(keys) if k not in self._datagrams]
            made = await asyncio.gather(*(self._new(k, style) for k in missing))
            self._datagrams.update(zip(missing, made))  # type: ignore[arg-type]
        return [self._datagrams[k] for k in keys]

    async def close(self) -> None:
        for s in [*self._streams.values(), *self._datagrams.values()]:
            await s.close()


@pytest_asyncio.fixture(scope="session")
async def router() -> AsyncIterator[ManagedRouter]:
    """A private, loopback-only i2pd (0-hop tunnels), stopped by PID at the end even on failure."""
    r = ManagedRouter()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest_asyncio.fixture(scope="session")
async def sam_pool(router: ManagedRouter) -> AsyncIterator[SessionPool]:
    pool = SessionPool(router)
    try:
        yield pool
    finally:
        await pool.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the router get the `router` marker, so `-m 'not router'` runs the offline ones."""
    for item in items:
        if {"router", "sam_pool"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.router)
