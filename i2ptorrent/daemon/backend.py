"""The daemon as its HTTP faces see it: rpc_core's Backend, carried out by the Daemon and its Client.

Views are snapshots built from the engine's status; a torrent's file layout is read once (it never changes
once known) so a torrent-get of every field for a thousand torrents stays cheap.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from i2ptorrent.daemon.prefs import SessionPrefs
from i2ptorrent.daemon.rpc_core import AddSource, FileChoice, FileView, RpcError, TorrentView, bitfield

if TYPE_CHECKING:
    from i2ptorrent.daemon.server import Daemon

MAX_TORRENT_FILE = 64 * 1024 * 1024


class _Layout:
    """A torrent's files: (path, offset, size) and its piece length."""

    def __init__(self, t: Any) -> None:
        ti = t.metainfo.torrent_info()
        fs = ti.layout()
        self.piece_length = ti.piece_length()
        self.files = [(fs.file_path(i).replace(os.sep, "/"), fs.file_offset(i), fs.file_size(i))
                      for i in range(fs.num_files())]


class DaemonBackend:
    """rpc_core.Backend over a running Daemon."""

    def __init__(self, daemon: "Daemon", download_dir: Path, node: Any = None) -> None:
        self.daemon = daemon
        self._download_dir = download_dir
        self._added: dict[str, float] = {}
        self._layouts: dict[str, _Layout] = {}
        self._magnets: dict[tuple[str, bool], str] = {}  # it changes only when the metadata (name) arrives
        self._node = node  # () -> dict, what the page shows about us

    # -- torrents --------------------------------------------------------------------------------

    @property
    def _engine(self) -> Any:
        engine = self.daemon.client.engine
        assert engine is not None
        return engine

    def _get(self, info_hash: str) -> Any:
        t = self._engine.get(bytes.fromhex(info_hash))
        if t is None:
            raise KeyError(info_hash)
        return t

    def hashes(self) -> list[str]:
        return [t.info_hash.hex() for t in self._engine.torrents]

    def _layout(self, t: Any) -> _Layout | None:
        h = t.info_hash.hex()
        lay = self._layouts.get(h)
        if lay is None and t.metainfo.has_metadata:
            lay = self._layouts[h] = _Layout(t)
        return lay

    def view(self, info_hash: str, detail: bool) -> TorrentView:
        t = self._get(info_hash)
        st = t.status()
        lay = self._layout(t)
        store = t.store
        piece_size = lay.piece_length if lay else 0
        total = st.total_size
        wanted_size, have_size = total, 0
        files: tuple[FileView, ...] | None = None
        have = store.have_bits() if store is not None else b""
        if lay is not None and store is not None:
            wanted_set = self._wanted_set(t, len(lay.files))
            wanted_size = sum(size for i, (_, _, size) in enumerate(lay.files) if i in wanted_set)
            if detail or t.selected_files is not None:
                views = []
                for i, (name, off, size) in enumerate(lay.files):
                    first = off // piece_size
                    last = max(first, (off + size - 1) // piece_size)
                    done = sum(_overlap(p, piece_size, store.piece_size(p), off, size)
                               for p in range(first, last + 1) if size and have[p])
                    views.append(FileView(name, size, done, i in wanted_set, first, last))
                files = tuple(views)
                have_size = sum(f.done for f in files if f.wanted)
            elif st.pieces_done == st.pieces_total:
                have_size = total
            else:
                have_size = min(total, st.pieces_done * piece_size)
                if have and have[-1]:
                    have_size -= piece_size - store.piece_size(store.num_pieces - 1)
        prefs = self.daemon.prefs_of(info_hash)  # replaced on a change, never changed: a snapshot
        uploaded, downloaded = self.daemon.totals(t, st, prefs)
        added = self._added.get(info_hash)
        if added is None:
            added = self._added[info_hash] = time.time()
        meta = t.metainfo
        return TorrentView(
            info_hash=info_hash, name=st.name, state=st.state, progress=st.progress,
            pieces_done=st.pieces_done, pieces_total=st.pieces_total, piece_size=piece_size,
            download_rate=st.download_rate, upload_rate=st.upload_rate, peers=st.peers,
            downloaded=downloaded, uploaded=uploaded, total_size=total,
            wanted_size=wanted_size, have_size=have_size, save_path=str(t.save_path),
            magnet=self._magnet(t), added=added, error=st.error,
            has_metadata=meta.has_metadata, trackers=tuple(meta.trackers),
            files=files if detail else None,
            pieces_bits=bitfield(have, len(have)) if detail else None, prefs=prefs,
            eta_idle=self.daemon.seed_watch.idle_eta(info_hash, prefs, self.daemon.session_prefs, time.monotonic()))

    def _magnet(self, t: Any) -> str:
        key = (t.info_hash.hex(), t.metainfo.has_metadata)
        m = self._magnets.get(key)
        if m is None:
            m = self._magnets[key] = self.daemon.client.magnet(t)
        return m

    @staticmethod
    def _wanted_set(t: Any, count: int) -> set[int]:
        sel = t.selected_files
        return set(range(count)) if sel is None else {i for i in sel if isinstance(i, int)}

    async def add(self, source: AddSource, download_dir: str | None, paused: bool,
                  files: FileChoice | None, labels: list[str] | None = None) -> tuple[TorrentView, bool]:
        from i2ptorrent.engine import as_metainfo

        if source.path is not None:
            path = Path(source.path)
            if not path.is_absolute():
                raise RpcError("torrent-add: filename must be an absolute path (or a magnet)")
            try:
                if path.stat().st_size > MAX_TORRENT_FILE:
                    raise RpcError("torrent-add: file too large for a .torrent")
                data: bytes | str = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise RpcError(f"torrent-add: {path}: {exc.strerror or exc}") from None
        else:
            data = source.metainfo if source.metainfo is not None else (source.magnet or "")
        meta = as_metainfo(data)
        h = meta.info_hash.hex()
        if self._engine.get(meta.info_hash) is not None:
            return self.view(h, False), True
        selected = None
        if files is not None:
            chosen = files.apply([True] * len(meta.files))
            selected = [i for i, w in enumerate(chosen) if w]
        save = Path(download_dir) if download_dir else self._download_dir
        if not save.is_absolute():
            raise RpcError("torrent-add: download-dir must be an absolute path")
        t = await self.daemon.add(data, save, selected, paused, labels or ())
        self._added[h] = time.time()
        return self.view(t.info_hash.hex(), False), False

    def start(self, info_hash: str) -> None:
        self.daemon.set_paused(self._get(info_hash), False)

    def stop(self, info_hash: str) -> None:
        self.daemon.set_paused(self._get(info_hash), True)

    async def remove(self, info_hash: str, delete_data: bool) -> None:
        await self.daemon.remove(self._get(info_hash), delete_data)
        self._layouts.pop(info_hash, None)
        self._added.pop(info_hash, None)
        for key in [k for k in self._magnets if k[0] == info_hash]:
            del self._magnets[key]

    async def verify(self, info_hash: str) -> None:
        await self._get(info_hash).verify()

    def set_wanted(self, info_hash: str, files: FileChoice) -> None:
        t = self._get(info_hash)
        lay = self._layout(t)
        if lay is None:
            raise RpcError("torrent-set: the torrent's files are not known yet (metadata still coming)")
        current = self._wanted_set(t, len(lay.files))
        chosen = files.apply([i in current for i in range(len(lay.files))])
        self.daemon.select(t, None if all(chosen) else [i for i, w in enumerate(chosen) if w])

    def set_prefs(self, info_hash: str, changes: dict[str, Any]) -> None:
        self.daemon.set_prefs(self._get(info_hash), changes)

    async def set_location(self, info_hash: str, path: str, move: bool) -> None:
        p = Path(path)
        if not p.is_absolute():
            raise RpcError("torrent-set-location: location must be an absolute path")
        await self.daemon.set_location(self._get(info_hash), p, move)

    # -- session ---------------------------------------------------------------------------------

    def session_prefs(self) -> SessionPrefs:
        return self.daemon.session_prefs

    def set_session_prefs(self, changes: dict[str, Any]) -> None:
        self.daemon.set_session_prefs(changes)

    def limits(self) -> tuple[int, int]:
        lim = self._engine.limits
        return int(lim.download.rate), int(lim.upload.rate)

    def set_limits(self, download: int | None, upload: int | None) -> None:
        from i2ptorrent.engine.ratelimit import MIN_RATE

        for value in (download, upload):
            if value and value < MIN_RATE:
                raise RpcError(f"a speed limit must be at least {MIN_RATE} bytes/s (or off)")
        self._engine.set_rate_limits(download, upload)

    def download_dir(self) -> str:
        return str(self._download_dir)

    def set_download_dir(self, path: str) -> None:
        p = Path(path)
        if not p.is_absolute():
            raise RpcError("download-dir must be an absolute path")
        self._download_dir = p

    def free_space(self, path: str) -> tuple[int, int]:
        p = Path(path)
        if not p.is_absolute():
            raise RpcError("free-space: path must be absolute")
        try:
            usage = shutil.disk_usage(p)
        except OSError as exc:
            raise RpcError(f"free-space: {path}: {exc.strerror or exc}") from None
        return usage.free, usage.total

    def node(self) -> dict[str, Any]:
        return self._node() if self._node is not None else {}

    def close_session(self) -> None:
        self.daemon.stop.set()


def tracker_summary(tracker_dir: Path, now: float) -> dict[str, Any] | None:
    """The tracker kept in this data directory (`i2ptorrent tracker`), as far as its files tell: its
    address, who is allowed, its open invites (stored as digests: no usable token is shown). Its swarms
    live in the tracker's own process, which has no API for the daemon to ask."""
    from i2ptorrent.tracker.access import AccessList
    from i2ptorrent.tracker.eepsite import TrackerPaths
    from i2ptorrent.transport.sam import Destination

    paths = TrackerPaths(tracker_dir)
    if not paths.key.exists():
        return None
    try:
        b32 = Destination.load(paths.key).b32
        acl = AccessList.load(paths.access)
    except (OSError, ValueError) as exc:
        return {"error": f"cannot read the tracker's files: {exc}"}
    live = [e for e in acl.invites.values() if e is None or e > now]
    return {"b32": b32, "announce": f"ws://{b32}/announce", "allowed": len(acl.allowed),
            "invites": len(live), "invites_expiring": sorted(int(e) for e in live if e is not None)[:20],
            "swarms": None,
            "swarms_note": "the tracker runs as its own process: its swarms are not visible to the daemon"}


def _overlap(piece: int, piece_length: int, size: int, off: int, length: int) -> int:
    """Bytes of piece `piece` (of `size` bytes) inside the file at [off, off+length)."""
    start = piece * piece_length
    return max(0, min(start + size, off + length) - max(start, off))
