"""The asyncio adapter of the swarm core: streams, tasks, the one timer, and the piece store's awaitables.

After every call into the core (bytes from a peer, a storage verdict, the timer) `_run()` carries out
the core's actions and re-arms one `loop.call_at` handle at `core.next_deadline()`. Nothing else lives
here: every decision and every piece of protocol state is the core's (swarm.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..transport.stream import ByteStream
from .actions import (
    ClosePeer, Completed, InstallMetadata, PeerBanned, PeersFound, Prefetch, Send, ServeBlock, WritePiece,
)
from .metainfo import Metainfo
from .peer import PeerConnection
from .picker import BUFFER_BUDGET
from .storage import PieceStore, StorageError
from .swarm import MAX_PEERS, SwarmCore

if TYPE_CHECKING:
    from .ratelimit import RateLimits

log = logging.getLogger(__name__)


class AsyncSwarm:
    """One torrent's swarm on the event loop. The Torrent owns the piece store (read through `store`)."""

    def __init__(self, meta: Metainfo, peer_id: bytes, store: Callable[[], PieceStore | None],
                 on_metadata: Callable[[Metainfo], Awaitable[None]] | None = None,
                 on_complete: Callable[[], Awaitable[object]] | None = None,
                 max_peers: int = MAX_PEERS, limits: RateLimits | None = None,
                 rng: random.Random | None = None, buffer_budget: int = BUFFER_BUDGET) -> None:
        self.core = SwarmCore(meta, peer_id, max_peers=max_peers, rng=rng, buffer_budget=buffer_budget)
        self._store = store
        self._on_metadata = on_metadata
        self._on_complete = on_complete
        self.on_peers: Callable[[tuple[str, ...]], None] | None = None
        """Where addresses peers told us of (i2p_pex) go: the torrent's dial candidates."""
        self.limits = limits
        self.complete = asyncio.Event()  # every wanted piece verified and flushed to the files
        self.metadata_ready = asyncio.Event()
        if meta.has_metadata:
            self.metadata_ready.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        """Peers' streams being closed: held here, since the loop keeps only weak references to tasks."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # -- read by callers (the rest through .core) ------------------------------------------------

    @property
    def meta(self) -> Metainfo:
        return self.core.meta

    @property
    def peers(self) -> list[PeerConnection]:
        return list(self.core.peers)  # type: ignore[arg-type]  # keys are our PeerConnections

    @property
    def banned(self) -> set[str]:
        return self.core.banned

    def connected_to(self, remote: str) -> bool:
        return self.core.connected_to(remote)

    # -- inputs ----------------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def attach(self, stream: ByteStream, outgoing: bool, initial: bytes = b"") -> PeerConnection | None:
        """Run the peer wire over a stream (already routed to this torrent for incoming ones)."""
        conn = PeerConnection(stream, self, outgoing, self._store, self.limits)
        why = self.core.add_peer(conn, stream.remote, outgoing, self._now())
        if why is not None:
            self._spawn(stream.close(), f"closing refused {stream.remote[:12]}")
            self._run()
            return None
        conn.start(initial)
        self._run()
        return conn

    def pieces_ready(self, store: PieceStore, wanted: int | None = None) -> None:
        """The torrent's pieces are checked (at start, or once a magnet's metadata is installed)."""
        self.core.set_pieces((i for i in range(store.num_pieces) if store.have(i)), wanted, self._now())
        self._run()

    def pause(self) -> None:
        self.core.pause(self._now())
        self._run()

    def resume(self) -> None:
        self.core.resume()

    def close_all(self, reason: str) -> None:
        self.core.close_all(reason, self._now())
        self._run()

    def close(self) -> None:
        self.core.close(self._now())
        self._run()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()

    @property
    def closing(self) -> set[asyncio.Task[None]]:
        """The closes of peer streams still under way (each ends within peer.CLOSE_TIMEOUT)."""
        return set(self._closing)

    def _close_peer(self, peer: PeerConnection, reason: str) -> None:
        task = peer.close(reason)
        if task is not None:
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # PeerHost: what a PeerConnection reports

    def received(self, peer: PeerConnection, data: bytes) -> None:
        self.core.receive_data(peer, data, self._now())
        self._run()

    def lost(self, peer: PeerConnection, reason: str) -> None:
        self.core.close_peer(peer, reason, self._now())
        self._run()
        self._close_peer(peer, reason)  # also when the core had dropped it already

    def reading_paused(self, peer: PeerConnection) -> None:
        self.core.reading_paused(peer, self._now())

    def reading_resumed(self, peer: PeerConnection) -> None:
        self.core.reading_resumed(peer, self._now())
        self._run()

    def upload_wanted(self, peer: PeerConnection, req: ServeBlock) -> bool:
        return self.core.upload_wanted(peer, req.index, req.begin, req.length)

    def block_read(self, peer: PeerConnection, req: ServeBlock, data: bytes) -> None:
        self.core.block_read(peer, req.index, req.begin, data, self._now())
        self._run()

    # -- actions ---------------------------------------------------------------------------------

    def _run(self) -> None:
        for a in self.core.take_actions():
            if isinstance(a, Send):
                a.peer.send(a.data)  # type: ignore[attr-defined]
            elif isinstance(a, ServeBlock):
                a.peer.queue_upload(a)  # type: ignore[attr-defined]
            elif isinstance(a, ClosePeer):
                self._close_peer(a.peer, a.reason)  # type: ignore[arg-type]
            elif isinstance(a, Prefetch):
                store = self._store()
                if store is not None:
                    store.prefetch(a.index)
            elif isinstance(a, WritePiece):
                self._spawn(self._write(a.index, a.data), f"writing piece {a.index}")
            elif isinstance(a, InstallMetadata):
                self._spawn(self._install_metadata(a.meta), "installing metadata")
            elif isinstance(a, PeersFound):
                if self.on_peers is not None:
                    self.on_peers(a.addresses)
            elif isinstance(a, PeerBanned):
                log.warning("banning %s: %s", a.remote, a.reason)
            elif isinstance(a, Completed):
                if a.flush and self._on_complete is not None:
                    self._spawn(self._flush_then_complete(), "flushing")
                else:
                    self.complete.set()  # nothing written in this run: nothing to flush
        self._arm()

    def _arm(self) -> None:
        """One timer handle at the core's earliest deadline; a later deadline leaves an earlier handle in
        place (on_timer then finds nothing due and the handle is re-armed)."""
        deadline = self.core.next_deadline()
        if deadline is None or self.core.closed:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        try:
            self.core.on_timer(self._now())
        except Exception:
            log.exception("swarm timer failed for %s", self.core.info_hash.hex())
        self._run()

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed for %s", task.get_name(), self.core.info_hash.hex(), exc_info=task.exception())

    async def _write(self, piece: int, data: bytes) -> None:
        store = self._store()
        if store is None:
            return
        try:
            ok = await store.write_piece(piece, data)
        except StorageError as e:
            if not self.core.closed:
                self.core.piece_not_written(piece, str(e), self._now())
                self._run()
            return
        if not self.core.closed:
            self.core.piece_written(piece, ok, self._now())
            self._run()

    async def _install_metadata(self, meta: Metainfo) -> None:
        if self._on_metadata is not None:
            try:
                await self._on_metadata(meta)
            except Exception:
                log.exception("installing metadata for %s failed", meta.info_hash.hex())
                return
        self.metadata_ready.set()

    async def _flush_then_complete(self) -> None:
        """Complete means on disk: libtorrent may still hold verified pieces in its write buffers."""
        assert self._on_complete is not None
        try:
            await self._on_complete()
        except Exception:
            log.exception("flushing %s failed", self.core.info_hash.hex())
        self.complete.set()
