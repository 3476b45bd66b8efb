"""The daemon's server half: one Client kept running, and the faces through which it is driven.

`Daemon` is the service: it carries out requests against the Client and keeps the saved torrent list
(registry.py) in step, so a restart loses nothing (torrents, their pieces and our I2P identity all live
in the data directory). A face is one way in: today the control socket (a unix socket, 0600, in the data
directory) and the browser bridge; a Transmission RPC, the web page and /stream attach here the same way.
A face calls the Daemon (or, for the bridge, the Client's API); it never reaches around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from i2ptorrent.app.disk import writable_dir
from i2ptorrent.app.errors import EXIT_DAEMON, EXIT_INPUT, EXIT_OK, UserError, classify
from i2ptorrent.app.output import Output, status_dict
from i2ptorrent.app.runtime import StopSignal, running_client, start_bridge
from i2ptorrent.config import Config
from i2ptorrent.daemon.protocol import (
    MAX_LINE, REQUEST_TIMEOUT, ControlError, Request, decode_request, reply_error, reply_ok, resolve, socket_path,
)
from i2ptorrent.daemon.prefs import KB, PrefsError, SessionPrefs, TorrentPrefs, check
from i2ptorrent.daemon.registry import Entry, Registry
from i2ptorrent.daemon.seeding import SeedSample, SeedWatch
from i2ptorrent.private_files import private_dir, write_private

if TYPE_CHECKING:
    from i2ptorrent.client import Client

log = logging.getLogger(__name__)

MAX_CLIENTS = 64
SEED_CHECK_INTERVAL = 1.0
TOTALS_SAVE_INTERVAL = 60.0
"""How often a running daemon writes its up/down totals: a crash or power loss loses at most this much."""


class Daemon:
    """Carries out control requests against a started Client and keeps the registry in step."""

    def __init__(self, client: "Client", registry: Registry, data_dir: Path) -> None:
        self.client = client
        self.registry = registry
        self.data_dir = data_dir
        self.stop = asyncio.Event()
        self.stream_url: Callable[[str, int], str] | None = None  # set while the HTTP face serves streams
        self.seed_watch = SeedWatch()
        self._loose: dict[str, TorrentPrefs] = {}  # prefs of torrents not in the registry (none saved)
        self._counted: dict[str, tuple[int, int]] = {}  # this run's (up, down) already in *_before
        self.totals_save_interval = TOTALS_SAVE_INTERVAL

    async def restore(self) -> int:
        """Re-add every saved torrent (the engine resumes each from its resume data) with its settings."""
        count = 0
        for entry in list(self.registry.entries.values()):
            try:
                t = await self.client.add(entry.source, Path(entry.save_path), selected_files=entry.selected)
            except Exception as exc:  # one bad entry must not keep the others from running
                log.warning("cannot restore %s: %s", entry.info_hash, exc)
                continue
            self._apply_prefs(t, entry.prefs)
            if entry.paused:
                t.pause()
            count += 1
        return count

    # ---- per-torrent settings and seed limits --------------------------------------------------

    def prefs_of(self, info_hash: str) -> TorrentPrefs:
        """A torrent's settings. Never changed in place (_put_prefs replaces them), so a view may hold them."""
        entry = self.registry.entries.get(info_hash)
        if entry is not None:
            return entry.prefs
        prefs = self._loose.get(info_hash)
        if prefs is None:
            prefs = self._loose[info_hash] = TorrentPrefs()
        return prefs

    def _put_prefs(self, info_hash: str, prefs: TorrentPrefs) -> None:
        entry = self.registry.entries.get(info_hash)
        if entry is not None:
            entry.prefs = prefs
        else:
            self._loose[info_hash] = prefs

    @property
    def session_prefs(self) -> SessionPrefs:
        return self.registry.session

    def set_prefs(self, t: Any, changes: dict[str, Any]) -> TorrentPrefs:
        """Change some of a torrent's settings (prefs.TorrentPrefs field names); all are checked before
        any applies, and they are saved with the torrent."""
        from i2ptorrent.engine.ratelimit import MIN_RATE

        h = t.info_hash.hex()
        new = replace(self.prefs_of(h), **{k: check(k, v) for k, v in changes.items()})
        for rate, what in ((new.download_rate, "download"), (new.upload_rate, "upload")):
            if 0 < rate < MIN_RATE or (rate == 0 and (new.down_on if what == "download" else new.up_on)):
                raise PrefsError(f"a torrent's {what} limit must be at least {MIN_RATE} bytes/s "
                                 f"({-(-MIN_RATE // KB)} kB/s), or off")
        self._put_prefs(h, new)
        self._apply_prefs(t, new)
        self.registry.save()
        return new

    def set_session_prefs(self, changes: dict[str, Any]) -> None:
        checked = {k: check(k, v) for k, v in changes.items()}
        for k, v in checked.items():
            setattr(self.registry.session, k, v)
        self.registry.save()

    @staticmethod
    def _apply_prefs(t: Any, prefs: TorrentPrefs) -> None:
        t.set_rate_limits(prefs.download_rate, prefs.upload_rate, prefs.honors_session)

    def totals(self, t: Any, st: Any = None, prefs: TorrentPrefs | None = None) -> tuple[int, int]:
        """(uploaded, downloaded) payload bytes over every run of the daemon."""
        h = t.info_hash.hex()
        st = st or t.status()
        prefs = prefs or self.prefs_of(h)
        up0, down0 = self._counted.get(h, (0, 0))
        return prefs.uploaded_before + st.uploaded - up0, prefs.downloaded_before + st.downloaded - down0

    def save_totals(self) -> None:
        """Fold this run's bytes into the saved totals (at stop, and when a seed limit stops a torrent)."""
        engine = self.client.engine
        if engine is None:
            return
        for t in engine.torrents:
            h, st = t.info_hash.hex(), t.status()
            up, down = self.totals(t, st)
            self._put_prefs(h, replace(self.prefs_of(h), uploaded_before=up, downloaded_before=down))
            self._counted[h] = (st.uploaded, st.downloaded)
        self.registry.save()

    def check_seed_limits(self, now: float) -> list[tuple[Any, str]]:
        """Stop every seeding torrent that reached its ratio or idle limit; -> (torrent, why) stopped."""
        engine = self.client.engine
        if engine is None:
            return []
        stopped = []
        for t in engine.torrents:
            h, st = t.info_hash.hex(), t.status()
            up, down = self.totals(t, st)
            sample = SeedSample(seeding=st.state == "seeding", uploaded=up, downloaded=down,
                                size_when_done=st.total_size, active=bool(st.download_rate or st.upload_rate))
            why = self.seed_watch.check(h, sample, self.prefs_of(h), self.session_prefs, now)
            if why is not None:
                stopped.append((t, why))
        for t, why in stopped:
            log.info("%s reached its seed %s limit: stopped", t.name, why)
            self.set_paused(t, True)
            h = t.info_hash.hex()
            self._put_prefs(h, replace(self.prefs_of(h), finished=True))
        if stopped:
            self.save_totals()
        return stopped

    async def run_upkeep(self) -> None:
        """Until cancelled: the seed-limit check once a second, and the up/down totals written every
        `totals_save_interval` s when they moved (stop writes them too; a killed daemon would lose the
        run's counts otherwise). A failed round is logged, not fatal."""
        saved_at = time.monotonic()
        while True:
            await asyncio.sleep(SEED_CHECK_INTERVAL)
            now = time.monotonic()
            try:
                self.check_seed_limits(now)
                if now - saved_at >= self.totals_save_interval:
                    saved_at = now
                    if self._totals_moved():
                        self.save_totals()
            except Exception:
                log.exception("daemon upkeep failed")

    def _totals_moved(self) -> bool:
        engine = self.client.engine
        if engine is None:
            return False
        return any((st.uploaded, st.downloaded) != self._counted.get(t.info_hash.hex(), (0, 0))
                   for t in engine.torrents for st in (t.status(),))

    def _torrent(self, ident: str) -> Any:
        engine = self.client.engine
        assert engine is not None
        pairs = [(t.info_hash.hex(), t.name) for t in engine.torrents]
        return engine.get(bytes.fromhex(resolve(ident, pairs)))

    def _status(self, t: Any) -> dict[str, Any]:
        d = status_dict(t.status())
        entry = self.registry.entries.get(t.info_hash.hex())
        d["save_path"] = entry.save_path if entry else str(t.save_path)
        d["magnet"] = self.client.magnet(t)
        d["tracker_error"] = self.client.tracker_errors.get(t.info_hash)
        return d

    async def execute(self, req: Request) -> bytes:
        """One request -> its reply line. Raises for a failed request (the face turns it into a reply)."""
        engine = self.client.engine
        assert engine is not None
        if req.op == "list":
            return reply_ok(torrents=[self._status(t) for t in engine.torrents])
        if req.op == "status":
            if req.torrent is None:
                return reply_ok(torrents=[self._status(t) for t in engine.torrents])
            return reply_ok(torrent=self._status(self._torrent(req.torrent)))
        if req.op in ("pause", "resume"):
            t = self._torrent(req.torrent or "")
            self.set_paused(t, req.op == "pause")
            return reply_ok(torrent=self._status(t))
        if req.op == "remove":
            t = self._torrent(req.torrent or "")
            st = self._status(t)
            await self.remove(t)
            return reply_ok(torrent=st)
        if req.op == "stop":
            self.stop.set()
            return reply_ok()
        if req.op == "limits" and req.torrent is not None:  # one torrent's own, kept with it
            t = self._torrent(req.torrent)
            changes: dict[str, Any] = {}
            for rate, on, limit in ((req.download_rate, "down_on", "down_limit"),
                                    (req.upload_rate, "up_on", "up_limit")):
                if rate is not None:
                    changes.update({on: rate > 0, **({limit: rate} if rate else {})})
            prefs = self.set_prefs(t, changes)
            return reply_ok(limits={"download_rate": prefs.download_rate, "upload_rate": prefs.upload_rate},
                            torrent=self._status(t))
        if req.op == "limits":
            engine.set_rate_limits(req.download_rate, req.upload_rate)
            return reply_ok(limits={"download_rate": int(engine.limits.download.rate),
                                    "upload_rate": int(engine.limits.upload.rate)})
        if req.op == "seed":
            path = Path(req.path or "")
            seeded = await self.client.seed(path, req.trackers)
            stored = self.data_dir / "torrents" / f"{seeded.info_hash.hex()}.torrent"  # Client.seed keeps it
            self.registry.put(Entry(seeded.info_hash.hex(), str(stored), str(path.resolve().parent)))
            return reply_ok(torrent=self._status(seeded))
        # add
        source = req.torrent_bytes if req.torrent_bytes is not None else (req.magnet or "")
        added = await self.add(source, Path(req.save_path or ""), req.selected)
        st = self._status(added)
        if self.stream_url is not None:  # `add --stream` prints it: the first chosen file
            st["stream"] = self.stream_url(added.info_hash.hex(), req.selected[0] if req.selected else 0)
        return reply_ok(torrent=st)

    # ---- what every face does to torrents (the registry kept in step) --------------------------

    async def add(self, source: bytes | str, save_path: Path, selected: Sequence[int] | None = None,
                  paused: bool = False, labels: Sequence[str] = ()) -> Any:
        """Add .torrent bytes or a magnet and remember it; adding a torrent we hold returns that one."""
        from i2ptorrent.engine import load_torrent, parse_magnet

        save = writable_dir(save_path)
        if isinstance(source, bytes):
            meta = load_torrent(source)
            kept = self.data_dir / "torrents" / f"{meta.info_hash.hex()}.torrent"
            write_private(kept, source)
            src = str(kept)
        else:
            meta = parse_magnet(source)
            src = source
        added = await self.client.add(meta, save, selected_files=selected)
        if paused:
            added.pause()
        held = self.registry.entries.get(added.info_hash.hex())
        prefs = held.prefs if held is not None else self._loose.pop(added.info_hash.hex(), None) or TorrentPrefs()
        if labels:
            prefs = replace(prefs, labels=check("labels", list(labels)))
        self.registry.put(Entry(added.info_hash.hex(), src, str(save),
                                list(selected) if selected is not None else None, paused, prefs))
        return added

    def set_paused(self, t: Any, paused: bool) -> None:
        t.pause() if paused else t.resume()
        h = t.info_hash.hex()
        if not paused:
            if self.prefs_of(h).finished:  # started again: seeds until a limit anew
                self._put_prefs(h, replace(self.prefs_of(h), finished=False))
            self.seed_watch.forget(h)
        self.registry.set_paused(t.info_hash.hex(), paused)

    def select(self, t: Any, selected: Sequence[int] | None) -> None:
        """Download only these files from now on (None: all)."""
        t.select_files(selected)
        self.registry.set_selected(t.info_hash.hex(), list(selected) if selected is not None else None)

    async def set_location(self, t: Any, path: Path, move: bool) -> None:
        """Keep the torrent's data at `path` from now on: moved there, or (move False) looked for there."""
        from i2ptorrent.engine.storage import StorageError

        writable_dir(path)
        try:
            await t.move_storage(path, move)
        except StorageError as exc:
            raise UserError(f"cannot move the data to {path}: {exc}") from None
        entry = self.registry.entries.get(t.info_hash.hex())
        if entry is not None:
            entry.save_path = str(t.save_path)
            self.registry.save()

    async def remove(self, t: Any, delete_data: bool = False) -> None:
        """Forget a torrent; with delete_data also its files (only those the torrent names)."""
        files = [Path(t.save_path) / f.path for f in t.metainfo.files] if t.metainfo.has_metadata else []
        await self.client.remove(t)
        self.registry.drop(t.info_hash.hex())
        self.seed_watch.forget(t.info_hash.hex())
        self._loose.pop(t.info_hash.hex(), None)
        self._counted.pop(t.info_hash.hex(), None)
        if delete_data:
            await asyncio.to_thread(delete_files, Path(t.save_path), files)


