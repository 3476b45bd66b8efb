"""The Transmission RPC as a sans-I/O core: a parsed JSON request in, a JSON-ready reply out.

It speaks the protocol transmission-remote 3.x/4.0, stig and transmission-rpc use (rpc-version 17,
kebab/camelCase names), and reaches the daemon only through the small `Backend` interface, so every rule
here is testable with a fake backend and no sockets. HTTP (session id, auth, Host check) is the adapter's.

A request that cannot be carried out (unknown method, unknown or unsupported argument, bad value, a
torrent we do not hold) gets the protocol's answer: `result` set to a one-line error, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from i2ptorrent.daemon.prefs import KB, PrefsError, SessionPrefs, TorrentPrefs
from i2ptorrent.daemon.prefs import labels as prefs_labels

log = logging.getLogger(__name__)

RPC_VERSION = 17
RPC_VERSION_MINIMUM = 14
RPC_VERSION_SEMVER = "5.3.0"
MAX_IDS = 100_000
MAX_METAINFO = 64 * 1024 * 1024  # as the engine allows
RECENTLY_REMOVED = 1000  # ids of removed torrents kept for `recently-active`
VIEW_TICK = 1.0  # a torrent's view is taken at most once a tick: the engine's rates change once a second
MAX_CACHED_ROWS = 20_000
READ_ONLY = frozenset({"torrent-get", "session-get", "session-stats", "free-space", "port-test",
                       "i2ptorrent-node"})  # every other method may change what views show

# status numbers (transmission.h tr_torrent_activity)
STOPPED, CHECK_WAIT, CHECK, DOWNLOAD_WAIT, DOWNLOAD, SEED_WAIT, SEED = range(7)
_STATUS = {"paused": STOPPED, "checking": CHECK, "metadata": DOWNLOAD, "downloading": DOWNLOAD, "seeding": SEED}


class RpcError(Exception):
    """A request refused; the message becomes the reply's `result`."""


@dataclass(frozen=True)
class FileView:
    name: str  # '/'-separated, as in the torrent
    length: int
    done: int  # bytes of verified pieces that fall in this file
    wanted: bool
    first_piece: int
    last_piece: int


@dataclass(frozen=True)
class TorrentView:
    """What the RPC needs to know of one torrent, taken at one moment by the backend."""

    info_hash: str  # hex
    name: str
    state: str  # TorrentStatus.state
    progress: float  # of the wanted pieces
    pieces_done: int
    pieces_total: int
    piece_size: int
    download_rate: float
    upload_rate: float
    peers: int
    downloaded: int
    uploaded: int
    total_size: int  # 0 until a magnet's metadata arrives
    wanted_size: int
    have_size: int  # verified bytes of the wanted pieces
    save_path: str
    magnet: str
    added: float  # unix time
    error: str | None = None
    has_metadata: bool = True
    private: bool = False
    trackers: tuple[str, ...] = ()
    files: tuple[FileView, ...] | None = None  # only in a detailed view
    pieces_bits: bytes | None = None  # only in a detailed view: BitTorrent bitfield (MSB first)
    prefs: TorrentPrefs = field(default_factory=TorrentPrefs)  # limits, seed limits, labels
    eta_idle: int = -1  # seconds until the idle seed limit stops it


@dataclass(frozen=True)
class FileChoice:
    """files-wanted / files-unwanted: an empty list means every file (the protocol's shorthand)."""

    wanted: tuple[int, ...] = ()
    unwanted: tuple[int, ...] = ()
    all_wanted: bool = False
    all_unwanted: bool = False

    def apply(self, current: Sequence[bool]) -> list[bool]:
        out = list(current)
        if self.all_wanted:
            out = [True] * len(out)
        if self.all_unwanted:
            out = [False] * len(out)
        for flag, indices in ((True, self.wanted), (False, self.unwanted)):
            for i in indices:
                if i >= len(out):
                    raise RpcError(f"no file {i} in this torrent ({len(out)} files)")
                out[i] = flag
        return out

    @classmethod
    def parse(cls, args: dict[str, Any]) -> "FileChoice | None":
        if "files-wanted" not in args and "files-unwanted" not in args:
            return None
        wanted = _ids_list(args.get("files-wanted"), "files-wanted") if "files-wanted" in args else None
        unwanted = _ids_list(args.get("files-unwanted"), "files-unwanted") if "files-unwanted" in args else None
        return cls(tuple(wanted or ()), tuple(unwanted or ()), wanted == [], unwanted == [])


