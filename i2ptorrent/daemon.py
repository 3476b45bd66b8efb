"""`i2ptorrent daemon` and the commands that talk to it (list, status, pause, resume, remove, add).

The daemon is one Client kept running, a unix control socket in the data directory (0600: only this user),
and the torrent list in control.Registry. Torrents, their pieces (engine resume data) and our I2P identity
all live in the data directory, so stopping and starting the daemon loses nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from i2ptorrent.cli import (
    EXIT_DAEMON, EXIT_INPUT, EXIT_OK, Output, StopSignal, UserError, running_client, start_bridge, status_dict,
    writable_dir,
)
from i2ptorrent.config import Config
from i2ptorrent.control import (
    MAX_LINE, ControlError, Entry, Registry, Request, decode_reply, decode_request, reply_error, reply_ok, resolve,
)
from i2ptorrent.progress import format_bytes, format_rate

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
REQUEST_TIMEOUT = 60.0
MAX_CLIENTS = 64


def socket_path(cfg: Config) -> Path:
    return cfg.data_dir / SOCKET_NAME


class Daemon:
    """Carries out control requests against a started Client and keeps the registry in step."""

    def __init__(self, client: Any, registry: Registry, data_dir: Path) -> None:
        self.client = client
        self.registry = registry
        self.data_dir = data_dir
        self.stop = asyncio.Event()
        self._busy = 0

    async def restore(self) -> int:
        """Re-add every saved torrent (the engine resumes each from its resume data)."""
        count = 0
        for entry in list(self.registry.entries.values()):
            try:
                t = await self.client.add(entry.source, Path(entry.save_path), selected_files=entry.selected)
            except Exception as exc:  # one bad entry must not keep the others from running
                log.warning("cannot restore %s: %s", entry.info_hash, exc)
                continue
            if entry.paused:
                t.pause()
            count += 1
        return count

    def _torrent(self, ident: str) -> Any:
        engine = self.client.engine
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
        from i2ptorrent.engine import load_torrent, parse_magnet

        if req.op == "list":
            return reply_ok(torrents=[self._status(t) for t in self.client.engine.torrents])
        if req.op == "status":
            if req.torrent is None:
                return reply_ok(torrents=[self._status(t) for t in self.client.engine.torrents])
            return reply_ok(torrent=self._status(self._torrent(req.torrent)))
        if req.op in ("pause", "resume"):
            t = self._torrent(req.torrent or "")
            t.pause() if req.op == "pause" else t.resume()
            self.registry.set_paused(t.info_hash.hex(), req.op == "pause")
            return reply_ok(torrent=self._status(t))
        if req.op == "remove":
            t = self._torrent(req.torrent or "")
            st = self._status(t)
            await self.client.remove(t)
            self.registry.drop(t.info_hash.hex())
            return reply_ok(torrent=st)
        if req.op == "stop":
            self.stop.set()
            return reply_ok()
        if req.op == "limits":
            engine = self.client.engine
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
        save = writable_dir(Path(req.save_path or ""))
        if req.torrent_bytes is not None:
            meta = load_torrent(req.torrent_bytes)
            store = self.data_dir / "torrents"
            store.mkdir(parents=True, exist_ok=True)
            source = store / f"{meta.info_hash.hex()}.torrent"
            source.write_bytes(req.torrent_bytes)
            added = await self.client.add(meta, save, selected_files=req.selected)
            src = str(source)
        else:
            meta = parse_magnet(req.magnet or "")
            added = await self.client.add(meta, save, selected_files=req.selected)
            src = req.magnet or ""
        self.registry.put(Entry(added.info_hash.hex(), src, str(save),
                                list(req.selected) if req.selected is not None else None))
        return reply_ok(torrent=self._status(added))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from i2ptorrent.cli import classify

        self._busy += 1
        try:
            if self._busy > MAX_CLIENTS:
                writer.write(reply_error("daemon busy", "failed"))
                return
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
                req = decode_request(line)
                answer = await self.execute(req)
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


async def run_daemon(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    sock = socket_path(cfg)
    if len(os.fsencode(sock)) > 100:
        raise UserError(f"data directory path too long for a control socket: {sock}", EXIT_DAEMON)
    writable_dir(cfg.data_dir)
    os.chmod(cfg.data_dir, 0o700)
    with StopSignal() as stop:
        async with running_client(cfg, args, out, stop) as client:
            registry = Registry.load(cfg.data_dir / "daemon" / "torrents.json")
            daemon = Daemon(client, registry, cfg.data_dir)
            restored = await daemon.restore()
            sock.unlink(missing_ok=True)  # we hold the data-dir lock: any socket here is stale
            bridge = await start_bridge(client, args.bridge_port) if args.bridge_port is not None else None
            server = await asyncio.start_unix_server(daemon.handle, path=str(sock), limit=MAX_LINE)
            os.chmod(sock, 0o600)
            try:
                url = bridge.announce_url if bridge is not None else None
                out.result(f"daemon running: {restored} torrent(s), I2P address {client.b32}, control {sock}"
                           + (f", browser bridge {url}" if url else ""),
                           event="ready", socket=str(sock), b32=client.b32, torrents=restored, pid=os.getpid(),
                           bridge=url)
                waits = [asyncio.ensure_future(stop.event.wait()), asyncio.ensure_future(daemon.stop.wait())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                out.say("daemon stopping: saving resume data")
            finally:
                server.close()
                sock.unlink(missing_ok=True)
                if bridge is not None:
                    await bridge.close()
    return EXIT_OK


# ---- the client side ------------------------------------------------------------------------------

async def request(cfg: Config, req: Request) -> dict[str, Any] | None:
    """Send one request to the daemon of this data directory; None when no daemon is listening."""
    sock = socket_path(cfg)
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock), limit=MAX_LINE)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except OSError as exc:
        raise UserError(f"cannot reach the daemon at {sock}: {exc.strerror or exc}", EXIT_DAEMON) from None
    try:
        writer.write(req.encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:
        raise UserError(f"the daemon did not answer: {exc or 'timeout'}", EXIT_DAEMON) from None
    finally:
        writer.close()
    if not line:
        raise UserError("the daemon closed the connection without answering", EXIT_DAEMON)
    try:
        return decode_reply(line)
    except ControlError as exc:
        raise UserError(str(exc), EXIT_DAEMON) from None


def _check(reply: dict[str, Any]) -> dict[str, Any]:
    if not reply.get("ok"):
        code = EXIT_INPUT if reply.get("code") in ("input", "not_found") else EXIT_DAEMON
        raise UserError(str(reply.get("error")), code)
    return reply


async def try_daemon_add(cfg: Config, source: str, dest: Path, selected: list[int] | None) -> dict[str, Any] | None:
    """Hand an `add` to a running daemon (it owns the data directory); None when none is running."""
    from i2ptorrent.cli import INFO_HASH_RE

    if not socket_path(cfg).exists():
        return None
    if source.startswith("magnet:"):
        req = Request("add", magnet=source, save_path=str(dest), selected=tuple(selected) if selected else None)
    elif INFO_HASH_RE.fullmatch(source) and not Path(source).exists():
        req = Request("add", magnet=f"magnet:?xt=urn:btih:{source}", save_path=str(dest),
                      selected=tuple(selected) if selected else None)
    else:
        req = Request("add", torrent_bytes=Path(source).expanduser().read_bytes(), save_path=str(dest),
                      selected=tuple(selected) if selected else None)
    reply = await request(cfg, req)
    if reply is None:
        return None
    return _check(reply)["torrent"]


async def try_daemon_seed(cfg: Config, path: Path, trackers: list[str]) -> dict[str, Any] | None:
    """Hand a `seed` to a running daemon; None when none is running."""
    if not socket_path(cfg).exists():
        return None
    reply = await request(cfg, Request("seed", path=str(path.resolve()), trackers=tuple(trackers)))
    return None if reply is None else _check(reply)["torrent"]


def format_row(st: dict[str, Any]) -> str:
    state = "error" if st.get("error") else st["state"]
    return (f"{st['info_hash'][:8]}  {state:<11} {st['progress'] * 100:5.1f}%  "
            f"{format_bytes(st['total_size']):>9}  down {format_rate(st['download_rate']):>10}  "
            f"up {format_rate(st['upload_rate']):>10}  peers {st['peers']:<3} {st['name']}")


def format_details(st: dict[str, Any]) -> str:
    lines = [f"name:      {st['name']}", f"info-hash: {st['info_hash']}", f"state:     {st['state']}",
             f"progress:  {st['progress'] * 100:.1f}% ({st['pieces_done']}/{st['pieces_total']} pieces)",
             f"size:      {format_bytes(st['total_size'])}",
             f"rates:     down {format_rate(st['download_rate'])}  up {format_rate(st['upload_rate'])}",
             f"peers:     {st['peers']}",
             f"traffic:   {format_bytes(st['downloaded'])} down, {format_bytes(st['uploaded'])} up (this run)",
             f"saved in:  {st['save_path']}", f"magnet:    {st['magnet']}"]
    if st.get("error"):
        lines.append(f"error:     {st['error']}")
    if st.get("tracker_error"):
        lines.append(f"tracker:   {st['tracker_error']}")
    return "\n".join(lines)


async def control_command(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    ident = getattr(args, "torrent", None)
    if args.command == "limits":  # only the limits given on this command line change
        req = Request("limits", download_rate=cfg.download_rate if hasattr(args, "download_limit") else None,
                      upload_rate=cfg.upload_rate if hasattr(args, "upload_limit") else None)
    else:
        req = Request(args.command, ident)
    reply = await request(cfg, req)
    if reply is None:
        raise UserError(f"no daemon is running for {cfg.data_dir} (start one with: i2ptorrent daemon)",
                        EXIT_DAEMON)
    reply = _check(reply)
    if args.command == "stop":
        out.result(f"the daemon for {cfg.data_dir} is stopping", action="stop")
    elif args.command == "limits":
        lim = reply["limits"]
        text = "  ".join(f"{what} limit: {format_rate(lim[key]) if lim[key] else 'unlimited'}"
                         for what, key in (("download", "download_rate"), ("upload", "upload_rate")))
        out.result(text, limits=lim)
    elif "torrents" in reply:
        rows = reply["torrents"]
        text = "\n".join(format_row(st) for st in rows) if rows else "no torrents"
        out.result(text, torrents=rows)
    else:
        st = reply["torrent"]
        verb = {"pause": "paused", "resume": "resumed", "remove": "removed"}.get(args.command)
        out.result(format_details(st) if verb is None else f"{verb} {st['info_hash']} {st['name']}",
                   action=verb or "status", torrent=st)
    return EXIT_OK
