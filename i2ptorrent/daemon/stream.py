"""GET /stream/<info hash>/<file index>: a torrent's file over HTTP, with Range, while it downloads.

Bytes are answered from verified pieces as they arrive. An open stream tells its torrent which pieces it
needs next (Torrent.prioritize, a read-ahead window from its position): the picker starts those first,
in that order, and the rest of the torrent continues around them. The range arithmetic is `byte_range`
and `pieces_for` (pure); the handler is the thin aiohttp part. The key check is web.py's (guard.py).
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from i2ptorrent.engine.storage import StorageError

READ_AHEAD_BYTES = 8 * 1024 * 1024  # what a stream asks to have fetched first, from its position on
MIN_READ_AHEAD_PIECES = 4
PIECE_TIMEOUT = 600.0  # a stream waiting this long for one piece ends (its torrent may have no peers)
METADATA_TIMEOUT = 120.0
HEX40 = re.compile(r"[0-9a-f]{40}")


class RangeError(ValueError):
    """An unsatisfiable Range: 416."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A Range header -> (first, last) inclusive, or None for the whole file. One range only: a request
    for several gets the whole file (RFC 9110 lets a server ignore Range)."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None:
        return None
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # the last N bytes
        n = int(last_s)
        if n == 0 or size == 0:
            raise RangeError(header)
        return max(0, size - n), size - 1
    first = int(first_s)
    last = min(int(last_s), size - 1) if last_s else size - 1
    if first >= size or last < first:
        raise RangeError(header)
    return first, last


def pieces_for(file_offset: int, first: int, last: int, piece_length: int) -> range:
    """The torrent's pieces holding bytes [first, last] of a file that starts at file_offset."""
    return range((file_offset + first) // piece_length, (file_offset + last) // piece_length + 1)


@dataclass(frozen=True)
class _File:
    offset: int
    size: int
    name: str


class StreamServer:
    """Serves files of the engine's torrents. `want_file(t, index)` makes sure a file is selected (a user
    streaming a file wants it even if they had left it out)."""

    def __init__(self, engine: Callable[[], Any], want_file: Callable[[Any, int], None]) -> None:
        self._engine = engine
        self._want_file = want_file
        self._open: set[asyncio.Task[Any]] = set()

    def close(self) -> None:
        for task in list(self._open):
            task.cancel()

    async def serve(self, request: web.Request) -> web.StreamResponse:
        h, index_s = request.match_info["info_hash"].lower(), request.match_info["index"]
        if not HEX40.fullmatch(h) or not index_s.isdigit() or len(index_s) > 9:
            return web.Response(status=404, text="no such stream")
        t = self._engine().get(bytes.fromhex(h))
        if t is None:
            return web.Response(status=404, text="no such torrent")
        try:
            await asyncio.wait_for(self._ready(t), METADATA_TIMEOUT)
        except asyncio.TimeoutError:
            return web.Response(status=504, text="the torrent's metadata did not arrive")
        ti = t.metainfo.torrent_info()
        fs = ti.layout()
        index = int(index_s)
        if index >= fs.num_files():
            return web.Response(status=404, text="no such file")
        f = _File(fs.file_offset(index), fs.file_size(index), fs.file_path(index))
        try:
            rng = byte_range(request.headers.get("Range"), f.size)
        except RangeError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{f.size}"})
        first, last = rng if rng is not None else (0, f.size - 1)
        self._want_file(t, index)
        resp = web.StreamResponse(status=206 if rng is not None else 200)
        resp.content_type = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        resp.headers["Accept-Ranges"] = "bytes"
        resp.content_length = max(0, last - first + 1)
        if rng is not None:
            resp.headers["Content-Range"] = f"bytes {first}-{last}/{f.size}"
        await resp.prepare(request)
        if f.size == 0 or request.method == "HEAD":
            await resp.write_eof()
            return resp
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        reader = object()  # this stream's key in the torrent's priorities
        try:
            await self._send(t, ti.piece_length(), f, first, last, resp, reader)
        except (ConnectionError, asyncio.TimeoutError, StorageError):
            pass  # the player went away, the swarm cannot deliver, or the torrent was removed: it just ends
        finally:
            t.prioritize(reader, [])
            self._open.discard(task)
        return resp

    @staticmethod
    async def _ready(t: Any) -> None:
        await t.wait_metadata()
        while t.store is None:  # metadata installed, its files being checked
            await asyncio.sleep(0.05)

    async def _send(self, t: Any, plen: int, f: _File, first: int, last: int, resp: web.StreamResponse,
                    reader: object) -> None:
        ahead = max(MIN_READ_AHEAD_PIECES, READ_AHEAD_BYTES // plen)
        pieces = pieces_for(f.offset, first, last, plen)
        for n, piece in enumerate(pieces):
            t.prioritize(reader, list(pieces[n:n + ahead]))
            await asyncio.wait_for(t.wait_piece(piece), PIECE_TIMEOUT)
            store = t.store
            data = await store.read_piece(piece)
            start = max(f.offset + first, piece * plen) - piece * plen
            end = min(f.offset + last + 1, piece * plen + len(data)) - piece * plen
            await resp.write(data[start:end])
        await resp.write_eof()
