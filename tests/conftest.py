"""Shared fixtures: one real private i2pd per test session, and a pool of SAM sessions on it.

A SAM session takes 20 s to become ready on i2pd 2.45 whatever else happens, and sessions created together
are ready together, so tests ask the pool for all the named sessions they need in one call and share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from i2ptorrent.transport.router import ManagedRouter
from i2ptorrent.transport.sam import DatagramSession, Destination, StreamSession, new_destination
from i2ptorrent.transport.testnet import Testnet, TestnetConfig, missing_requirements


class SessionPool:
    """Named SAM sessions shared by the whole test session; created concurrently, closed at the end.
    A session that closed (its router died and was started again) is made anew on the next request."""

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
        return await DatagramSession.create(self.router.sam, dest, opts)

    async def streams(self, *names: str) -> list[StreamSession]:
        """Stream sessions by name (new names are created together, ~20 s once)."""
        async with self._lock:
            missing = [n for n in dict.fromkeys(names) if n not in self._streams or self._streams[n].closed]
            made = await asyncio.gather(*(self._new(n, "STREAM") for n in missing))
            self._streams.update(zip(missing, made))  # type: ignore[arg-type]
        return [self._streams[n] for n in names]

    async def datagrams(self, *names: str) -> list[DatagramSession]:
        async with self._lock:
            keys = [f"DATAGRAM:{n}" for n in names]
            missing = [k for k in dict.fromkeys(keys) if k not in self._datagrams or self._datagrams[k].closed]
            made = await asyncio.gather(*(self._new(k, "DATAGRAM") for k in missing))
            self._datagrams.update(zip(missing, made))  # type: ignore[arg-type]
        return [self._datagrams[k] for k in keys]

    async def close(self) -> None:
        for s in [*self._streams.values(), *self._datagrams.values()]:
            await s.close()


_watched: list[ManagedRouter] = []
"""Routers the tests started and expect to stay up; checked after every test."""
_shared: list[ManagedRouter] = []
"""The session's router: started again after it dies, since every later test of the session uses it."""


@pytest_asyncio.fixture(scope="session")
async def router() -> AsyncIterator[ManagedRouter]:
    """A private, loopback-only i2pd (0-hop tunnels), stopped by PID at the end even on failure."""
    async with watched_router() as r:
        _shared.append(r)
        try:
            yield r
        finally:
            _shared.remove(r)


@pytest_asyncio.fixture
async def own_router() -> AsyncIterator[ManagedRouter]:
    """A router for one test alone: for tests that stop and restart nodes
    under the same keys, which i2pd 2.45 does not always survive (see docs/INTERFACES.md)."""
    async with watched_router() as r:
        yield r


@contextlib.asynccontextmanager
async def watched_router() -> AsyncIterator[ManagedRouter]:
    r = ManagedRouter()
    await r.start()
    _watched.append(r)
    try:
        yield r
    finally:
        unreported = r in _watched
        if unreported:
            _watched.remove(r)
        died = unreported and r.process is not None and r.process.poll() is not None
        report = r.exit_report() if died else ""
        await r.stop()
    if died:
        pytest.fail(f"i2pd died under the test: {report}", pytrace=False)


@pytest_asyncio.fixture(autouse=True)
async def _routers_outlive_the_test() -> AsyncIterator[None]:
    """Name the test during which a router died, with its exit status and log. The session's router is
    then started again (same ports and keys), so one i2pd crash fails one test, not every later one."""
    yield
    died = [r for r in _watched if r.process is not None and r.process.poll() is not None]
    reports = [r.exit_report() for r in died]
    for r in died:
        _watched.remove(r)  # reported once, here
        if r in _shared:
            await r.restart()
            _watched.append(r)
    if reports:
        pytest.fail("i2pd died during this test: " + "\n".join(reports), pytrace=False)
    for net in _testnets:
        dead = [r for r in net.dead() if r.index not in _reported_dead]
        if dead:
            _reported_dead.update(r.index for r in dead)
            pytest.fail("testnet router died during this test: " + "\n".join(r.exit_report() for r in dead),
                        pytrace=False)


TESTNET_ROUTERS = 8
TESTNET_DELAY = 0.050
_testnets: list[Testnet] = []
_reported_dead: set[int] = set()


@pytest_asyncio.fixture(scope="session")
async def testnet() -> AsyncIterator[Testnet]:
    """A private I2P network of 8 i2pd routers in network namespaces, 50 ms per link (one per pytest
    session; see transport/testnet.py). Stopped by PID and its namespaces removed at the end, even on
    failure."""
    why = missing_requirements()
    if why:
        pytest.skip(why)
    keep = os.environ.get("I2PTORRENT_TESTNET_DIR")  # keep the routers' logs there (debugging)
    net = Testnet(TestnetConfig(routers=TESTNET_ROUTERS, delay=TESTNET_DELAY), workdir=Path(keep) if keep else None)
    await net.start()
    _testnets.append(net)
    try:
        yield net
    finally:
        _testnets.remove(net)
        await net.close()


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
        if {"router", "own_router", "sam_pool"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.router)
        if "testnet" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.testnet)
            # With pytest-xdist (README's test command), every testnet test runs in one worker, which then
            # builds the one network of eight routers that they share.
            item.add_marker(pytest.mark.xdist_group("testnet"))