@dataclass(frozen=True)
class AddSource:
    magnet: str | None = None
    metainfo: bytes | None = None
    path: str | None = None


class Backend(Protocol):
    """The daemon as the RPC sees it. Raises RpcError (or any exception) for a request it refuses."""

    def hashes(self) -> list[str]: ...

    def view(self, info_hash: str, detail: bool) -> TorrentView: ...

    async def add(self, source: AddSource, download_dir: str | None, paused: bool,
                  files: FileChoice | None, labels: list[str]) -> tuple[TorrentView, bool]:
        """-> (the torrent, True when it was already there)"""

    def start(self, info_hash: str) -> None: ...

    def stop(self, info_hash: str) -> None: ...

    async def remove(self, info_hash: str, delete_data: bool) -> None: ...

    async def verify(self, info_hash: str) -> None: ...

    def set_wanted(self, info_hash: str, files: FileChoice) -> None: ...

    def set_prefs(self, info_hash: str, changes: dict[str, Any]) -> None:
        """Change a torrent's settings (prefs.TorrentPrefs names); PrefsError for a value refused."""

    async def set_location(self, info_hash: str, path: str, move: bool) -> None: ...

    def session_prefs(self) -> SessionPrefs: ...

    def set_session_prefs(self, changes: dict[str, Any]) -> None: ...

    def limits(self) -> tuple[int, int]:
        """(download, upload) in bytes/s, 0 = unlimited"""

    def set_limits(self, download: int | None, upload: int | None) -> None: ...

    def download_dir(self) -> str: ...

    def set_download_dir(self, path: str) -> None: ...

    def free_space(self, path: str) -> tuple[int, int]:
        """(free, total) bytes"""

    def node(self) -> dict[str, Any]:
        """Our .b32, the router's state, the tracker's swarms: what the web page shows."""

    def close_session(self) -> None:
        """Stop the daemon (resume data saved), as `i2ptorrent stop`."""


# ---- torrent-get fields ------------------------------------------------------------------------

def _eta(v: TorrentView) -> int:
    left = v.wanted_size - v.have_size
    if v.state in ("paused", "seeding") or left <= 0:
        return -1  # not available
    if v.download_rate <= 0:
        return -2  # unknown
    return int(math.ceil(left / v.download_rate))


def _file_list(v: TorrentView) -> tuple[FileView, ...]:
    return v.files or ()


def _error(v: TorrentView) -> int:
    return 3 if v.error else 0  # 3 = local error (storage)


_F = Callable[[TorrentView, int, float], Any]
DETAIL_FIELDS = {"files", "fileStats", "wanted", "priorities", "pieces", "availability", "file-count",
                 "desiredAvailable"}

