"""The `i2ptorrent` command: add, seed, create, info, demo, tracker, bridge, daemon and its controls.

Every user error ends as one line on stderr ("i2ptorrent: ...") and one of the exit codes below, never a
traceback (`-v` shows logs; I2PTORRENT_TRACEBACK=1 re-raises for debugging). With `--json`, results go to
stdout as JSON (one object per line for long-running commands) and errors also as {"error", "exit_code"}.

Exit codes:
    0    success (for `add`: downloaded and verified; Ctrl-C while seeding afterwards is still 0)
    1    unexpected failure (a bug: please report it with -v)
    2    usage or configuration error (bad flag, bad config file or environment value)
    3    bad input: not a magnet/.torrent, unreadable or corrupt .torrent, unknown torrent, bad tracker URL
    4    I2P unreachable: no SAM bridge answers, the router refused the session, i2pd missing
    5    filesystem: directory not writable, not enough free space, disk full, write failed
    6    daemon: none running for this data directory, or its control socket failed
    130  interrupted (Ctrl-C) before the command finished
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO, TypeVar

from i2ptorrent import __version__
from i2ptorrent.config import Config, ConfigError, load_config, open_router, parse_sam
from i2ptorrent.progress import ProgressDisplay, format_bytes, format_rate

log = logging.getLogger("i2ptorrent.cli")
T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_I2P = 4
EXIT_FS = 5
EXIT_DAEMON = 6
EXIT_INTERRUPTED = 130

NO_BRIDGE_HINT = ("start an I2P router with its SAM bridge enabled (i2pd: `[sam] enabled = true` in i2pd.conf; "
                  "Java I2P: enable SAM in the router console), pass --sam HOST:PORT, or use --private-router "
                  "for a local test router")
POLL = 0.25
JSON_PROGRESS_INTERVAL = 0.5  # --json: a {"event": "progress"} line this often while downloading


class UserError(Exception):
    """A failure the user can act on: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def classify(exc: BaseException) -> UserError | None:
    """Map the library's errors to a user message and exit code; None for a real bug."""
    from i2ptorrent.client import ClientError
    from i2ptorrent.engine import EngineError, MetainfoError
    from i2ptorrent.transport.sam import SAMError, SAMUnavailable

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, ConfigError):
        return UserError(str(exc), EXIT_USAGE)
    if isinstance(exc, (MetainfoError, ClientError)):
        return UserError(str(exc), EXIT_INPUT)
    if isinstance(exc, SAMUnavailable):
        text = str(exc)
        return UserError(text if "--private-router" in text else f"{text}: {NO_BRIDGE_HINT}", EXIT_I2P)
    if isinstance(exc, SAMError):
        return UserError(f"I2P router: {exc}", EXIT_I2P)
    if isinstance(exc, EngineError):
        return UserError(str(exc), EXIT_FAILURE)
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return UserError(f"{where}disk full", EXIT_FS)
        return UserError(f"{where}{exc.strerror or exc}", EXIT_FS)
    return None


# ---- shared helpers ---------------------------------------------------------------------------------

def writable_dir(path: Path) -> Path:
    """Create `path` if needed and prove we can write there (as root, permission bits do not tell)."""
    path = path.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".i2ptorrent-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to {path}: {exc.strerror or exc}", EXIT_FS) from None
    return path.resolve()


def check_free_space(meta: Any, out: Path, selected: Sequence[int] | None) -> None:
    """Refuse at once when the files cannot fit, rather than failing mid-download with a full disk."""
    if not meta.has_metadata:
        return
    files = meta.files
    wanted = [f for i, f in enumerate(files) if selected is None or i in selected]
    needed = 0
    for f in wanted:
        try:
            have = (out / f.path).stat().st_size
        except OSError:
            have = 0
        needed += max(0, f.size - have)
    free = shutil.disk_usage(out).free
    if needed > free:
        raise UserError(f"not enough free space in {out}: the torrent needs {format_bytes(needed)}, "
                        f"{format_bytes(free)} free", EXIT_FS)


