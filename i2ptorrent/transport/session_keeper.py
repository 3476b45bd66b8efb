"""Keeping a long-lived SAM session alive across router restarts, in one place.

A SAM session lives exactly as long as its control socket: when the router dies (or sleeps and drops it)
the session is gone for good, and everything built on it (accept loops, dials, announces, WebRTC
signaling) would fail forever against a dead session (qBittorrent issue 19886). The keeper notices the
control socket's EOF at once, says so in one log line and in `status`, re-creates the session under the
same keys with backoff until the router answers, and hands the new session to whoever asks next.

- `ReconnectPolicy`: the sans-I/O part (states, backoff), `now` passed in.
- `SessionKeeper`: the asyncio adapter around any session with `closed`, `error`, `wait_closed()` and
  `close()` (StreamSession, DatagramSession); users call `await keeper.get()` for the current session or
  `on_replaced(callback)` to hear of a new one.
- `KeptStreamSession`: a StreamSession-shaped view of a keeper, so code written for one session (the
  engine's dialer, the RTC endpoint, accept loops, tracker openers) keeps working across replacements.
- `KeptDatagramSession`: the same for the WebRTC datagram carrier's DatagramSession (the DatagramMux's
  endpoint): sends while the router is away are dropped as UDP would drop them (DTLS and SCTP above
  retransmit), `recv` waits through a replacement, so carriers and their connections outlive a restart.
- `reachable`: after a session is created under keys that were in use moments before, i2pd 2.45 can
  leave it unreachable (i2pd issue 2558); a short dial to ourselves from a helper session tells.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from i2ptorrent.transport.sam import (
    DatagramSession,
    Destination,
    SAMAddress,
    SAMError,
    SAMStream,
    StreamSession,
    new_destination,
)

log = logging.getLogger(__name__)

LOST_MESSAGE = "I2P router lost, reconnecting"
PING_INTERVAL = 10.0
PING_TIMEOUT = 5.0
"""A router that hangs (stopped, swapping, deadlocked) keeps our socket open, so no EOF tells: a session
whose router leaves a liveness check (SAM PING, or NAMING LOOKUP on i2pd 2.45) unanswered for 5 s, checked
every 10 s when nothing else happens, is treated as lost: noticed within 15 s."""
PROBE_TIMEOUT = 60.0
"""How long the reachability dial may take: a fresh session's lease set reaches a local router in seconds."""


class KeeperState(enum.Enum):
    STARTING = "starting"
    UP = "up"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass
class ReconnectPolicy:
    """When to try again, and what to tell the user: 1 s doubling to 30 s between attempts, the first at
    once (a router restarted in place answers within seconds; one that is gone should not be hammered)."""

    initial: float = 1.0
    cap: float = 30.0
    state: KeeperState = KeeperState.STARTING
    failures: int = 0
    next_attempt: float = 0.0
    lost_since: float | None = None
    last_error: str | None = None
    replacements: int = 0

    def up(self, now: float) -> None:
        if self.lost_since is not None:
            self.replacements += 1
        self.state = KeeperState.UP
        self.failures = 0
        self.lost_since = None
        self.last_error = None

    def lost(self, now: float, reason: str) -> None:
        """The session closed under us: try again at once."""
        if self.state is KeeperState.CLOSED:
            return
        self.state = KeeperState.RECONNECTING
        self.lost_since = now if self.lost_since is None else self.lost_since
        self.last_error = reason
        self.next_attempt = max(self.next_attempt, now)

    def failed(self, now: float, reason: str) -> None:
        """An attempt to create the session (or to prove it reachable) failed: back off."""
        if self.state is KeeperState.CLOSED:
            return
        self.failures += 1
        self.last_error = reason
        self.next_attempt = now + min(self.cap, self.initial * 2 ** min(self.failures - 1, 16))

    def wait(self, now: float) -> float:
        """Seconds until the next attempt is due."""
        return max(0.0, self.next_attempt - now)

    def close(self) -> None:
        self.state = KeeperState.CLOSED

    def status(self, now: float) -> str | None:
        """One line for `status`/progress while the session is away; None while it is up."""
        if self.state is not KeeperState.RECONNECTING:
            return None
        away = now - (self.lost_since if self.lost_since is not None else now)
        detail = f" ({self.last_error})" if self.last_error else ""
        return f"{LOST_MESSAGE} for {away:.0f} s{detail}"