FIELDS: dict[str, _F] = {
    "activityDate": lambda v, i, now: int(now) if v.download_rate or v.upload_rate else int(v.added),
    "addedDate": lambda v, i, now: int(v.added),
    "availability": lambda v, i, now: [],
    "bandwidthPriority": lambda v, i, now: 0,
    "comment": lambda v, i, now: "",
    "corruptEver": lambda v, i, now: 0,
    "creator": lambda v, i, now: "",
    "dateCreated": lambda v, i, now: 0,
    "desiredAvailable": lambda v, i, now: v.wanted_size - v.have_size if v.peers else 0,
    "doneDate": lambda v, i, now: 0,
    "downloadDir": lambda v, i, now: v.save_path,
    "downloadedEver": lambda v, i, now: v.downloaded,
    "downloadLimit": lambda v, i, now: v.prefs.down_limit // KB,
    "downloadLimited": lambda v, i, now: v.prefs.down_on,
    "editDate": lambda v, i, now: 0,
    "error": lambda v, i, now: _error(v),
    "errorString": lambda v, i, now: v.error or "",
    "eta": lambda v, i, now: _eta(v),
    "etaIdle": lambda v, i, now: v.eta_idle,
    "file-count": lambda v, i, now: len(_file_list(v)),
    "files": lambda v, i, now: [{"bytesCompleted": f.done, "length": f.length, "name": f.name,
                                 "beginPiece": f.first_piece, "endPiece": f.last_piece + 1}
                                for f in _file_list(v)],
    "fileStats": lambda v, i, now: [{"bytesCompleted": f.done, "wanted": f.wanted, "priority": 0}
                                    for f in _file_list(v)],
    "group": lambda v, i, now: "",
    "hashString": lambda v, i, now: v.info_hash,
    "haveUnchecked": lambda v, i, now: 0,
    "haveValid": lambda v, i, now: v.have_size,
    "honorsSessionLimits": lambda v, i, now: v.prefs.honors_session,
    "id": lambda v, i, now: i,
    "isFinished": lambda v, i, now: v.prefs.finished,  # stopped by its seed ratio/idle limit
    "isPrivate": lambda v, i, now: v.private,
    "isStalled": lambda v, i, now: v.state == "downloading" and v.peers == 0,
    "labels": lambda v, i, now: list(v.prefs.labels),
    "leftUntilDone": lambda v, i, now: max(0, v.wanted_size - v.have_size),
    "magnetLink": lambda v, i, now: v.magnet,
    "manualAnnounceTime": lambda v, i, now: -1,
    "maxConnectedPeers": lambda v, i, now: 0,
    "metadataPercentComplete": lambda v, i, now: 1.0 if v.has_metadata else 0.0,
    "name": lambda v, i, now: v.name,
    "peer-limit": lambda v, i, now: 0,
    "peers": lambda v, i, now: [],
    "peersConnected": lambda v, i, now: v.peers,
    "peersFrom": lambda v, i, now: {"fromCache": 0, "fromDht": 0, "fromIncoming": 0, "fromLpd": 0,
                                    "fromLtep": 0, "fromPex": 0, "fromTracker": v.peers},
    "peersGettingFromUs": lambda v, i, now: v.peers if v.upload_rate > 0 else 0,
    "peersSendingToUs": lambda v, i, now: v.peers if v.download_rate > 0 else 0,
    "percentComplete": lambda v, i, now: (v.pieces_done / v.pieces_total) if v.pieces_total else 0.0,
    "percentDone": lambda v, i, now: v.progress,
    "pieces": lambda v, i, now: base64.b64encode(v.pieces_bits or b"").decode(),
    "pieceCount": lambda v, i, now: v.pieces_total,
    "pieceSize": lambda v, i, now: v.piece_size,
    "primary-mime-type": lambda v, i, now: "application/octet-stream",
    "priorities": lambda v, i, now: [0 for _ in _file_list(v)],
    "queuePosition": lambda v, i, now: 0,
    "rateDownload": lambda v, i, now: int(v.download_rate),
    "rateUpload": lambda v, i, now: int(v.upload_rate),
    "recheckProgress": lambda v, i, now: 0.0,
    "secondsDownloading": lambda v, i, now: 0,
    "secondsSeeding": lambda v, i, now: 0,
    "seedIdleLimit": lambda v, i, now: v.prefs.idle_minutes,
    "seedIdleMode": lambda v, i, now: v.prefs.idle_mode,
    "seedRatioLimit": lambda v, i, now: v.prefs.ratio_limit,
    "seedRatioMode": lambda v, i, now: v.prefs.ratio_mode,
    "sequentialDownload": lambda v, i, now: False,
    "sizeWhenDone": lambda v, i, now: v.wanted_size,
    "startDate": lambda v, i, now: int(v.added),
    "status": lambda v, i, now: _STATUS.get(v.state, DOWNLOAD),
    "torrentFile": lambda v, i, now: "",
    "totalSize": lambda v, i, now: v.total_size,
    "trackers": lambda v, i, now: [{"announce": t, "id": n, "scrape": "", "tier": n, "sitename": ""}
                                   for n, t in enumerate(v.trackers)],
    "trackerList": lambda v, i, now: "\n\n".join(v.trackers),
    "trackerStats": lambda v, i, now: [],
    "uploadedEver": lambda v, i, now: v.uploaded,
    "uploadLimit": lambda v, i, now: v.prefs.up_limit // KB,
    "uploadLimited": lambda v, i, now: v.prefs.up_on,
    "uploadRatio": lambda v, i, now: round(v.uploaded / v.downloaded, 4) if v.downloaded else -1,
    "wanted": lambda v, i, now: [1 if f.wanted else 0 for f in _file_list(v)],
    "webseeds": lambda v, i, now: [],
    "webseedsSendingToUs": lambda v, i, now: 0,
    # fields older clients (stig, Transmission Remote GUI) may still ask for, from before rpc-version 7
    "announceResponse": lambda v, i, now: "",
    "announceURL": lambda v, i, now: v.trackers[0] if v.trackers else "",
    "downloadLimitMode": lambda v, i, now: 0,
    "uploadLimitMode": lambda v, i, now: 0,
    "lastAnnounceTime": lambda v, i, now: 0,
    "lastScrapeTime": lambda v, i, now: 0,
    "nextAnnounceTime": lambda v, i, now: 0,
    "nextScrapeTime": lambda v, i, now: 0,
    "scrapeResponse": lambda v, i, now: "",
    "scrapeURL": lambda v, i, now: "",
    "peersKnown": lambda v, i, now: v.peers,
}