def parse_selection(text: str) -> list[int]:
    """'1,3,5-7' (1-based, as `info` numbers the files) -> 0-based indices."""
    chosen: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,6})(?:-(\d{1,6}))?", part)
        if not m:
            raise UserError(f"--select {text!r}: expected file numbers like 1,3,5-7", EXIT_USAGE)
        lo, hi = int(m[1]), int(m[2] or m[1])
        if lo < 1 or hi < lo:
            raise UserError(f"--select {text!r}: file numbers start at 1", EXIT_USAGE)
        chosen.extend(range(lo - 1, hi))
    return sorted(set(chosen))


def check_selection(meta: Any, selected: Sequence[int] | None) -> None:
    if selected is None or not meta.has_metadata:
        return
    count = len(meta.files)
    bad = [i + 1 for i in selected if i >= count]
    if bad:
        raise UserError(f"--select: the torrent has {count} file(s), no file {bad[0]}", EXIT_INPUT)


INFO_HASH_RE = re.compile(r"(?:[0-9a-fA-F]{40}|[A-Za-z2-7]{32})")


def load_source(source: str) -> Any:
    """A magnet, a bare info-hash, or a .torrent path -> Metainfo (MetainfoError when none of these)."""
    from i2ptorrent.engine import MetainfoError, load_torrent, parse_magnet

    if source.startswith("magnet:"):
        return parse_magnet(source)
    if INFO_HASH_RE.fullmatch(source) and not Path(source).exists():
        return parse_magnet(f"magnet:?xt=urn:btih:{source}")
    path = Path(source).expanduser()
    if not path.exists():
        raise MetainfoError(f"{source}: not a magnet link, info-hash or .torrent file (no such file)")
    if path.is_dir():
        raise MetainfoError(f"{source}: is a directory, not a .torrent file (to share it: i2ptorrent seed)")
    meta = load_torrent(path)
    return meta


@contextlib.asynccontextmanager
async def i2p_router(cfg: Config, private: bool, say: Callable[[str], None]) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """(SAM address, session options): the configured bridge, or a private router we start and stop."""
    if private:
        say("starting a private I2P router (loopback only: peers on other machines cannot reach it)")
    async with open_router(None if private else cfg.sam, cfg.session_options) as found:
        yield found