class KeptSession(Protocol):
    @property
    def closed(self) -> bool: ...

    @property
    def error(self) -> SAMError | None: ...

    async def wait_closed(self) -> None: ...

    async def ping(self, timeout: float) -> None: ...

    async def close(self) -> None: ...


S = TypeVar("S", bound=KeptSession)


class SessionKeeper(Generic[S]):
    """Owns one SAM session and replaces it whenever it closes, until `close()`.

    `create()` makes a new session (under the same keys every time); `probe(session)`, when given, says
    whether a freshly made session is reachable: it runs after every re-creation (and after the first when
    `probe_first`), in the background, and an unreachable session is closed and made again.
    """

    def __init__(self, create: Callable[[], Awaitable[S]], what: str,
                 probe: Callable[[S], Awaitable[bool]] | None = None, *, probe_first: bool = False,
                 policy: ReconnectPolicy | None = None, clock: Callable[[], float] = time.monotonic,
                 ping_interval: float | None = PING_INTERVAL, ping_timeout: float = PING_TIMEOUT) -> None:
        """`ping_interval`: how often to check that the router still answers (None: rely on EOF alone)."""
        self._create = create
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self.what = what
        self._probe = probe
        self._probe_first = probe_first
        self.policy = policy or ReconnectPolicy()
        self._clock = clock
        self._session: S | None = None
        self._ready = asyncio.Event()
        self._callbacks: list[Callable[[S], object]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> KeeperState:
        return self.policy.state

    @property
    def status(self) -> str | None:
        """"I2P router lost, reconnecting for N s (why)" while the session is away, else None."""
        return self.policy.status(self._clock())

    @property
    def closed(self) -> bool:
        return self.policy.state is KeeperState.CLOSED

    @property
    def session(self) -> S | None:
        """The current session (possibly closed, while a replacement is being made)."""
        return self._session

    async def start(self) -> S:
        """Create the first session; its failure is raised (a node that never had a router says so)."""
        session = await self._create()
        self._install(session)
        self._task = asyncio.create_task(self._keep(probe=self._probe is not None and self._probe_first))
        self._task.add_done_callback(self._task_done)
        return session

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the %s keeper stopped: %r", self.what, task.exception())

    def _install(self, session: S) -> None:
        self._session = session
        self.policy.up(self._clock())
        self._ready.set()

    def on_replaced(self, callback: Callable[[S], object]) -> None:
        """Call `callback(new_session)` after every replacement (not for the first session)."""
        self._callbacks.append(callback)

    async def get(self, timeout: float | None = None) -> S:
        """The current open session, waiting (up to `timeout`) while it is being re-created."""
        async with asyncio.timeout(timeout):
            while True:
                if self.closed:
                    raise SAMError(f"the {self.what} session is closed", "CLOSED")
                session = self._session
                if session is not None and not session.closed:
                    return session
                self._ready.clear()  # set again by the replacement (or by close)
                await self._ready.wait()

    async def _keep(self, probe: bool) -> None:
        while True:
            session = self._session
            assert session is not None
            hung: str | None = None
            if probe and not await self._reachable(session):
                await session.close()
            else:
                hung = await self._watch(session)
            if self.closed:
                return
            self._ready.clear()
            reason = hung or (session.error.message if session.error else "session closed")
            self.policy.lost(self._clock(), reason)
            log.warning("%s for the %s session %s: %s", LOST_MESSAGE, self.what, _short(session), reason)
            await self._recreate()
            probe = self._probe is not None

    async def _watch(self, session: S) -> str | None:
        """Wait until the session closes (None) or its router stops answering (then close it and say so)."""
        if self._ping_interval is None:
            await session.wait_closed()
            return None
        while True:
            try:
                async with asyncio.timeout(self._ping_interval):
                    await session.wait_closed()
                    return None
            except TimeoutError:
                pass
            try:
                await session.ping(self._ping_timeout)
            except (SAMError, OSError) as exc:
                if session.closed or self.closed:
                    return None
                await session.close()
                return f"the router did not answer for {self._ping_timeout:.0f} s ({exc})"

    async def _recreate(self) -> None:
        while True:
            await asyncio.sleep(self.policy.wait(self._clock()))
            try:
                session = await self._create()
            except (SAMError, OSError) as exc:
                self.policy.failed(self._clock(), str(exc))
                log.debug("re-creating the %s session failed: %s", self.what, exc)
                continue
            break
        self._install(session)
        log.warning("the %s session is back after %d attempt(s)", self.what, self.policy.replacements)
        for callback in list(self._callbacks):
            try:
                result = callback(session)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("a %s session-replaced handler failed", self.what)

    async def _reachable(self, session: S) -> bool:
        assert self._probe is not None
        try:
            ok = await self._probe(session)
        except (SAMError, OSError) as exc:
            log.info("could not check that the %s session is reachable: %s", self.what, exc)
            return True  # the probe itself failed (its helper session): no reason to drop ours
        if not ok:
            self.policy.failed(self._clock(), "the new session is not reachable")
            log.warning("the %s session %s is not reachable from another session; re-creating it",
                        self.what, _short(session))
        return ok

    async def close(self) -> None:
        self.policy.close()
        self._ready.set()  # wake waiters: they see `closed`
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()


def _short(session: object) -> str:
    b32 = getattr(session, "b32", "")
    return b32[:12] if b32 else ""


PROBE_ANSWER = b"I2PT-REACHABLE\n"
"""What a KeptStreamSession writes to its own probe: i2pd says STREAM STATUS OK as soon as it finds a lease
set (even one of a closed destination), so only an answer from the far side proves reachability."""


async def reachable(session: StreamSession, options: dict[str, str] | None = None,
                    timeout: float = PROBE_TIMEOUT, expect: Callable[[str], object] | None = None) -> bool:
    """Dial `session` from a helper session with a fresh destination (made with the same session
    `options`) and wait for PROBE_ANSWER; `expect(helper_b32)` is called first so that the acceptor knows
    whom to answer. SAMError when the helper session itself cannot be made."""
    helper_dest = await new_destination(session.sam)
    if expect is not None:
        expect(helper_dest.b32)
    helper = await StreamSession.create(session.sam, helper_dest, options)
    try:
        async with asyncio.timeout(timeout):
            stream = await helper.connect(session.destination.public, timeout=timeout)
            try:
                answer = b""
                while len(answer) < len(PROBE_ANSWER):
                    chunk = await stream.read(len(PROBE_ANSWER) - len(answer))
                    if not chunk:
                        break
                    answer += chunk
            finally:
                await stream.close()
        return answer == PROBE_ANSWER
    except TimeoutError:
        return False
    except SAMError as exc:
        if exc.result in ("CANT_REACH_PEER", "PEER_NOT_FOUND", "TIMEOUT"):
            return False
        raise
    finally:
        with contextlib.suppress(Exception):
            await helper.close()


class _KeptView(Generic[S]):
    """What every kept session shows: its identity (the same across replacements) and its keeper's state."""

    keeper: SessionKeeper[S]

    def __init__(self, sam: SAMAddress, destination: Destination) -> None:
        self.sam = sam
        self.destination = destination

    @property
    def b32(self) -> str:
        return self.destination.b32

    @property
    def closed(self) -> bool:
        return self.keeper.closed

    @property
    def status(self) -> str | None:
        return self.keeper.status

    async def close(self) -> None:
        await self.keeper.close()


class KeptStreamSession(_KeptView[StreamSession]):
    """A StreamSession that survives its router: every call goes to the keeper's current session, waiting
    through a reconnect. `closed` is true only once the keeper is closed, so accept loops keep going.
    Our own reachability probes are answered inside `accept` and never reach the caller."""

    def __init__(self, sam: SAMAddress, destination: Destination) -> None:
        super().__init__(sam, destination)
        self._probers: set[str] = set()  # helper .b32s of probes under way

    @classmethod
    async def create(cls, sam: SAMAddress, destination: Destination, options: dict[str, str] | None = None,
                     what: str = "stream", probe_first: bool = False, probe: bool = True) -> "KeptStreamSession":
        """`probe`: check that every re-created session is reachable (`reachable`); `probe_first`: the
        first one too (keys that may have been in use moments before, on this router). Probes are only
        answered while someone calls `accept`."""
        self = cls(sam, destination)

        async def make() -> StreamSession:
            return await StreamSession.create(sam, destination, options)

        async def check(session: StreamSession) -> bool:
            try:
                return await reachable(session, options, expect=self._probers.add)
            finally:
                self._probers.clear()

        self.keeper = SessionKeeper(make, what, check if probe else None, probe_first=probe_first)
        await self.keeper.start()
        return self

    async def connect(self, peer: str, timeout: float = 60.0, retry_interval: float = 1.0) -> SAMStream:
        """Dial on the current session; while the router is away, wait for it within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            session = await self.keeper.get(timeout=max(0.1, deadline - time.monotonic()))
            try:
                return await session.connect(peer, timeout=max(1.0, deadline - time.monotonic()),
                                             retry_interval=retry_interval)
            except SAMError:
                if not session.closed or time.monotonic() >= deadline:
                    raise
                # the session died under the dial: try again on its replacement

    async def accept(self) -> SAMStream:
        """Accept on the current session; a session that dies under the accept is waited out."""
        while True:
            session = await self.keeper.get()
            try:
                stream = await session.accept()
            except SAMError:
                if not session.closed or self.closed:
                    raise
                continue
            if stream.remote not in self._probers:
                return stream
            try:
                async with asyncio.timeout(10):
                    await stream.write(PROBE_ANSWER)
            except (OSError, TimeoutError) as exc:
                log.debug("answering our reachability probe failed: %s", exc)
            finally:
                await stream.close()

    async def lookup(self, name: str) -> str:
        return await (await self.keeper.get(timeout=60.0)).lookup(name)


class KeptDatagramSession(_KeptView[DatagramSession]):
    """A DatagramSession (as DatagramMux uses it) that survives its router, under the same keys.

    The peers' carriers address our destination, which a replacement keeps, so a WebRTC connection over
    datagrams resumes where it stopped once both routers answer again (its SCTP retransmits what was
    dropped meanwhile; the carrier's idle timeout, 90 s, bounds how long an outage it rides out)."""

    def __init__(self, sam: SAMAddress, destination: Destination) -> None:
        super().__init__(sam, destination)
        self.dropped_while_away = 0

    @classmethod
    async def create(cls, sam: SAMAddress, destination: Destination, options: dict[str, str] | None = None,
                     what: str = "datagram") -> "KeptDatagramSession":
        self = cls(sam, destination)

        async def make() -> DatagramSession:
            return await DatagramSession.create(sam, destination, options)

        self.keeper = SessionKeeper(make, what)  # no reachability probe: a stream dial cannot test datagrams
        await self.keeper.start()
        return self

    def _current(self) -> DatagramSession:
        session = self.keeper.session
        assert session is not None  # set by create()
        return session

    def max_payload(self, dest_b64: str) -> int:
        return self._current().max_payload(dest_b64)

    async def send(self, dest_b64: str, payload: bytes) -> None:
        """Send on the current session; while it is away the datagram is dropped (and counted)."""
        session = self._current()
        if self.closed:
            raise SAMError(f"the {self.keeper.what} session is closed", "CLOSED")
        if session.closed:
            self.dropped_while_away += 1
            return
        try:
            await session.send(dest_b64, payload)
        except SAMError:
            if not session.closed or self.closed:
                raise
            self.dropped_while_away += 1

    async def recv(self) -> tuple[str | None, bytes]:
        """The next datagram on whichever session is current, waiting through a reconnect."""
        while True:
            session = await self.keeper.get()
            try:
                return await session.recv()
            except SAMError:
                if not session.closed or self.closed:
                    raise
