"""The daemon's client half: the commands that talk to a running daemon over its control socket
(list, status, pause, resume, remove, limits, stop), and `add`/`seed` handing their work to it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from i2ptorrent.app.errors import EXIT_DAEMON, EXIT_INPUT, EXIT_OK, UserError
from i2ptorrent.app.output import Output
from i2ptorrent.app.progress import format_bytes, format_rate
from i2ptorrent.app.sources import as_magnet
from i2ptorrent.config import Config
from i2ptorrent.daemon.protocol import MAX_LINE, REQUEST_TIMEOUT, ControlError, Request, decode_reply, socket_path


async def request(cfg: Config, req: Request) -> dict[str, Any] | None:
    """Send one request to the daemon of this data directory; None when no daemon is listening."""
    sock = socket_path(cfg.data_dir)
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
    if not socket_path(cfg.data_dir).exists():
        return None
    chosen = tuple(selected) if selected else None
    magnet = as_magnet(source)
    if magnet is not None:
        req = Request("add", magnet=magnet, save_path=str(dest), selected=chosen)
    else:
        req = Request("add", torrent_bytes=Path(source).expanduser().read_bytes(), save_path=str(dest),
                      selected=chosen)
    reply = await request(cfg, req)
    if reply is None:
        return None
    return _check(reply)["torrent"]


async def try_daemon_seed(cfg: Config, path: Path, trackers: list[str]) -> dict[str, Any] | None:
    """Hand a `seed` to a running daemon; None when none is running."""
    if not socket_path(cfg.data_dir).exists():
        return None
    reply = await request(cfg, Request("seed", path=str(path.resolve()), trackers=tuple(trackers)))
    return None if reply is None else _check(reply)["torrent"]


def format_row(st: dict[str, Any]) -> str:
    state = "error" if st.get("error") else st["state"]
    return (f"{st['info_hash'][:8]}  {state:<11} {st['progress'] * 100:5.1f}%  "
            f"{format_bytes(st['total_size']):>9}  down {format_rate(st['download_rate']):>10}  "
            f"up {format_rate(st['upload_rate']):>10}  peers {st['peers']:<3} {st['name']}"
            + (f"  ! {st['warning']}" if st.get("warning") and not st.get("error") else ""))


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
    if st.get("warning"):  # what keeps peers away: the router lost, trackers failing
        lines.append(f"warning:   {st['warning']}")
    if st.get("tracker_error"):
        lines.append(f"tracker:   {st['tracker_error']}")
    return "\n".join(lines)


async def control_command(cfg: Config, out: Output, op: str, torrent: str | None = None, *,
                          download_rate: int | None = None, upload_rate: int | None = None) -> int:
    """list | status | pause | resume | remove | limits | stop, against this data directory's daemon.
    For `limits`, only the rates given (not None) change."""
    if op == "limits":
        req = Request("limits", torrent, download_rate=download_rate, upload_rate=upload_rate)
    else:
        req = Request(op, torrent)
    reply = await request(cfg, req)
    if reply is None:
        raise UserError(f"no daemon is running for {cfg.data_dir} (start one with: i2ptorrent daemon)",
                        EXIT_DAEMON)
    reply = _check(reply)
    if op == "stop":
        out.result(f"the daemon for {cfg.data_dir} is stopping", action="stop")
    elif op == "limits":
        lim = reply["limits"]
        text = "  ".join(f"{what} limit: {format_rate(lim[key]) if lim[key] else 'unlimited'}"
                         for what, key in (("download", "download_rate"), ("upload", "upload_rate")))
        if "torrent" in reply:
            text = f"{reply['torrent']['name']}: {text}"
        out.result(text, limits=lim, **({"torrent": reply["torrent"]} if "torrent" in reply else {}))
    elif "torrents" in reply:
        rows = reply["torrents"]
        text = "\n".join(format_row(st) for st in rows) if rows else "no torrents"
        out.result(text, torrents=rows)
    else:
        st = reply["torrent"]
        verb = {"pause": "paused", "resume": "resumed", "remove": "removed"}.get(op)
        out.result(format_details(st) if verb is None else f"{verb} {st['info_hash']} {st['name']}",
                   action=verb or "status", torrent=st)
    return EXIT_OK