class DataDirLock:
    """One process per data directory: two would share one I2P identity and one set of resume files."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 16).decode(errors="replace").strip()
            os.close(fd)
            raise UserError(f"data directory {self.path.parent} is in use by another i2ptorrent process"
                            f"{f' (pid {holder})' if holder.isdigit() else ''}: one process per data directory; "
                            f"run `i2ptorrent daemon` to handle several torrents, or pass --data-dir DIR",
                            EXIT_USAGE) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.asynccontextmanager
async def running_client(cfg: Config, args: argparse.Namespace, out: "Output",
                         stop: "StopSignal") -> AsyncIterator[Any]:
    """A started Client on the configured router (or a private one), closed (resume saved) on exit.

    Building tunnels takes 20 s to minutes: Ctrl-C meanwhile abandons the start at once (exit 130).
    """
    from i2ptorrent.client import Client, ClientConfig

    if cfg.download_rate or cfg.upload_rate:
        out.say("rate limits: download " + (format_rate(cfg.download_rate) if cfg.download_rate else "unlimited")
                + ", upload " + (format_rate(cfg.upload_rate) if cfg.upload_rate else "unlimited"))
    lock = DataDirLock(writable_dir(cfg.data_dir))
    lock.acquire()
    try:
        async with i2p_router(cfg, args.private_router, out.say) as (sam, options):
            out.say(f"connecting to I2P through SAM at {sam.host}:{sam.port} (building tunnels)...")
            client = Client(ClientConfig(data_dir=cfg.data_dir, sam=sam, session_options=options,
                                         max_peers=cfg.max_peers, download_rate=cfg.download_rate,
                                         upload_rate=cfg.upload_rate, invite=getattr(args, "invite", None)))
            try:
                await stop.guard(client.start())
            except BaseException:
                await client.close()
                raise
            try:
                out.say(f"I2P address: {client.b32}")
                yield client
            finally:
                await client.close()
    finally:
        lock.release()


class Output:
    """Where a command writes: human text on stderr (status) and stdout (results), or JSON on stdout."""

    def __init__(self, json_mode: bool, quiet: bool = False, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.json = json_mode
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.progress = ProgressDisplay(self.stderr)

    def say(self, text: str) -> None:
        """A status line for people (stderr), hidden by -q."""
        if not self.quiet:
            self.progress.message(text)

    def result(self, text: str, **data: Any) -> None:
        """A result: the text on stdout, or one JSON object with `data` in --json mode."""
        if self.json:
            self.stdout.write(json.dumps(data, default=str) + "\n")
        else:
            self.progress.finish()
            self.stdout.write(text + "\n")
        self.stdout.flush()

    def show(self, st: Any, force: bool = False) -> None:
        if not self.quiet:
            self.progress.update(st, time.monotonic(), force)


def status_dict(st: Any) -> dict[str, Any]:
    d = asdict(st)
    d.pop("stats", None)
    return d


class StopSignal:
    """SIGINT/SIGTERM set an event instead of raising, so we always close cleanly (resume data saved)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.count = 0

    def __enter__(self) -> "StopSignal":
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._fire)
        return self

    def _fire(self) -> None:
        self.count += 1
        if self.count > 1:  # a second Ctrl-C: the user wants out now
            os._exit(EXIT_INTERRUPTED)
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    async def guard(self, aw: Awaitable[T]) -> T:
        """Await `aw`, or cancel it and raise UserError(130) if a stop is requested first."""
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise UserError("interrupted", EXIT_INTERRUPTED)
        return task.result()

    async def sleep(self, seconds: float) -> bool:
        """Sleep; True if a stop was requested meanwhile."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        return self.event.is_set()


def torrent_error(t: Any) -> str | None:
    """libtorrent's storage error for a torrent (disk full, file unwritable), if it has one."""
    return t.status().error


def storage_failure(t: Any, out: Path) -> UserError | None:
    err = torrent_error(t)
    if not err:
        return None
    low = err.lower()
    if "space" in low:
        return UserError(f"{out}: disk full ({err})", EXIT_FS)
    return UserError(f"{out}: cannot write the download ({err})", EXIT_FS)


# ---- commands -----------------------------------------------------------------------------------

