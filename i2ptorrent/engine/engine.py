"""The engine: one libtorrent session for storage, and a swarm of our own peers per torrent.

libtorrent never opens a connection (see settings.py); it keeps pieces on disk, verifies them, and
remembers what is verified across restarts (resume data under data_dir). Peers arrive as ByteStreams:
`add_peer` for streams we opened, `handle_incoming` for accepted ones (routed by the info-hash in their
handshake), and the engine dials candidate .b32 addresses itself through the `dial` callable it was
given, so it never knows which transport carries a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libtorrent as lt

from ..transport.stream import ByteStream
from ..wire.errors import ProtocolError
from ..wire.handshake import INFO_HASH_END, peek_info_hash
from .alerts import AlertPump
from .peer import CLOSE_TIMEOUT
from .peer_cache import PeerCache
from .metainfo import Metainfo, MetainfoError, as_metainfo, magnet_of
from .settings import TORRENT_FLAGS_OFF, TORRENT_FLAGS_ON, anonymous_settings
from .ratelimit import RateLimits
from .storage import PieceStore, StorageError
from .swarm import MAX_PEERS, SwarmStats, new_peer_id
from .swarm_io import AsyncSwarm
from ..private_files import private_dir, write_private

log = logging.getLogger(__name__)

Dialer = Callable[[str], Awaitable[ByteStream]]

TICK = 1.0
INCOMING_HANDSHAKE_TIMEOUT = 60.0
RESUME_SAVE_INTERVAL = 30.0
DIAL_CONCURRENCY = 8
DIAL_BACKOFF_MIN, DIAL_BACKOFF_MAX = 30.0, 600.0
SEED_REDIAL = 120.0
MAX_CANDIDATES = 500


class EngineError(Exception):
    """The engine cannot do what was asked (not started, torrent unknown, storage failure)."""


@dataclass(frozen=True)
class TorrentStatus:
    name: str
    info_hash: str  # hex, v1
    state: str  # 'metadata' | 'checking' | 'downloading' | 'seeding' | 'paused'
    progress: float  # 0..1 of the wanted pieces
    pieces_done: int
    pieces_total: int  # 0 until a magnet's metadata is known
    download_rate: float  # payload bytes/s
    upload_rate: float
    peers: int
    downloaded: int  # payload bytes received this session
    uploaded: int
    total_size: int
    stats: SwarmStats
    error: str | None = None  # a storage error (disk full, unwritable file): the torrent cannot progress
    warning: str | None = None  # what keeps peers away, if anything: the router lost, trackers failing


class Torrent:
    """A torrent in the engine. Created by Engine.add; do not construct directly."""

    def __init__(self, engine: "Engine", meta: Metainfo, handle: lt.torrent_handle, save_path: Path,
                 selected_files: Sequence[int | str] | None) -> None:
        self._engine = engine
        self.handle = handle
        self.save_path = save_path
        self.selected_files = list(selected_files) if selected_files is not None else None
        self.store: PieceStore | None = None  # the one owner; the swarm reads it through a callable
        self.limits = RateLimits(parent=engine.limits)  # this torrent's own, under the engine's
        self.swarm = AsyncSwarm(meta, engine.peer_id, lambda: self.store, on_metadata=self._install_metadata,
                                on_complete=self.save_resume, max_peers=engine.max_peers, limits=self.limits)
        self.swarm.on_peers = self.add_candidates
        self.candidates: dict[str, None] = dict.fromkeys(meta.peers)
        self._dialing: set[str] = set()
        self._backoff: dict[str, tuple[float, float]] = {}  # b32 -> (next attempt, current backoff)
        self._seed_dials: dict[str, float] = {}  # b32 -> when we last dialled it as a seed (keys: candidates)
        self._resume_waiters: list[asyncio.Future[bytes | None]] = []
        self._checked_waiters: list[asyncio.Future[None]] = []
        self._moved_waiters: list[asyncio.Future[None]] = []
        self._error_posted = False  # libtorrent posted a torrent/file error: only then is its errc worth asking
        self._piece_waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._urgent: dict[object, list[int]] = {}  # reader (a stream) -> pieces it needs next
        self._checking = False
        self.peer_cache = PeerCache.load(engine._peers_path(meta.info_hash))
        self._cached: set[int] = set()  # ids of the live connections already put in the cache
        self.add_candidates(self.peer_cache.addresses)

    @property
    def metainfo(self) -> Metainfo:
        """The torrent as now known (with the info dict once a magnet's metadata arrived). The swarm core
        owns it: it is what completes a magnet's."""
        return self.swarm.meta

    meta = metainfo

    @property
    def info_hash(self) -> bytes:
        return self.meta.info_hash

    @property
    def name(self) -> str:
        return self.meta.name

    def magnet(self, peers: Iterable[str] = ()) -> str:
        return magnet_of(self.meta, peers=tuple(peers))

    def add_candidates(self, b32s: Iterable[str]) -> None:
        """Addresses (from a tracker, a magnet, PEX) the engine may dial for this torrent."""
        for b in b32s:
            if len(self.candidates) >= MAX_CANDIDATES:
                break
            self.candidates[b.lower()] = None
        self._engine._dial_now(self)  # not at the next tick: a new peer is worth a second

    # -- storage ---------------------------------------------------------------------------------

    async def _open_store(self) -> None:
        ti = self.meta.torrent_info()
        store = PieceStore(self.handle, ti, cache_bytes=self._engine.cache_bytes)
        self.store = store
        self._checking = True
        try:
            await store.wait_checked()
        finally:
            self._checking = False
        self.swarm.pieces_ready(store, self._wanted_bits(ti))
        self._apply_urgent()

    def _wanted_bits(self, ti: lt.torrent_info) -> int | None:
        if self.selected_files is None:
            return None
        fs = ti.layout()
        paths = {fs.file_path(i).replace(os.sep, "/"): i for i in range(fs.num_files())}
        chosen: set[int] = set()
        for f in self.selected_files:
            idx = f if isinstance(f, int) else paths.get(str(f).replace(os.sep, "/"))
            if idx is None or not 0 <= idx < fs.num_files():
                raise MetainfoError(f"no such file in the torrent: {f!r}")
            chosen.add(idx)
        self.handle.prioritize_files([4 if i in chosen else 0 for i in range(fs.num_files())])
        plen, bits = ti.piece_length(), 0
        for i in chosen:
            size = fs.file_size(i)
            if size:
                first, last = fs.file_offset(i) // plen, (fs.file_offset(i) + size - 1) // plen
                bits |= ((1 << (last - first + 1)) - 1) << first
        return bits

    async def _install_metadata(self, meta: Metainfo) -> None:
        """A magnet's info dict arrived (verified against the info-hash): libtorrent takes it over."""
        assert meta.info_bytes is not None
        if not self.handle.status().has_metadata:
            self.handle.set_metadata(meta.info_bytes)
        await self._open_store()
        self._engine._request_resume_save(self)

    def _on_alert(self, alert: Any) -> None:
        if self.store is not None:
            self.store.on_alert(alert)
        if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
            self._error_posted = True
        if isinstance(alert, lt.save_resume_data_alert):
            data = bytes(lt.write_resume_data_buf(alert.params))
            self._settle_resume(data)
        elif isinstance(alert, lt.save_resume_data_failed_alert):
            self._settle_resume(None)
        elif isinstance(alert, lt.piece_finished_alert):
            for f in self._piece_waiters.pop(alert.piece_index, []):
                if not f.done():
                    f.set_result(None)
        elif isinstance(alert, (lt.storage_moved_alert, lt.storage_moved_failed_alert)):
            waiters, self._moved_waiters = self._moved_waiters, []
            failed = isinstance(alert, lt.storage_moved_failed_alert)
            for f in waiters:
                if not f.done():
                    f.set_exception(StorageError(alert.message())) if failed else f.set_result(None)
        elif isinstance(alert, lt.torrent_checked_alert):
            waiters, self._checked_waiters = self._checked_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    def _settle_resume(self, data: bytes | None) -> None:
        waiters, self._resume_waiters = self._resume_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(data)

    async def save_resume(self, timeout: float = 30.0) -> bool:
        """Ask libtorrent for resume data (flushing its write cache) and store it; True when written."""
        if not self.handle.is_valid():
            return False
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._resume_waiters.append(fut)
        self.handle.save_resume_data(lt.torrent_handle.save_info_dict | lt.torrent_handle.flush_disk_cache)
        try:
            data = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        if data is None:
            return False
        self._engine._write_resume(self.info_hash, data)
        return True

    # -- user API --------------------------------------------------------------------------------

    def status(self) -> TorrentStatus:
        sw = self.swarm.core
        picker = sw.picker
        peers = sw.handshaken()
        done = picker.num_have if picker else 0
        total = picker.num_pieces if picker else 0
        wanted_total = total
        if picker is not None and self.selected_files is not None:
            wanted_total = picker.wanted_bits.bit_count()
            done = (picker.wanted_bits & picker.have_bits).bit_count()
        if sw.paused:
            state = "paused"
        elif picker is None and not self._checking:
            state = "metadata"
        elif self._checking:
            state = "checking"
        elif sw.all_verified:
            state = "seeding"
        else:
            state = "downloading"
        return TorrentStatus(
            name=self.name, info_hash=self.info_hash.hex(), state=state,
            progress=(done / wanted_total) if wanted_total else 0.0, pieces_done=done, pieces_total=total,
            download_rate=sum(p.down.rate for p in peers), upload_rate=sum(p.up.rate for p in peers),
            peers=len(peers), downloaded=sw.stats.bytes_received,
            uploaded=sw.uploaded,
            total_size=self.store.total_size if self.store else 0, stats=sw.stats, error=self.error,
            warning=self._engine.warnings(self.info_hash) if self._engine.warnings else None)

    @property
    def error(self) -> str | None:
        """libtorrent's storage error for this torrent, if it has one. libtorrent posts an alert whenever
        it sets one, so its status (a call into its thread: slow, and asked of every torrent by a
        torrent-get) is read only after such an alert."""
        if self.store is not None and self.store.error:
            return self.store.error
        if self._error_posted and self.handle.is_valid():
            errc = self.handle.status().errc
            if errc.value():
                return str(errc.message())
        return None

    async def wait_complete(self) -> None:
        """Every wanted piece verified by libtorrent and flushed to the files."""
        await self.swarm.complete.wait()

    async def wait_metadata(self) -> None:
        await self.swarm.metadata_ready.wait()

    def pause(self) -> None:
        self.swarm.pause()

    def set_rate_limits(self, download_rate: int | None = None, upload_rate: int | None = None,
                        honors_engine: bool | None = None) -> None:
        """This torrent's own limits in bytes/s (0 = none), and whether the engine-wide ones cover it too
        (Transmission's honorsSessionLimits). They apply at once, waiting peers included."""
        self.limits.set(download_rate, upload_rate)
        if honors_engine is not None:
            self.limits.honors_parent = honors_engine

    def resume(self) -> None:
        """Also how a user retries after a storage error (space freed, permissions fixed)."""
        self.swarm.resume()
        if self.error is not None:
            if self.store is not None:
                self.store.error = None
            if self.handle.is_valid():
                self.handle.clear_error()
            self._error_posted = False

    # -- streaming -------------------------------------------------------------------------------

    def prioritize(self, reader: object, pieces: Sequence[int]) -> None:
        """A reader (an open stream) needs these pieces next, in this order: they are fetched first,
        interleaved with other readers' needs; an empty list drops the reader."""
        if pieces:
            self._urgent[reader] = list(pieces)
        else:
            self._urgent.pop(reader, None)
        self._apply_urgent()

    def _apply_urgent(self) -> None:
        picker = self.swarm.core.picker
        if picker is None:
            return
        lists = list(self._urgent.values())
        merged = [p for rank in range(max((len(x) for x in lists), default=0))
                  for x in lists if rank < len(x) for p in (x[rank],)]
        picker.set_urgent(dict.fromkeys(merged))

    def _fail_piece_waiters(self) -> None:
        waiters, self._piece_waiters = self._piece_waiters, {}
        for futs in waiters.values():
            for f in futs:
                if not f.done():
                    f.set_exception(StorageError("torrent removed"))
                    f.exception()  # retrieved: its waiter may have gone

    async def wait_piece(self, piece: int) -> None:
        """Until the piece is verified and readable (PieceStore.read_piece); StorageError once removed."""
        while True:
            store = self.store
            if store is not None and store.have(piece):
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._piece_waiters.setdefault(piece, []).append(fut)
            if store is not None and store.have(piece):  # verified meanwhile
                continue
            await fut

    def select_files(self, selected: Sequence[int | str] | None) -> None:
        """Change which files download (None: all of them); verified pieces stay. Before a magnet's
        metadata arrives the choice is kept and applied then."""
        self.selected_files = list(selected) if selected is not None else None
        store = self.store
        if store is None:
            return
        ti = self.swarm.meta.torrent_info()
        bits = self._wanted_bits(ti)
        if bits is None:
            self.handle.prioritize_files([4] * ti.layout().num_files())
        self._restart_swarm_on(store, bits)

    def _restart_swarm_on(self, store: PieceStore, wanted: int | None) -> None:
        """The swarm takes the store anew (a fresh picker from the verified pieces): after a new file
        choice or a recheck, a torrent that was complete may not be any more."""
        self.swarm.pieces_ready(store, wanted)
        self._apply_urgent()
        core = self.swarm.core
        if core.picker is not None and not core.picker.complete and core.all_verified:
            core.all_verified = False
            self.swarm.complete.clear()

    async def verify(self, timeout: float = 3600.0) -> None:
        """Check every piece on disk again (libtorrent's recheck); pieces that fail are fetched anew."""
        if self.store is None:
            return
        was_paused = self.swarm.core.paused
        self.pause()
        checked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._checked_waiters.append(checked)
        self._checking = True
        try:
            self.handle.force_recheck()
            await asyncio.wait_for(checked, timeout)
            old = self.store
            ti = self.swarm.meta.torrent_info()
            store = PieceStore(self.handle, ti, cache_bytes=self._engine.cache_bytes)
            await store.wait_checked()
            self.store = store
            await old.close()
            self._restart_swarm_on(store, self._wanted_bits(ti))
        finally:
            self._checking = False
            if not was_paused:
                self.resume()

    async def move_storage(self, path: Path | str, move: bool, timeout: float = 3600.0) -> None:
        """Keep the data at `path` from now on. move: libtorrent moves the files there (pieces stay
        verified); else the files are looked for there and every piece is checked again (verify)."""
        target = Path(path).resolve()
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._moved_waiters.append(moved)
        flags = lt.move_flags_t.always_replace_files if move else lt.move_flags_t.reset_save_path
        self.handle.move_storage(str(target), flags)
        await asyncio.wait_for(moved, timeout)
        self.save_path = target
        self._engine._request_resume_save(self)
        if not move:
            await self.verify()

    # -- dialing ---------------------------------------------------------------------------------

    @property
    def peer_sources_left(self) -> bool:
        """A connected peer, a dial under way, or a known address whose last dial did not fail."""
        return bool(self.swarm.peers or self._dialing or any(b not in self._backoff for b in self.candidates))

    def retry_dials(self) -> None:
        """Forget dial backoff and dial now: the way out (our SAM session) was replaced, so failures
        before it say nothing about the peers."""
        self._backoff.clear()
        self._seed_dials.clear()
        self._engine._dial_now(self)

    def _remember_peers(self) -> None:
        """Peers that completed a handshake go to the front of the peer cache (once per connection)."""
        current = {id(ps): ps for ps in self.swarm.core.handshaken()}
        for key, ps in current.items():
            if key not in self._cached:
                self.peer_cache.seen(ps.remote)
        self._cached = set(current)

    def _save_peer_cache(self) -> None:
        if self.peer_cache.changed:
            try:
                self.peer_cache.save(self._engine._peers_path(self.info_hash))
            except OSError as exc:
                log.warning("cannot write the peer cache of %s: %s", self.name, exc)

    def _dial_due(self, now: float, dial: Dialer, own: set[str]) -> None:
        """Dial the candidates not connected, not failing, not dialled now. A seed dials too, as libtorrent
        does: a leecher that announced before it heard of no seed and would otherwise wait out its
        tracker's interval (600 s on ours); it skips known seeds and dials each address at most once per
        SEED_REDIAL, so a leecher that drops it is not dialled every tick."""
        sw = self.swarm.core
        if sw.paused or sw.closed:
            return
        seeding = sw.all_verified and self.swarm.metadata_ready.is_set()
        for b32 in list(self.candidates):
            if len(self._dialing) >= DIAL_CONCURRENCY or len(sw.peers) + len(self._dialing) >= sw.max_peers:
                return
            if b32 in own or b32 in sw.banned or b32 in self._dialing or sw.connected_to(b32):
                continue
            nxt, _ = self._backoff.get(b32, (0.0, 0.0))
            if now < nxt:
                continue
            if seeding:
                if b32 in sw.known_seeds or now < self._seed_dials.get(b32, -SEED_REDIAL) + SEED_REDIAL:
                    continue
                self._seed_dials[b32] = now
            self._dialing.add(b32)
            asyncio.get_running_loop().create_task(self._dial(b32, dial))

    async def _dial(self, b32: str, dial: Dialer) -> None:
        try:
            stream = await dial(b32)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            _, prev = self._backoff.get(b32, (0.0, 0.0))
            wait = min(DIAL_BACKOFF_MAX, max(DIAL_BACKOFF_MIN, prev * 2))
            self._backoff[b32] = (time.monotonic() + wait, wait)
            log.info("dial %s failed (%s); next try in %.0f s", b32[:12], e, wait)
            return
        finally:
            self._dialing.discard(b32)
        self._backoff.pop(b32, None)
        if self.swarm.attach(stream, outgoing=True) is None:
            return


class Engine:
    """Storage (libtorrent) + our swarms. See the package docstring for the API."""

    def __init__(self, data_dir: Path | str, dial: Dialer | None = None, own_addresses: Iterable[str] = (),
                 max_peers: int = MAX_PEERS, cache_bytes: int = 16 * 1024 * 1024,
                 peer_id: bytes | None = None, download_rate: int = 0, upload_rate: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.limits = RateLimits()
        self.limits.set(download_rate, upload_rate)
        self.dial = dial
        self.own_addresses = {a.lower() for a in own_addresses}
        self.max_peers = max_peers
        self.cache_bytes = cache_bytes
        self.peer_id = peer_id or new_peer_id()
        self.session: lt.session | None = None
        self._pump: AlertPump | None = None
        self._torrents: dict[bytes, Torrent] = {}
        self._tick_task: asyncio.Task[None] | None = None
        self.warnings: Callable[[bytes], str | None] | None = None
        """Set by the owner (the Client): a line for TorrentStatus.warning, per info-hash."""
        self._last_resume_save = 0.0
        self._resume_due: set[bytes] = set()
        self._unclean = False

    def set_rate_limits(self, download_rate: int | None = None, upload_rate: int | None = None) -> None:
        """Engine-wide limits in bytes/s (0 = unlimited; else at least 1 KiB/s): downloads count every byte
        read from peers, uploads the block payload sent. They apply at once, waiting peers included."""
        self.limits.set(download_rate, upload_rate)

    @property
    def torrents(self) -> list[Torrent]:
        return list(self._torrents.values())

    def get(self, info_hash: bytes) -> Torrent | None:
        return self._torrents.get(info_hash)

    @property
    def _resume_dir(self) -> Path:
        return self.data_dir / "resume"

    @property
    def _running_marker(self) -> Path:
        return self.data_dir / "engine.running"

    async def start(self) -> None:
        if self.session is not None:
            return
        private_dir(self._resume_dir)
        # resume data written before a crash may predate pieces verified since: after an unclean stop,
        # libtorrent re-checks the files instead of trusting it (a verified piece is never fetched twice)
        self._unclean = self._running_marker.exists()
        self._running_marker.touch()
        self._last_resume_save = time.monotonic()
        # the complete anonymous pack goes to the constructor: defaults would open sockets at once
        self.session = lt.session(anonymous_settings())
        self._pump = AlertPump(self.session)
        self._pump.start()
        self._tick_task = asyncio.get_running_loop().create_task(self._ticker())

    def _require(self) -> lt.session:
        if self.session is None:
            raise EngineError("engine not started")
        return self.session

    # -- torrents --------------------------------------------------------------------------------

    async def add(self, torrent: Metainfo | str | bytes | os.PathLike[str], save_path: Path | str,
                  selected_files: Sequence[int | str] | None = None) -> Torrent:
        """Add a torrent (Metainfo, magnet, .torrent bytes or path); resumes from saved state if any."""
        session = self._require()
        meta = as_metainfo(torrent)
        existing = self._torrents.get(meta.info_hash)
        if existing is not None:
            existing.add_candidates(meta.peers)
            return existing
        save = Path(save_path).resolve()
        save.mkdir(parents=True, exist_ok=True)
        atp = self._load_resume(meta.info_hash)
        if atp is not None and self._unclean:
            # its piece list may be stale: keep only the info dict and let libtorrent check the files
            fresh = lt.add_torrent_params()
            if atp.ti is not None and atp.ti.is_valid():
                fresh.ti = atp.ti
            atp = fresh
        if atp is None:
            atp = lt.add_torrent_params()
        if meta.has_metadata:
            atp.ti = meta.torrent_info()
        elif atp.ti is not None and atp.ti.is_valid():
            meta = meta.with_info(bytes(atp.ti.info_section()))  # a magnet finished in an earlier run
        else:
            atp.info_hashes = lt.info_hash_t(lt.sha1_hash(meta.info_hash))
            atp.name = meta.name
        atp.save_path = str(save)
        # libtorrent announces, seeds from URLs and finds peers by itself only through these: none
        atp.trackers = []
        atp.url_seeds = []
        atp.dht_nodes = []
        atp.peers = []
        atp.flags = (atp.flags & ~TORRENT_FLAGS_OFF) | TORRENT_FLAGS_ON
        try:
            handle = session.add_torrent(atp)
        except RuntimeError as e:
            raise EngineError(f"libtorrent refused the torrent: {e}") from None
        t = Torrent(self, meta, handle, save, selected_files)
        self._torrents[meta.info_hash] = t
        assert self._pump is not None
        self._pump.subscribe(meta.info_hash, t._on_alert)
        if meta.has_metadata:
            try:
                await t._open_store()
            except BaseException:
                await self.remove(t)
                raise
        return t

    def _peers_path(self, info_hash: bytes) -> Path:
        return self._resume_dir / f"{info_hash.hex()}.peers"

    def _load_resume(self, info_hash: bytes) -> lt.add_torrent_params | None:
        path = self._resume_dir / f"{info_hash.hex()}.resume"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("cannot read resume data %s: %s", path, e)
            return None
        try:
            atp = lt.read_resume_data(data)
        except RuntimeError as e:  # corrupt: libtorrent checks the files instead, nothing is lost
            log.warning("ignoring bad resume data %s: %s", path, e)
            return None
        if atp.info_hashes.v1.to_bytes() != info_hash:
            log.warning("resume data %s is for another torrent; ignored", path)
            return None
        return atp

    def _write_resume(self, info_hash: bytes, data: bytes) -> None:
        write_private(self._resume_dir / f"{info_hash.hex()}.resume", data, durable=True)
        t = self._torrents.get(info_hash)
        if t is not None:
            t._save_peer_cache()

    def _request_resume_save(self, t: Torrent) -> None:
        self._resume_due.add(t.info_hash)

    async def remove(self, t: Torrent, delete_resume: bool = True) -> None:
        """Stop a torrent: peers closed, libtorrent forgets it (the downloaded files stay)."""
        self._torrents.pop(t.info_hash, None)
        t._fail_piece_waiters()
        t._remember_peers()
        t.swarm.close()
        if t.store is not None:
            await t.store.close()
        if self._pump is not None:
            self._pump.unsubscribe(t.info_hash)
        if self.session is not None and t.handle.is_valid():
            self.session.remove_torrent(t.handle)
        if delete_resume:
            for path in (self._resume_dir / f"{t.info_hash.hex()}.resume", self._peers_path(t.info_hash)):
                path.unlink(missing_ok=True)
        else:
            t._save_peer_cache()

    # -- peers -----------------------------------------------------------------------------------

    def _dial_now(self, t: Torrent) -> None:
        if self.dial is None or self.session is None or t.info_hash not in self._torrents:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # called outside the loop: the next tick dials
            return
        t._dial_due(time.monotonic(), self.dial, self.own_addresses)

    async def add_peer(self, t: Torrent, stream: ByteStream) -> bool:
        """Run the peer wire over a stream we opened; False if the torrent refused it (ban, limits)."""
        return t.swarm.attach(stream, outgoing=True) is not None

    async def handle_incoming(self, stream: ByteStream) -> bool:
        """An accepted stream: read its handshake's info-hash, hand it to that torrent, else close it."""
        buf = b""
        try:
            async with asyncio.timeout(INCOMING_HANDSHAKE_TIMEOUT):
                while len(buf) < INFO_HASH_END:
                    chunk = await stream.read(INFO_HASH_END - len(buf))
                    if not chunk:
                        break
                    buf += chunk
                    peek_info_hash(buf)  # raises early on garbage
            ih = peek_info_hash(buf) if len(buf) >= INFO_HASH_END else None
        except (ProtocolError, TimeoutError, ConnectionError, OSError) as e:
            log.debug("incoming from %s dropped: %s", stream.remote[:12], e)
            ih = None
        t = self._torrents.get(ih) if ih is not None else None
        if t is None:
            await stream.close()
            return False
        return t.swarm.attach(stream, outgoing=False, initial=buf) is not None

    # -- background ------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for t in list(self._torrents.values()):
                try:
                    t._remember_peers()
                    if self.dial is not None:
                        t._dial_due(now, self.dial, self.own_addresses)
                except Exception:
                    log.exception("dialing failed for %s", t.name)
            periodic = now - self._last_resume_save >= RESUME_SAVE_INTERVAL
            if periodic or self._resume_due:
                due, self._resume_due = self._resume_due, set()
                if periodic:
                    self._last_resume_save = now
                    due |= {ih for ih, t in self._torrents.items() if t.handle.need_save_resume_data()}
                    for t in self._torrents.values():
                        t._save_peer_cache()
                for ih in due:
                    t = self._torrents.get(ih)
                    if t is not None:
                        asyncio.get_running_loop().create_task(t.save_resume())

    async def save_all_resume(self) -> None:
        await asyncio.gather(*(t.save_resume() for t in self._torrents.values()), return_exceptions=True)

    async def close(self, save_resume: bool = True) -> None:
        """Save resume data, drop every peer, shut libtorrent down."""
        if self.session is None:
            return
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        for t in self._torrents.values():
            t._remember_peers()
            t.swarm.close()
        if save_resume:
            await self.save_all_resume()
        torrents = list(self._torrents.values())
        for t in torrents:
            await self.remove(t, delete_resume=False)
        # see every peer stream's close through (bounded by CLOSE_TIMEOUT each), so that a stopping client
        # does not end its loop under them ("Task was destroyed but it is pending!", the peer never told);
        # only here, at shutdown: removing one torrent does not wait
        closing = set().union(*(t.swarm.closing for t in torrents))
        if closing:
            await asyncio.wait(closing, timeout=CLOSE_TIMEOUT + 1.0)
        if self._pump is not None:
            self._pump.close()
            self._pump = None
        if save_resume:
            self._running_marker.unlink(missing_ok=True)
        holder = [self.session]
        self.session = None
        await asyncio.get_running_loop().run_in_executor(None, _destroy_session, holder)


def _destroy_session(holder: list[lt.session]) -> None:
    """libtorrent joins its threads when the session object goes; let that happen off the event loop."""
    session = holder.pop()
    session.pause()
    del session
