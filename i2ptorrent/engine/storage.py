"""One torrent's pieces in libtorrent, as awaitables: read a block, write a verified piece.

libtorrent stores, hashes and remembers pieces; our peers move them. Reads go through read_piece (one
alert per piece) into a small LRU cache, so a peer pipelining sixteen 16 KiB requests costs one disk read,
and concurrent requests for a piece share it. Writes hand a whole piece to add_piece and wait for
piece_finished (kept) or hash_failed (dropped). libtorrent ignores a buffer of the wrong size without a
word, so sizes are checked here; and a piece that fails libtorrent's hash check can be left in a state
where no later copy is ever hashed (2.1.1, reproducible with add_piece alone), so each piece's SHA-1 is
checked here first and libtorrent only ever receives pieces that verify. Memory is bounded: the cache by bytes, pending writes by a semaphore.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import libtorrent as lt

log = logging.getLogger(__name__)

_CHECKING = {lt.torrent_status.states.checking_files, lt.torrent_status.states.checking_resume_data,
             lt.torrent_status.states.queued_for_checking, lt.torrent_status.states.allocating}


MAX_PREFETCH = 16  # pieces being read ahead at once
WRITE_VERDICT_TIMEOUT = 10.0
WRITE_ATTEMPTS = 3


class StorageError(Exception):
    """libtorrent could not read or write a piece (disk error, torrent removed)."""


class PieceStore:
    """The libtorrent side of one torrent that has metadata."""

    def __init__(self, handle: lt.torrent_handle, ti: lt.torrent_info, cache_bytes: int = 16 * 1024 * 1024, pending_write_bytes: int = 32 * 1024 * 1024) -> None:
        self.handle = handle
        self.error: str | None = None  # the last file or torrent error libtorrent reported
        self.num_pieces: int = ti.num_pieces()
        self.piece_length: int = ti.piece_length()
        self.total_size: int = ti.total_size()
        self._hashes = [ti.hash_for_piece(i) for i in range(self.num_pieces)]
        self._have = bytearray(self.num_pieces)  # 0/1 per piece, in step with libtorrent
        self.num_have = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_max = max(cache_bytes, 2 * self.piece_length)
        self._cache_bytes = 0
        self._reads: dict[int, asyncio.Future[bytes]] = {}
        self._writes: dict[int, asyncio.Future[bool]] = {}
        self._pending_writes = 0
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="piece-writer")
        self._write_slot_count = max(2, pending_write_bytes // self.piece_length)
        self._write_slots = asyncio.Semaphore(self._write_slot_count)
        self._closed = False
        self.on_piece_verified: Callable[[int], None] | None = None
        self.on_piece_failed: Callable[[int], None] | None = None

    # -- state -----------------------------------------------------------------------------------

    def piece_size(self, index: int) -> int:
        if index == self.num_pieces - 1:
            return self.total_size - self.piece_length * (self.num_pieces - 1)
        return self.piece_length

    def have(self, index: int) -> bool:
        return bool(self._have[index])

    def have_bits(self) -> bytes:
        """Our pieces as a copy of the 0/1 array (index = piece)."""
        return bytes(self._have)

    @property
    def complete(self) -> bool:
        return self.num_have == self.num_pieces

    @property
    def writes_pending(self) -> int:
        """Pieces handed to write_piece and not yet verified or failed (queued ones included)."""
        return self._pending_writes

    @property
    def write_slots(self) -> int:
        return self._write_slot_count

    async def wait_checked(self, poll: float = 0.05) -> None:
        """Wait for libtorrent to finish checking files/resume data, then load which pieces it has."""
        while not self._closed:
            st = self.handle.status()
            if st.state not in _CHECKING:
                self._load_have(st.pieces)
                return
            await asyncio.sleep(poll)

    def _load_have(self, pieces: list[bool]) -> None:
        for i, p in enumerate(pieces[: self.num_pieces]):
            self._have[i] = 1 if p else 0
        self.num_have = sum(self._have)

    # -- reads -----------------------------------------------------------------------------------

    async def read_block(self, piece: int, offset: int, length: int) -> bytes:
        """Bytes of a piece we have; callers validate piece/offset/length against the torrent first."""
        data = self._cache.get(piece)
        if data is not None:
            self._cache.move_to_end(piece)
        else:
            data = await self.read_piece(piece)
        return data[offset:offset + length]

    async def read_piece(self, piece: int) -> bytes:
        if self._closed:
            raise StorageError("torrent closed")
        if not self._have[piece]:
            raise StorageError(f"piece {piece} not available")
        return await asyncio.shield(self._start_read(piece))

    def _start_read(self, piece: int) -> asyncio.Future[bytes]:
        fut = self._reads.get(piece)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._reads[piece] = fut
            self.handle.read_piece(piece)
        return fut

    def prefetch(self, piece: int) -> None:
        """Start reading a piece a peer will soon ask for, so its blocks come from the cache."""
        if self._closed or not self._have[piece] or piece in self._cache or piece in self._reads:
            return
        if (len(self._reads) + 1) * self.piece_length * 2 > self._cache_max or len(self._reads) >= MAX_PREFETCH:
            return  # bounded: read-ahead must not push out the pieces being served
        self._start_read(piece).add_done_callback(lambda f: f.cancelled() or f.exception())

    def _cache_put(self, piece: int, data: bytes) -> None:
        if piece in self._cache:
            return
        self._cache[piece] = data
        self._cache_bytes += len(data)
        while self._cache_bytes > self._cache_max and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= len(old)

    # -- writes ----------------------------------------------------------------------------------

    async def write_piece(self, piece: int, data: bytes) -> bool:
        """Hand a complete piece to libtorrent; True once verified and kept, False if the hash failed."""
        if self._closed:
            raise StorageError("torrent closed")
        if len(data) != self.piece_size(piece):
            raise ValueError(f"piece {piece}: {len(data)} bytes, expected {self.piece_size(piece)}")
        if self._have[piece]:
            return True
        if piece in self._writes:  # the same piece twice (endgame): share the first verdict
            return await asyncio.shield(self._writes[piece])
        self._pending_writes += 1
        try:
            async with self._write_slots:
                return await self._add_piece(piece, bytes(data))
        finally:
            self._pending_writes -= 1

    def _check_and_add(self, piece: int, data: bytes) -> bool:
        """On the writer thread (both calls release the GIL, copying 1 ms per 256 KiB): SHA-1, then hand
        the piece to libtorrent only if it matches."""
        if hashlib.sha1(data).digest() != self._hashes[piece]:
            return False
        self.handle.add_piece(piece, data, lt.torrent_handle.overwrite_existing)
        return True

    async def _add_piece(self, piece: int, data: bytes) -> bool:
        # should libtorrent still give no answer, the piece is added again, then reported as an error
        loop = asyncio.get_running_loop()
        for _attempt in range(WRITE_ATTEMPTS):
            if self._closed:
                raise StorageError("torrent closed")
            fut = self._writes.get(piece)
            if fut is None or fut.done():
                fut = loop.create_future()
                self._writes[piece] = fut
            if not await loop.run_in_executor(self._writer, self._check_and_add, piece, data):
                if self._writes.get(piece) is fut:
                    del self._writes[piece]
                return False
            try:
                return await asyncio.wait_for(asyncio.shield(fut), WRITE_VERDICT_TIMEOUT)
            except asyncio.TimeoutError:
                if self.handle.have_piece(piece):
                    self._mark_have(piece)
                    return True
                log.info("no verdict for piece %d from libtorrent; adding it again", piece)
        self._writes.pop(piece, None)
        raise StorageError(f"libtorrent never verified piece {piece}")

    def _stop_writer(self) -> None:
        self._writer.shutdown(wait=True, cancel_futures=True)

    def _mark_have(self, i: int) -> None:
        if not self._have[i]:
            self._have[i] = 1
            self.num_have += 1
            if self.on_piece_verified:
                self.on_piece_verified(i)

    # -- alerts ----------------------------------------------------------------------------------

    def on_alert(self, alert: Any) -> None:
        if isinstance(alert, lt.read_piece_alert):
            fut = self._reads.pop(alert.piece, None)
            if alert.error.value():
                if fut is not None and not fut.done():
                    fut.set_exception(StorageError(f"read piece {alert.piece}: {alert.error.message()}"))
                return
            data = bytes(alert.buffer)
            self._cache_put(alert.piece, data)
            if fut is not None and not fut.done():
                fut.set_result(data)
        elif isinstance(alert, lt.piece_finished_alert):
            i = alert.piece_index
            if 0 <= i < self.num_pieces:
                self._mark_have(i)
            wfut = self._writes.pop(i, None)
            if wfut is not None and not wfut.done():
                wfut.set_result(True)
        elif isinstance(alert, lt.hash_failed_alert):
            i = alert.piece_index
            wfut = self._writes.pop(i, None)
            if wfut is not None and not wfut.done():
                wfut.set_result(False)
            if self.on_piece_failed:
                self.on_piece_failed(i)
        elif isinstance(alert, (lt.file_error_alert, lt.torrent_error_alert)):
            log.error("%s: %s", self.handle.status().name, alert.message())
            where = alert.filename() if isinstance(alert, lt.file_error_alert) else ""
            self.error = f"{alert.error.message()}" + (f" ({where})" if where else "")

    async def close(self) -> None:
        """Stop; returns once the writer thread is idle (libtorrent must not be torn down under it)."""
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._stop_writer)
        err = StorageError("torrent closed")
        for fut in [*self._reads.values(), *self._writes.values()]:
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: nobody may be waiting any more
        self._reads.clear()
        self._writes.clear()
        self._cache.clear()
        self._cache_bytes = 0