async def cmd_add(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    meta = load_source(args.source)
    selected = parse_selection(args.select) if args.select else None
    check_selection(meta, selected)
    dest = writable_dir(Path(args.output) if args.output else cfg.download_dir)
    check_free_space(meta, dest, selected)
    if not args.private_router:
        from i2ptorrent.daemon import try_daemon_add
        handed = await try_daemon_add(cfg, args.source, dest, selected)
        if handed is not None:
            out.result(f"added to the running daemon: {handed['info_hash']} {handed['name']}",
                       event="added", daemon=True, **handed)
            return EXIT_OK
    with StopSignal() as stop:
        async with running_client(cfg, args, out, stop) as client:
            t = await client.add(meta, dest, selected_files=selected)
            out.say(f"downloading {t.name} ({t.info_hash.hex()}) to {dest}")
            if out.json:
                out.result("", event="added", info_hash=t.info_hash.hex(), name=t.name, path=str(dest))
            metadata_checked = meta.has_metadata
            last_event = 0.0
            while True:
                st = t.status()
                out.show(st)
                if out.json and time.monotonic() - last_event >= JSON_PROGRESS_INTERVAL:
                    last_event = time.monotonic()
                    out.result("", event="progress", **status_dict(st))
                if not metadata_checked and st.state not in ("metadata",):
                    metadata_checked = True
                    check_selection(t.metainfo, selected)
                    check_free_space(t.metainfo, dest, selected)
                if (failure := storage_failure(t, dest)) is not None:
                    raise failure
                if st.state == "seeding":
                    break
                if await stop.sleep(POLL):
                    out.show(t.status(), force=True)
                    out.say("interrupted: progress saved; run the same command again to resume")
                    return EXIT_INTERRUPTED
            st = t.status()
            out.show(st, force=True)
            await t.save_resume()
            location = dest / t.name
            out.result(f"downloaded and verified ({st.pieces_total} pieces hash-checked): {location}",
                       event="complete", path=str(location), **status_dict(st))
            if args.no_seed:
                return EXIT_OK
            out.say("seeding; press Ctrl-C to stop")
            while not await stop.sleep(POLL):
                out.show(t.status())
            out.show(t.status(), force=True)
            return EXIT_OK


async def cmd_seed(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    path = Path(args.path).expanduser()
    if not path.exists():
        raise UserError(f"{args.path}: no such file or directory", EXIT_INPUT)
    trackers = list(args.tracker or [])
    for url in trackers:
        check_tracker_url(url)
    if not args.private_router:
        from i2ptorrent.daemon import try_daemon_seed
        handed = await try_daemon_seed(cfg, path, trackers)
        if handed is not None:
            out.result(handed["magnet"], event="seeding", daemon=True, **handed)
            out.say("the running daemon seeds it (see: i2ptorrent list)")
            return EXIT_OK
    with StopSignal() as stop:
        async with running_client(cfg, args, out, stop) as client:
            out.say(f"hashing {path} ...")
            t = await client.seed(path, trackers)
            magnet = client.magnet(t)
            st = t.status()
            out.result(magnet, event="seeding", magnet=magnet, info_hash=t.info_hash.hex(), name=t.name,
                       size=st.total_size, b32=client.b32, trackers=trackers)
            out.say("seeding; press Ctrl-C to stop")
            while not await stop.sleep(POLL):
                out.show(t.status())
            out.show(t.status(), force=True)
    return EXIT_OK


def cmd_create(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.engine import as_metainfo, create_torrent, magnet_of

    path = Path(args.path).expanduser()
    if not path.exists():
        raise UserError(f"{args.path}: no such file or directory", EXIT_INPUT)
    trackers = list(args.tracker or [])
    for url in trackers:
        check_tracker_url(url)
    piece_size = parse_size(args.piece_size) if args.piece_size else None
    target = Path(args.output).expanduser() if args.output else Path(path.name + ".torrent")
    if target.exists() and not args.force:
        raise UserError(f"{target}: already exists (use --force to overwrite)", EXIT_FS)
    data = create_torrent(path, trackers=trackers, piece_size=piece_size)
    tmp = target.with_name(target.name + ".part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UserError(f"cannot write {target}: {exc.strerror or exc}", EXIT_FS) from None
    meta = as_metainfo(data)
    out.result(f"created {target}\n{magnet_of(meta)}", event="created", path=str(target),
               info_hash=meta.info_hash.hex(), name=meta.name, size=meta.total_size, magnet=magnet_of(meta))
    return EXIT_OK


def check_tracker_url(url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http") or not (parts.hostname or "").endswith(".i2p"):
        raise UserError(f"tracker {url!r}: expected ws://NAME.i2p/announce or http://NAME.i2p/announce "
                        f"(i2ptorrent only uses trackers inside I2P)", EXIT_INPUT)


def parse_size(text: str, what: str = "size") -> int:
    m = re.fullmatch(r"(\d{1,10})\s*([kKmM]i?[bB]?)?", text.strip())
    if not m:
        raise UserError(f"{what} {text!r}: expected e.g. 256K or 1M", EXIT_USAGE)
    unit = (m[2] or "").lower()[:1]
    return int(m[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def parse_rate(text: str, flag: str) -> int:
    from i2ptorrent.config import MAX_RATE, MIN_RATE

    rate = parse_size(text, flag)
    if rate != 0 and not MIN_RATE <= rate <= MAX_RATE:
        raise UserError(f"{flag} {text!r}: 0 (unlimited) or from 1K to 1024G bytes/s", EXIT_USAGE)
    return rate


def cmd_info(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.engine import magnet_of

    meta = load_source(args.source)
    data: dict[str, Any] = {"info_hash": meta.info_hash.hex(), "name": meta.name,
                            "trackers": list(meta.trackers), "peers": list(meta.peers), "magnet": magnet_of(meta)}
    lines = [f"name:       {meta.name}", f"info-hash:  {meta.info_hash.hex()}"]
    if meta.has_metadata:
        files = meta.files
        data.update(size=meta.total_size, piece_length=meta.piece_length, pieces=meta.num_pieces,
                    files=[{"index": i + 1, "path": f.path, "size": f.size} for i, f in enumerate(files)])
        lines += [f"size:       {format_bytes(meta.total_size)} ({meta.total_size} bytes)",
                  f"pieces:     {meta.num_pieces} x {format_bytes(meta.piece_length)}",
                  f"files:      {len(files)}"]
        lines += [f"  {i + 1:>4}  {format_bytes(f.size):>10}  {f.path}" for i, f in enumerate(files)]
    else:
        lines.append("metadata:   not in a magnet link (fetched from peers on `add`)")
    lines += [f"tracker:    {t}" for t in meta.trackers]
    lines += [f"peer:       {p}" for p in meta.peers]
    lines.append(f"magnet:     {magnet_of(meta)}")
    out.result("\n".join(lines), **data)
    return EXIT_OK


def tracker_dir(args: argparse.Namespace, cfg: Config) -> Path:
    return Path(args.tracker_dir).expanduser().absolute() if args.tracker_dir else cfg.data_dir / "tracker"


async def cmd_tracker(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    """Run the tracker eepsite, or edit its access list (works while it runs: it re-reads the file)."""
    from i2ptorrent.tracker.access import AccessList
    from i2ptorrent.tracker.eepsite import TrackerPaths, start_tracker

    paths = TrackerPaths(tracker_dir(args, cfg))
    if args.action in ("allow", "revoke") and not args.destination:
        raise UserError(f"tracker {args.action}: which destination (NAME.b32.i2p)?", EXIT_USAGE)
    if args.action != "run":
        try:
            return tracker_access(args, out, paths, AccessList.load(paths.access))
        except ValueError as exc:  # a bad destination name or a damaged access file
            raise UserError(str(exc), EXIT_INPUT) from None
    lock = DataDirLock(writable_dir(paths.data_dir))
    lock.acquire()
    try:
        with StopSignal() as stop:
            async with i2p_router(cfg, args.private_router, out.say) as (sam, options):
                out.say(f"publishing the tracker through SAM at {sam.host}:{sam.port} (building tunnels)...")
                site = await stop.guard(start_tracker(paths.data_dir, sam, options, private=not args.open))
                try:
                    mode = "open to everyone" if args.open else \
                        "private: allowlisted destinations and invite holders only"
                    out.result(f"{site.announce_url}\n{site.http_announce_url}", event="ready", b32=site.b32,
                               announce=site.announce_url, http_announce=site.http_announce_url,
                               private=not args.open)
                    out.say(f"tracker running ({mode}); status page http://{site.b32}/ ; Ctrl-C to stop")
                    await stop.event.wait()
                    out.say(f"tracker stopping: {json.dumps(site.server.core.stats())}")
                finally:
                    await site.close()
    finally:
        lock.release()
    return EXIT_OK


def tracker_access(args: argparse.Namespace, out: Output, paths: Any, acl: Any) -> int:
    """tracker invite | allow | revoke | show: edits of the access file (no SAM needed)."""
    from i2ptorrent.transport.sam import Destination

    if args.action == "invite":
        ttl = parse_duration(args.ttl) if args.ttl else None
        token = acl.invite(ttl=ttl)
        out.result(token, invite=token, expires_in=ttl)
    elif args.action == "allow":
        name = acl.allow(args.destination)
        out.result(f"allowed {name}", allowed=name)
    elif args.action == "revoke":
        removed = acl.revoke(args.destination)
        if not removed:
            raise UserError(f"{args.destination} was not on the allowlist", EXIT_INPUT)
        out.result(f"revoked {args.destination}", revoked=args.destination)
    else:  # show
        address = Destination.load(paths.key).b32 if paths.key.exists() else None
        lines = [f"tracker:  {'ws://' + address + '/announce' if address else '(not started yet)'}",
                 f"data:     {paths.data_dir}", f"allowed:  {len(acl.allowed)}"]
        lines += [f"  {a}" for a in sorted(acl.allowed)]
        lines.append(f"invites:  {len(acl.invites)} unused")
        out.result("\n".join(lines), b32=address, allowed=sorted(acl.allowed), invites=len(acl.invites),
                   data_dir=str(paths.data_dir))
    return EXIT_OK


async def start_bridge(client: Any, port: int, new_secret: bool = False, **options: Any) -> Any:
    """The browser bridge on 127.0.0.1:port serving the client's torrents (options: see bridge.Bridge).
    Its secret is kept in the data directory, so the page the user gave its URL keeps working."""
    from i2ptorrent.bridge import SECRET_FILE, Bridge, BridgeError, load_or_create_secret

    secret = load_or_create_secret(client.config.data_dir / SECRET_FILE, renew=new_secret)
    bridge = Bridge(client, secret=secret, port=port, **options)
    try:
        await bridge.start()
    except BridgeError as exc:
        raise UserError(str(exc), EXIT_USAGE) from None
    return bridge


async def cmd_bridge(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    """Serve our torrents to browser WebTorrent apps on this machine (a loopback WebSocket tracker)."""
    if args.adopt and not args.origin:
        raise UserError("--adopt lets a page make your I2P identity seed what it chooses: "
                        "name the page that may, with --origin URL", EXIT_USAGE)
    metas = [load_source(s) for s in args.sources]
    dest = writable_dir(Path(args.output) if args.output else cfg.download_dir) if metas else None
    adopt = writable_dir(Path(args.adopt)) if args.adopt else None
    with StopSignal() as stop:
        async with running_client(cfg, args, out, stop) as client:
            for meta in metas:
                t = await client.add(meta, dest)  # type: ignore[arg-type]
                out.say(f"serving {t.name} ({t.info_hash.hex()}) from {dest}")
            bridge = await start_bridge(client, args.port, new_secret=args.new_secret, adopt_dir=adopt,
                                        allowed_origins=args.origin or None)
            try:
                out.result(bridge.announce_url, event="ready", announce=bridge.announce_url, b32=client.b32)
                out.say("give this tracker URL (it holds the bridge's secret) only to your own WebTorrent page "
                        "in a browser on this machine; Ctrl-C to stop")
                await stop.event.wait()
                out.say(f"bridge stopping: {json.dumps(bridge.stats())}")
            finally:
                await bridge.close()
    return EXIT_OK


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d{1,9})\s*([smhd]?)", text.strip())
    if not m:
        raise UserError(f"duration {text!r}: expected e.g. 3600, 30m, 12h or 7d", EXIT_USAGE)
    return float(int(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]])


async def cmd_demo(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.demo import run_demo

    return await run_demo(out, size=parse_size(args.size), via_tracker=not args.direct)


async def cmd_daemon(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.daemon import run_daemon

    return await run_daemon(args, cfg, out)


async def cmd_control(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.daemon import control_command

    return await control_command(args, cfg, out)


# ---- argument parsing -----------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is our one-line message and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see: {self.prog} --help)", EXIT_USAGE)


def build_parser() -> Parser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common options")
    S = argparse.SUPPRESS
    g.add_argument("--config", metavar="FILE", default=S, help="config file (default: "
                   "$XDG_CONFIG_HOME/i2ptorrent/config.toml)")
    g.add_argument("--data-dir", metavar="DIR", default=S, help="identity, resume data and daemon state")
    g.add_argument("--sam", metavar="HOST:PORT", default=S, help="the I2P router's SAM bridge (127.0.0.1:7656)")
    g.add_argument("--profile", choices=("network", "local"), default=S,
                   help="tunnel settings: 'network' for a real router, 'local' for a private 0-hop router")
    g.add_argument("--private-router", action="store_true", default=S,
                   help="start a private loopback-only i2pd for this command (testing: no one else can reach it)")
    g.add_argument("--download-limit", metavar="RATE", default=S,
                   help="limit all downloads to RATE bytes/s, e.g. 500K or 2M (0: unlimited; config: limits)")
    g.add_argument("--upload-limit", metavar="RATE", default=S, help="limit all uploads to RATE bytes/s")
    g.add_argument("--invite", metavar="TOKEN", default=S, help="invite token for a private tracker")
    g.add_argument("--json", action="store_true", default=S, help="machine-readable output on stdout")
    g.add_argument("-v", "--verbose", action="count", default=S, help="log to stderr (-vv: debug)")
    g.add_argument("-q", "--quiet", action="store_true", default=S, help="no progress or status lines")

    p = Parser(prog="i2ptorrent", parents=[common],
               description="A WebTorrent-compatible BitTorrent client that lives entirely inside I2P.",
               epilog="exit codes: 0 ok, 1 internal error, 2 usage/config, 3 bad torrent/magnet input, "
                      "4 I2P/SAM unreachable, 5 filesystem (unwritable, disk full), 6 daemon, 130 interrupted",
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"i2ptorrent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    a = sub.add_parser("add", parents=[common], help="download a magnet or .torrent, then seed")
    a.add_argument("source", metavar="MAGNET|FILE.torrent|INFOHASH")
    a.add_argument("-o", "--output", metavar="DIR", help="where to save (default: download_dir or the "
                   "current directory)")
    a.add_argument("--no-seed", action="store_true", help="exit once downloaded and verified")
    a.add_argument("--select", metavar="LIST", help="only these files, numbered as `info` shows (1,3,5-7)")
    a.set_defaults(run=cmd_add)

    s = sub.add_parser("seed", parents=[common], help="share a file or directory and print its magnet")
    s.add_argument("path", metavar="PATH")
    s.add_argument("--tracker", "-t", action="append", metavar="URL",
                   help="ws://NAME.b32.i2p/announce or http://... (repeatable)")
    s.set_defaults(run=cmd_seed)

    c = sub.add_parser("create", parents=[common], help="write a .torrent for a file or directory")
    c.add_argument("path", metavar="PATH")
    c.add_argument("-o", "--output", metavar="FILE.torrent", help="default: NAME.torrent here")
    c.add_argument("--tracker", "-t", action="append", metavar="URL", help="announce URL (repeatable)")
    c.add_argument("--piece-size", metavar="SIZE", help="power of two >= 16K (default: chosen by size)")
    c.add_argument("-f", "--force", action="store_true", help="overwrite FILE.torrent")
    c.set_defaults(run=cmd_create)

    i = sub.add_parser("info", parents=[common], help="show a magnet's or .torrent's contents")
    i.add_argument("source", metavar="MAGNET|FILE.torrent")
    i.set_defaults(run=cmd_info)

    d = sub.add_parser("demo", parents=[common], help="a private router, tracker, seeder and leecher on "
                       "this machine (no I2P network needed)")
    d.add_argument("--size", default="4M", help="size of the generated file (default 4M)")
    d.add_argument("--direct", action="store_true", help="leecher uses the seeder's address (x.pe), no tracker")
    d.set_defaults(run=cmd_demo)

    tr = sub.add_parser("tracker", parents=[common], help="run a private tracker eepsite, or edit who may use it")
    tr.add_argument("action", nargs="?", default="run", choices=("run", "invite", "allow", "revoke", "show"),
                    help="run (default); invite: print a one-time token; allow/revoke NAME.b32.i2p; show")
    tr.add_argument("destination", nargs="?", metavar="NAME.b32.i2p")
    tr.add_argument("--open", action="store_true", help="serve everyone (default: private)")
    tr.add_argument("--ttl", metavar="DURATION", help="invite lifetime, e.g. 7d (default: no expiry)")
    tr.add_argument("--tracker-dir", metavar="DIR", help="its key and access list (default: DATA_DIR/tracker)")
    tr.set_defaults(run=cmd_tracker)

    b = sub.add_parser("bridge", parents=[common], help="let a browser WebTorrent app on this machine reach I2P")
    b.add_argument("sources", nargs="*", metavar="MAGNET|FILE.torrent", help="torrents to fetch and serve")
    b.add_argument("-o", "--output", metavar="DIR", help="where those torrents are saved")
    b.add_argument("--port", type=int, default=0, help="loopback port of its WebSocket tracker (default: any)")
    b.add_argument("--origin", action="append", metavar="URL",
                   help="only pages from this origin may use the bridge (repeatable; default: any page "
                        "that holds the URL with its secret)")
    b.add_argument("--adopt", metavar="DIR",
                   help="also share over I2P torrents the browser seeds, saved here (needs --origin)")
    b.add_argument("--new-secret", action="store_true",
                   help="replace the bridge's secret: pages given the old URL lose access")
    b.set_defaults(run=cmd_bridge)

    dm = sub.add_parser("daemon", parents=[common], help="run in the background, controlled by list/status/...")
    dm.add_argument("--bridge-port", type=int, metavar="PORT",
                    help="also run the browser bridge on 127.0.0.1:PORT (0: any free port)")
    dm.set_defaults(run=cmd_daemon)
    for name, helptext in (("list", "torrents of the running daemon"),
                           ("status", "one torrent's status (or all)"),
                           ("pause", "pause a torrent"), ("resume", "resume a paused torrent"),
                           ("remove", "stop and forget a torrent (its files stay)")):
        x = sub.add_parser(name, parents=[common], help=helptext)
        if name != "list":
            x.add_argument("torrent", metavar="INFOHASH", nargs="?" if name == "status" else None,
                           help="info-hash (or a unique prefix), or the torrent's name")
        x.set_defaults(run=cmd_control)
    lm = sub.add_parser("limits", parents=[common],
                        help="show the running daemon's rate limits, or change them with --download-limit/--upload-limit "
                             "(until it restarts; the config's [limits] apply at start)")
    lm.set_defaults(run=cmd_control)
    st = sub.add_parser("stop", parents=[common], help="stop the running daemon (resume data is saved)")
    st.set_defaults(run=cmd_control)
    return p


def resolve_config(args: argparse.Namespace) -> Config:
    cfg = load_config(Path(args.config).expanduser() if getattr(args, "config", None) else None)
    if getattr(args, "data_dir", None):
        cfg.data_dir = Path(args.data_dir).expanduser()
    if getattr(args, "sam", None):
        cfg.sam = parse_sam(args.sam)
    if getattr(args, "profile", None):
        cfg.profile = args.profile
    if getattr(args, "download_limit", None) is not None:
        cfg.download_rate = parse_rate(args.download_limit, "--download-limit")
    if getattr(args, "upload_limit", None) is not None:
        cfg.upload_rate = parse_rate(args.upload_limit, "--upload-limit")
    cfg.data_dir = cfg.data_dir.expanduser().absolute()
    return cfg


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level if verbosity > 0 else logging.CRITICAL,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    json_mode = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        args = build_parser().parse_args(argv)
        for name, default in (("json", False), ("verbose", 0), ("quiet", False), ("private_router", False)):
            if not hasattr(args, name):
                setattr(args, name, default)
        json_mode = args.json
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
        setup_logging(args.verbose)
        cfg = resolve_config(args)
        out = Output(args.json, args.quiet)
        result = args.run(args, cfg, out)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    except KeyboardInterrupt:
        print("i2ptorrent: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else EXIT_USAGE
    except BaseException as exc:  # noqa: BLE001 - every error becomes one line
        if os.environ.get("I2PTORRENT_TRACEBACK"):
            raise
        err = classify(exc)
        if err is None:
            log.debug("internal error", exc_info=exc)
            err = UserError(f"internal error: {type(exc).__name__}: {exc} (run with -v and report it)",
                            EXIT_FAILURE)
            if logging.getLogger().isEnabledFor(logging.INFO):
                logging.getLogger("i2ptorrent").exception("internal error")
        print(f"i2ptorrent: {err}", file=sys.stderr)
        if json_mode:
            print(json.dumps({"error": str(err), "exit_code": err.code}))
        return err.code
