"""The tracker published as an eepsite: a persistent destination whose SAM accept loop feeds the server.

We accept streams ourselves instead of using an I2P HTTP server tunnel (WebSocket upgrades break
there) or a STREAM FORWARD to a local port (any local process could connect to that port and claim to
be any destination). Each accepted stream carries the caller's destination as SAM reported it, and
that is the only identity the tracker ever uses for the requests on that stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..private_files import private_dir
from ..transport.accepting import accept_forever
from ..transport.sam import SAMAddress, SAMStream, StreamSession, load_or_create_destination
from ..transport.session_keeper import KeptStreamSession
from ..transport.stream import ByteStream
from .access import FILE_NAME as ACCESS_FILE, AccessList
from .identity import PeerIdentity
from .limits import TrackerLimits
from .server import TrackerServer

if TYPE_CHECKING:
    from .shared import SwarmStore

log = logging.getLogger(__name__)

KEY_FILE = "tracker.key"
ACCEPTORS = 2  # accept loops; StreamSession keeps one STREAM ACCEPT pending (i2pd 2.45), the other
#               loop is ready the moment a stream is handed over
MAX_STREAMS = 4096  # served at once; more are closed at once (the caller retries later)


class TrackerEepsite:
    """Serves `server` on every stream `session` accepts, until closed."""

    def __init__(self, server: TrackerServer, session: StreamSession | KeptStreamSession, *,
                 acceptors: int = ACCEPTORS,
                 max_streams: int = MAX_STREAMS, close_session: bool = False) -> None:
        self.server = server
        self.close_session = close_session
        self.session = session
        self.acceptors = acceptors
        self.max_streams = max_streams
        self._loops: list[asyncio.Task[None]] = []
        self._streams: set[asyncio.Task[None]] = set()

    @property
    def b32(self) -> str:
        return self.session.b32

    @property
    def announce_url(self) -> str:
        """The WebSocket announce URL to put in magnets and torrents."""
        return f"ws://{self.b32}/announce"

    @property
    def http_announce_url(self) -> str:
        return f"http://{self.b32}/announce"

    async def start(self) -> None:
        await self.server.start()
        self._loops = [asyncio.ensure_future(self._accept_loop()) for _ in range(self.acceptors)]

    async def close(self) -> None:
        for task in [*self._loops, *self._streams]:
            task.cancel()
        for task in [*self._loops, *self._streams]:
            with contextlib.suppress(BaseException):
                await task
        await self.server.close()
        if self.close_session:
            await self.session.close()

    async def _accept_loop(self) -> None:
        await accept_forever(self.session.accept, self._admit, lambda: self.session.closed, "tracker accept")

    async def _admit(self, stream: SAMStream) -> None:
        if len(self._streams) >= self.max_streams:
            await stream.close()
            return
        identity = PeerIdentity(stream.remote, stream.remote_destination)
        task = asyncio.ensure_future(self._serve(stream, identity))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _serve(self, stream: ByteStream, identity: PeerIdentity) -> None:
        try:
            await self.server.serve_stream(stream, identity)
        except (OSError, ConnectionError) as err:
            log.debug("tracker stream from %s ended: %s", identity.name, err)


@dataclass
class TrackerPaths:
    """What a tracker keeps in its data directory."""

    data_dir: Path

    @property
    def key(self) -> Path:
        return self.data_dir / KEY_FILE

    @property
    def access(self) -> Path:
        return self.data_dir / ACCESS_FILE


async def start_tracker(data_dir: Path | str, sam: SAMAddress, session_options: dict[str, str], *,
                        private: bool = True, limits: TrackerLimits | None = None,
                        store: "SwarmStore | None" = None) -> TrackerEepsite:
    """Start the tracker eepsite at the persistent destination kept in `data_dir` (created once).

    With `private`, only destinations in data_dir/access.json (or holders of its invites) are served;
    with a `store`, swarms, allowlist and invites are the ones shared in it (access.json is unused).
    Instances that copy the same tracker.key serve one .b32 from several routers (multihoming).
    The session outlives its router: it is re-created at the same .b32 when the router comes back. A
    restart under known keys is checked for reachability, except with a store: another instance at the
    same .b32 may take the probe, which only we answer.
    """
    paths = TrackerPaths(Path(data_dir))
    private_dir(paths.data_dir)
    session = None
    known = paths.key.exists()
    try:
        destination = await load_or_create_destination(paths.key, sam)
        session = await KeptStreamSession.create(sam, destination, session_options, what="tracker",
                                                 probe_first=known, probe=store is None)
        if store is not None:
            server = TrackerServer(store=store, limits=limits)
        else:
            server = TrackerServer(access=AccessList.load(paths.access, private=private), limits=limits)
        site = TrackerEepsite(server, session, close_session=True)
        await site.start()
    except BaseException:
        if session is not None:
            await session.close()
        if store is not None:
            await store.close()
        raise
    return site