def delete_files(root: Path, files: list[Path]) -> None:
    """Delete a removed torrent's files, then the directories they leave empty, never above `root`."""
    root = root.resolve()
    dirs: set[Path] = set()
    for f in files:
        try:
            real = f.resolve()
            real.relative_to(root)  # a torrent's path never leaves its save directory
        except (OSError, ValueError):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            real.unlink()
        dirs.update(p for p in real.parents if p != root and root in p.parents)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty


class Face(Protocol):
    """One way into a running daemon. Faces start once the Client is up and its torrents restored, and
    close (in reverse order) before the Client does."""

    async def start(self) -> dict[str, Any]:
        """Start serving; returns what the daemon's "ready" line reports about this face."""

    async def close(self) -> None: ...


class ControlSocket:
    """The control socket face: one JSON request and one JSON reply per connection (protocol.py)."""

    def __init__(self, daemon: Daemon, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._busy = 0

    async def start(self) -> dict[str, Any]:
        self.path.unlink(missing_ok=True)  # the daemon holds the data-dir lock: any socket here is stale
        self._server = await asyncio.start_unix_server(self.handle, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o600)
        return {"socket": str(self.path)}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._busy += 1
        try:
            if self._busy > MAX_CLIENTS:
                writer.write(reply_error("daemon busy", "failed"))
                return
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
                answer = await self.daemon.execute(decode_request(line))
            except ControlError as exc:
                answer = reply_error(str(exc), exc.code)
            except (asyncio.TimeoutError, ValueError, ConnectionError) as exc:
                answer = reply_error(f"bad request: {exc or type(exc).__name__}", "input")
            except Exception as exc:  # noqa: BLE001 - a failed request must never end the daemon
                err = classify(exc)
                if err is None:
                    log.exception("control request failed")
                    answer = reply_error(f"internal error: {type(exc).__name__}: {exc}", "failed")
                else:
                    answer = reply_error(str(err), "input" if err.code == EXIT_INPUT else "failed")
            writer.write(answer)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            self._busy -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class BridgeFace:
    """The browser bridge on 127.0.0.1:port, serving the daemon's torrents to WebTorrent pages."""

    def __init__(self, client: "Client", port: int) -> None:
        self.client = client
        self.port = port
        self._bridge: Any = None

    async def start(self) -> dict[str, Any]:
        self._bridge = await start_bridge(self.client, self.port)
        return {"bridge": self._bridge.announce_url}

    async def close(self) -> None:
        if self._bridge is not None:
            await self._bridge.close()


@dataclass(frozen=True)
class HttpOptions:
    """The HTTP face (Transmission RPC, web page, streams): where it listens and who may use it."""

    port: int | None = None  # None: Transmission's 9091, or any free port (warned) when that one is taken
    bind: str = "127.0.0.1"
    auth_file: Path | None = None


def http_face(daemon: Daemon, cfg: Config, opts: HttpOptions, b32: str, sam: str) -> Any:
    """The RPC core on the Daemon, with its secrets (data_dir/daemon/http.secret, 0600)."""
    from i2ptorrent import __version__
    from i2ptorrent.daemon.backend import DaemonBackend, tracker_summary
    from i2ptorrent.daemon.guard import GuardError, new_guard
    from i2ptorrent.daemon.rpc_core import RpcCore
    from i2ptorrent.daemon.stream import StreamServer
    from i2ptorrent.daemon.web import HttpFace

    try:
        guard = new_guard(cfg.data_dir / "daemon", opts.auth_file)
    except GuardError as exc:
        raise UserError(str(exc), EXIT_INPUT) from None
    face: HttpFace

    def node() -> dict[str, Any]:
        session = daemon.client.session
        return {"b32": b32, "sam": sam, "session": "open" if session is not None and not session.closed
                else "closed", "stream_key": guard.stream_key, "stream_base": face.base_url + "/stream",
                "tracker": tracker_summary(cfg.data_dir / "tracker", time.time()),
                "tracker_note": "no tracker in this data directory (`i2ptorrent tracker` makes one)"}

    def want_file(t: Any, index: int) -> None:
        if t.selected_files is not None and index not in t.selected_files:
            daemon.select(t, sorted({*t.selected_files, index}))

    backend = DaemonBackend(daemon, cfg.download_dir, node)
    streams = StreamServer(lambda: daemon.client.engine, want_file)
    face = HttpFace(RpcCore(backend, version=f"i2ptorrent {__version__}"), guard, opts.bind, opts.port, streams)
    daemon.stream_url = face.stream_url
    return face


async def run_daemon(cfg: Config, out: Output, *, private: bool = False, invite: str | None = None,
                     bridge_port: int | None = None, http: HttpOptions | None = HttpOptions()) -> int:
    """Run until Ctrl-C/SIGTERM or a `stop` request; resume data is saved on the way out."""
    sock = socket_path(cfg.data_dir)
    if len(os.fsencode(sock)) > 100:
        raise UserError(f"data directory path too long for a control socket: {sock}", EXIT_DAEMON)
    private_dir(writable_dir(cfg.data_dir))
    with StopSignal() as stop:
        async with running_client(cfg, out, stop, private=private, invite=invite) as client:
            daemon = Daemon(client, Registry.load(cfg.data_dir / "daemon" / "torrents.json"), cfg.data_dir)
            restored = await daemon.restore()
            faces: list[Face] = [BridgeFace(client, bridge_port)] if bridge_port is not None else []
            if http is not None:
                sam = f"{client.config.sam.host}:{client.config.sam.port}"
                faces.append(http_face(daemon, cfg, http, client.b32, sam))
            faces.append(ControlSocket(daemon, sock))
            async with contextlib.AsyncExitStack() as started:
                shown: dict[str, Any] = {"bridge": None, "rpc": None, "web": None}
                for face in faces:
                    try:
                        shown.update(await face.start())
                    except OSError as exc:
                        raise UserError(f"cannot listen: {exc.strerror or exc}", EXIT_DAEMON) from None
                    started.push_async_callback(face.close)
                url = shown["bridge"]
                out.result(f"daemon running: {restored} torrent(s), I2P address {client.b32}, control {sock}"
                           + (f", browser bridge {url}" if url else "")
                           + (f", web {shown['web']}, Transmission RPC {shown['rpc']}" if shown["rpc"] else ""),
                           event="ready", socket=str(sock), b32=client.b32, torrents=restored, pid=os.getpid(),
                           bridge=url, rpc=shown["rpc"], web=shown["web"])
                seeding = asyncio.ensure_future(daemon.run_upkeep())
                waits = [asyncio.ensure_future(stop.event.wait()), asyncio.ensure_future(daemon.stop.wait())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in (*waits, seeding):
                    w.cancel()
                out.say("daemon stopping: saving resume data")
                daemon.save_totals()
    return EXIT_OK