# ---- session -----------------------------------------------------------------------------------

@dataclass
class SessionState:
    """What session-get reports beyond the backend: the limits' "enabled" flags and values in kB/s."""

    down_kbps: int = 100
    up_kbps: int = 100
    down_on: bool = False
    up_on: bool = False
    stats_started: float = 0.0
    files_added: int = 0


# session-get keys with a fixed value: what Transmission offers and we do not (no DHT, no ports, ...)
FIXED_SESSION: dict[str, Any] = {
    "alt-speed-down": 50, "alt-speed-enabled": False, "alt-speed-time-begin": 540,
    "alt-speed-time-day": 127, "alt-speed-time-enabled": False, "alt-speed-time-end": 1020,
    "alt-speed-up": 50, "blocklist-enabled": False, "blocklist-size": 0, "blocklist-url": "",
    "cache-size-mb": 16, "default-trackers": "", "dht-enabled": False, "download-queue-enabled": False,
    "download-queue-size": 5, "encryption": "tolerated", "incomplete-dir": "", "incomplete-dir-enabled": False,
    "lpd-enabled": False, "peer-limit-global": 200, "peer-limit-per-torrent": 50, "peer-port": 0,
    "peer-port-random-on-start": False, "pex-enabled": False, "port-forwarding-enabled": False,
    "queue-stalled-enabled": False, "queue-stalled-minutes": 30, "rename-partial-files": False,
    "script-torrent-added-enabled": False, "script-torrent-added-filename": "",
    "script-torrent-done-enabled": False, "script-torrent-done-filename": "",
    "script-torrent-done-seeding-enabled": False, "script-torrent-done-seeding-filename": "",
    "seed-queue-enabled": False, "seed-queue-size": 10,
    "start-added-torrents": True, "trash-original-torrent-files": False, "utp-enabled": False,
    "anti-brute-force-enabled": False, "anti-brute-force-threshold": 100,
}


# torrent-set / session-set argument -> prefs.py field
TORRENT_PREFS = {"downloadLimit": "down_limit", "downloadLimited": "down_on", "uploadLimit": "up_limit",
                 "uploadLimited": "up_on", "honorsSessionLimits": "honors_session",
                 "seedRatioLimit": "ratio_limit", "seedRatioMode": "ratio_mode", "seedIdleLimit": "idle_minutes",
                 "seedIdleMode": "idle_mode", "labels": "labels"}
SESSION_PREFS = {"seedRatioLimit": "ratio_limit", "seedRatioLimited": "ratio_on",
                 "idle-seeding-limit": "idle_minutes", "idle-seeding-limit-enabled": "idle_on"}


def _kbps(value: Any, key: str) -> int:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1 << 30:
        raise RpcError(f"{key}: expected a number of kB/s")
    return int(value)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise RpcError(f"{key}: expected true or false")
    return value


def _ids_list(value: Any, key: str) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_IDS or \
            not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1 << 31 for i in value):
        raise RpcError(f"{key}: expected a list of file indices")
    return value


# ---- the core ----------------------------------------------------------------------------------

@dataclass
class RpcCore:
    """Carries out one parsed request at a time against the backend; holds the session's torrent ids."""

    backend: Backend
    version: str = "i2ptorrent"
    session: SessionState = field(default_factory=SessionState)
    _ids: dict[str, int] = field(default_factory=dict)  # info-hash -> Transmission id (never reused)
    _next_id: int = 1
    _removed: list[int] = field(default_factory=list)
    _views: dict[tuple[str, bool], TorrentView] = field(default_factory=dict)
    _rows: dict[tuple[str, tuple[str, ...], str], Any] = field(default_factory=dict)  # same tick, same fields
    _views_tick: float = -1.0

    def __post_init__(self) -> None:
        down, up = self.backend.limits()
        s = self.session
        s.down_on, s.up_on = down > 0, up > 0
        if down:
            s.down_kbps = max(1, down // KB)
        if up:
            s.up_kbps = max(1, up // KB)

    async def handle(self, request: Any, now: float) -> dict[str, Any]:
        """One request (parsed JSON) -> its reply (JSON-ready)."""
        tag = request.get("tag") if isinstance(request, dict) else None
        reply: dict[str, Any] = {"arguments": {}, "result": "success"}
        if isinstance(tag, int) and not isinstance(tag, bool):
            reply["tag"] = tag
        try:
            if not isinstance(request, dict):
                raise RpcError("request is not a JSON object")
            method, args = request.get("method"), request.get("arguments", {})
            if args is None:
                args = {}
            if not isinstance(method, str) or not isinstance(args, dict):
                raise RpcError("request needs a method name and an arguments object")
            handler = self._methods().get(method)
            if handler is None:
                raise RpcError(f"method name not recognized: {method[:64]}")
            try:
                reply["arguments"] = await handler(args, now)
            finally:
                if method not in READ_ONLY:
                    self._views.clear()
                    self._rows.clear()
        except RpcError as exc:
            reply["result"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed request is answered, never ends the server
            log.info("RPC request failed: %r", exc)
            reply["result"] = str(exc) or type(exc).__name__
        return reply

    def _methods(self) -> dict[str, Callable[[dict[str, Any], float], Any]]:
        return {
            "session-get": self._session_get, "session-set": self._session_set,
            "session-stats": self._session_stats, "session-close": self._session_close,
            "torrent-get": self._torrent_get, "torrent-add": self._torrent_add,
            "torrent-start": self._start, "torrent-start-now": self._start, "torrent-stop": self._stop,
            "torrent-remove": self._remove, "torrent-verify": self._verify, "torrent-set": self._torrent_set,
            "torrent-set-location": self._set_location,
            "free-space": self._free_space, "port-test": self._port_test,
            "i2ptorrent-node": self._node,
        }

    # -- views -----------------------------------------------------------------------------------

    def _view(self, h: str, detail: bool, now: float) -> TorrentView:
        """The backend's view of a torrent, taken once per tick (many clients poll every field of every
        torrent; building a view is most of a torrent-get's cost). A request that may change a torrent
        drops them all. KeyError: the torrent is gone."""
        tick = now // VIEW_TICK
        if tick != self._views_tick:
            self._views.clear()
            self._rows.clear()
            self._views_tick = tick
        v = self._views.get((h, detail)) or (self._views.get((h, True)) if not detail else None)
        if v is None:
            v = self._views[(h, detail)] = self.backend.view(h, detail)
        return v

    # -- ids -------------------------------------------------------------------------------------

    def _id_of(self, info_hash: str) -> int:
        i = self._ids.get(info_hash)
        if i is None:
            i = self._ids[info_hash] = self._next_id
            self._next_id += 1
        return i

    def _sync_ids(self) -> list[str]:
        """The backend's torrents, each with its id; ids of torrents gone are remembered as removed."""
        held = self.backend.hashes()
        for h in held:
            self._id_of(h)
        if len(self._ids) > len(held):
            present = set(held)
            for h in [h for h in self._ids if h not in present]:
                self._removed.append(self._ids.pop(h))
            del self._removed[:-RECENTLY_REMOVED]
        return held

    def _select(self, args: dict[str, Any]) -> list[str]:
        """The `ids` argument -> info-hashes (all when absent; unknown ids are skipped, as Transmission)."""
        held = self._sync_ids()
        ids = args.get("ids")
        if ids is None or ids == "recently-active":
            return held
        if isinstance(ids, (int, str)) and not isinstance(ids, bool):
            ids = [ids]
        if not isinstance(ids, list) or len(ids) > MAX_IDS:
            raise RpcError("ids: expected a torrent id, a hash, or a list of them")
        by_id = {i: h for h, i in self._ids.items()}
        out: list[str] = []
        for x in ids:
            if isinstance(x, int) and not isinstance(x, bool):
                h = by_id.get(x)
            elif isinstance(x, str):
                h = x.lower() if x.lower() in self._ids else None
            else:
                raise RpcError("ids: expected a torrent id, a hash, or a list of them")
            if h is not None and h not in out:
                out.append(h)
        return out

    # -- torrents --------------------------------------------------------------------------------

    async def _torrent_get(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        fields = args.get("fields")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields) or len(fields) > 500:
            raise RpcError("torrent-get: fields must be a list of field names")
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise RpcError(f"torrent-get: unsupported field {unknown[0][:64]}")
        fmt = args.get("format", "objects")
        if fmt not in ("objects", "table"):
            raise RpcError("torrent-get: format must be objects or table")
        detail = bool(DETAIL_FIELDS.intersection(fields))
        getters = [(f, FIELDS[f]) for f in dict.fromkeys(fields)]
        names = tuple(name for name, _ in getters)
        rows: list[Any] = []
        for h in self._select(args):
            try:
                v = self._view(h, detail, now)  # first: it starts a new tick's caches
            except KeyError:
                continue  # removed meanwhile
            row = self._rows.get((h, names, fmt))  # a client polling the same fields: built once a tick
            if row is None:
                i = self._ids[h]
                if fmt == "table":
                    row = [g(v, i, now) for _, g in getters]
                else:
                    row = {name: g(v, i, now) for name, g in getters}
                if len(self._rows) < MAX_CACHED_ROWS:
                    self._rows[(h, names, fmt)] = row
            rows.append(row)
        if fmt == "table":
            rows.insert(0, [name for name, _ in getters])
        out: dict[str, Any] = {"torrents": rows}
        if args.get("ids") == "recently-active":
            out["removed"] = list(self._removed)
        return out

    async def _torrent_add(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        allowed = {"filename", "metainfo", "download-dir", "paused", "files-wanted", "files-unwanted",
                   "cookies", "peer-limit", "bandwidthPriority", "labels"}
        self._refuse_unknown(args, allowed, "torrent-add")
        for key in ("peer-limit", "bandwidthPriority"):
            if key in args and args[key] not in (0, [], None):
                raise RpcError(f"torrent-add: {key} is not supported")
        try:
            labels = prefs_labels(args.get("labels") or [])
        except PrefsError as exc:
            raise RpcError(f"torrent-add: {exc}") from None
        filename, metainfo = args.get("filename"), args.get("metainfo")
        if metainfo is not None:
            if not isinstance(metainfo, str) or len(metainfo) > MAX_METAINFO * 4 // 3 + 4:
                raise RpcError("torrent-add: metainfo must be a base64 .torrent")
            try:
                source = AddSource(metainfo=base64.b64decode(metainfo, validate=False))
            except (binascii.Error, ValueError):
                raise RpcError("torrent-add: metainfo is not base64") from None
        elif isinstance(filename, str) and 0 < len(filename) <= 64 * 1024:
            if filename.startswith("magnet:"):
                source = AddSource(magnet=filename)
            elif "://" in filename:
                raise RpcError("torrent-add: fetching a .torrent by URL is not supported (it would leave I2P)")
            else:
                source = AddSource(path=filename)
        else:
            raise RpcError("torrent-add: give filename (a magnet or a .torrent path) or metainfo")
        ddir = args.get("download-dir")
        if ddir is not None and (not isinstance(ddir, str) or not ddir):
            raise RpcError("torrent-add: download-dir must be a path")
        paused = _flag(args.get("paused", False), "paused")
        files = FileChoice.parse(args)
        if files is not None and source.magnet is not None:
            raise RpcError("torrent-add: choose files once the magnet's metadata is known (torrent-set)")
        self._sync_ids()  # the torrents held before get the lower ids
        view, duplicate = await self.backend.add(source, ddir, paused, files, labels)
        if not duplicate:
            self.session.files_added += 1
        key = "torrent-duplicate" if duplicate else "torrent-added"
        return {key: {"id": self._id_of(view.info_hash), "name": view.name, "hashString": view.info_hash}}

    async def _start(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        self._refuse_unknown(args, {"ids"}, "torrent-start")
        for h in self._select(args):
            self.backend.start(h)
        return {}

    async def _stop(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        self._refuse_unknown(args, {"ids"}, "torrent-stop")
        for h in self._select(args):
            self.backend.stop(h)
        return {}

    async def _remove(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        self._refuse_unknown(args, {"ids", "delete-local-data"}, "torrent-remove")
        delete = _flag(args.get("delete-local-data", False), "delete-local-data")
        if args.get("ids") is None:
            raise RpcError("torrent-remove: which torrents? (ids)")  # never "all" by omission
        for h in self._select(args):
            await self.backend.remove(h, delete)
        self._sync_ids()
        return {}

    async def _verify(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        self._refuse_unknown(args, {"ids"}, "torrent-verify")
        for h in self._select(args):
            await self.backend.verify(h)
        return {}

    async def _torrent_set(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        # priorities have no counterpart in the engine: accepted only when they ask for what is already so
        neutral = {"bandwidthPriority": 0, "sequentialDownload": False}
        self._refuse_unknown(args, {"ids", "files-wanted", "files-unwanted", *neutral, *TORRENT_PREFS},
                             "torrent-set")
        for key, value in neutral.items():
            if key in args and args[key] != value:
                raise RpcError(f"torrent-set: {key} is not supported")
        changes = {TORRENT_PREFS[k]: v for k, v in args.items() if k in TORRENT_PREFS}
        for key in ("down_limit", "up_limit"):  # kB/s -> bytes/s
            if key in changes:
                changes[key] = _kbps(changes[key], "downloadLimit" if key == "down_limit" else "uploadLimit") * KB
        files = FileChoice.parse(args)
        hashes = self._select(args)
        for h in hashes:
            if files is not None:
                self.backend.set_wanted(h, files)
            if changes:
                try:
                    self.backend.set_prefs(h, changes)
                except PrefsError as exc:
                    raise RpcError(f"torrent-set: {_rpc_names(exc, TORRENT_PREFS)}") from None
        return {}

    async def _set_location(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        self._refuse_unknown(args, {"ids", "location", "move"}, "torrent-set-location")
        location = args.get("location")
        if not isinstance(location, str) or not location.startswith("/") or "\0" in location:
            raise RpcError("torrent-set-location: location must be an absolute path")
        move = _flag(args.get("move", False), "move")
        if args.get("ids") is None:
            raise RpcError("torrent-set-location: which torrents? (ids)")
        for h in self._select(args):
            await self.backend.set_location(h, location, move)
        return {}

    # -- session ---------------------------------------------------------------------------------

    def _session_values(self) -> dict[str, Any]:
        s = self.session
        seed = self.backend.session_prefs()
        return {
            **FIXED_SESSION,
            "seedRatioLimit": seed.ratio_limit, "seedRatioLimited": seed.ratio_on,
            "idle-seeding-limit": seed.idle_minutes, "idle-seeding-limit-enabled": seed.idle_on,
            "config-dir": "", "download-dir": self.backend.download_dir(),
            "rpc-version": RPC_VERSION, "rpc-version-minimum": RPC_VERSION_MINIMUM,
            "rpc-version-semver": RPC_VERSION_SEMVER, "version": self.version, "session-id": "",
            "speed-limit-down": s.down_kbps, "speed-limit-down-enabled": s.down_on,
            "speed-limit-up": s.up_kbps, "speed-limit-up-enabled": s.up_on,
            "units": {"speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": KB,
                      "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": KB,
                      "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024},
        }

    async def _session_get(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        values = self._session_values()
        fields = args.get("fields")
        if fields is None:
            return values
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise RpcError("session-get: fields must be a list of names")
        return {f: values[f] for f in fields if f in values}

    async def _session_set(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        s = self.session
        changeable = {"download-dir", "speed-limit-down", "speed-limit-down-enabled", "speed-limit-up",
                      "speed-limit-up-enabled", *SESSION_PREFS}
        for key, value in args.items():
            if key in changeable:
                continue
            if key in FIXED_SESSION and FIXED_SESSION[key] == value:
                continue  # asks for what is already so
            raise RpcError(f"session-set: {key[:64]} is not supported")
        down_kbps = _kbps(args.get("speed-limit-down", s.down_kbps), "speed-limit-down")
        up_kbps = _kbps(args.get("speed-limit-up", s.up_kbps), "speed-limit-up")
        down_on = _flag(args.get("speed-limit-down-enabled", s.down_on), "speed-limit-down-enabled")
        up_on = _flag(args.get("speed-limit-up-enabled", s.up_on), "speed-limit-up-enabled")
        seed = {SESSION_PREFS[k]: v for k, v in args.items() if k in SESSION_PREFS}
        if seed:
            try:
                self.backend.set_session_prefs(seed)
            except PrefsError as exc:
                raise RpcError(f"session-set: {_rpc_names(exc, SESSION_PREFS)}") from None
        if "download-dir" in args:
            ddir = args["download-dir"]
            if not isinstance(ddir, str) or not ddir:
                raise RpcError("session-set: download-dir must be a path")
            self.backend.set_download_dir(ddir)
        if {"speed-limit-down", "speed-limit-down-enabled", "speed-limit-up", "speed-limit-up-enabled"} & set(args):
            if (down_on and down_kbps == 0) or (up_on and up_kbps == 0):
                raise RpcError("session-set: a speed limit of 0 would stop every transfer; disable it instead")
            self.backend.set_limits(down_kbps * KB if down_on else 0, up_kbps * KB if up_on else 0)
            s.down_kbps, s.up_kbps, s.down_on, s.up_on = down_kbps, up_kbps, down_on, up_on
        return {}

    async def _session_stats(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        views = [self._view(h, False, now) for h in self._sync_ids()]
        active = sum(1 for v in views if v.state != "paused" and (v.download_rate or v.upload_rate))
        if not self.session.stats_started:
            self.session.stats_started = now
        totals = {"uploadedBytes": sum(v.uploaded for v in views),
                  "downloadedBytes": sum(v.downloaded for v in views),
                  "filesAdded": self.session.files_added, "sessionCount": 1,
                  "secondsActive": int(now - self.session.stats_started)}
        return {"activeTorrentCount": active, "pausedTorrentCount": sum(v.state == "paused" for v in views),
                "torrentCount": len(views), "downloadSpeed": int(sum(v.download_rate for v in views)),
                "uploadSpeed": int(sum(v.upload_rate for v in views)),
                "cumulative-stats": totals, "current-stats": dict(totals)}

    async def _session_close(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        self.backend.close_session()  # the daemon saves resume data and exits (transmission-remote --exit)
        return {}

    async def _port_test(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        return {"port-is-open": False}  # no listening port: peers reach us through I2P

    async def _free_space(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        path = args.get("path")
        if not isinstance(path, str) or not path:
            raise RpcError("free-space: path must be given")
        free, total = self.backend.free_space(path)
        return {"path": path, "size-bytes": free, "total_size": total}

    async def _node(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        return self.backend.node()

    @staticmethod
    def _refuse_unknown(args: dict[str, Any], allowed: set[str], method: str) -> None:
        for key in args:
            if key not in allowed:
                raise RpcError(f"{method}: argument {key[:64]} is not supported")


def _rpc_names(exc: PrefsError, names: dict[str, str]) -> str:
    """A prefs error, in the protocol's names for the fields."""
    text = str(exc)
    for rpc, ours in names.items():
        if text.startswith(ours + ":"):
            return rpc + text[len(ours):]
    return text


_TO_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def bitfield(have: Sequence[int] | bytes, count: int) -> bytes:
    """0/1 per piece -> BitTorrent bitfield bytes (piece 0 is the high bit of the first byte); C-speed,
    as torrent-get may ask it of a thousand torrents of thousands of pieces."""
    if count <= 0:
        return b""
    padded = bytes(have[:count]) + b"\x00" * (-count % 8)
    return int(padded.translate(_TO_DIGITS), 2).to_bytes(len(padded) // 8, "big")
