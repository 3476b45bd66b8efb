"""add, seed, create, info: the commands about one torrent."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from i2ptorrent.app.disk import check_free_space, storage_failure, writable_dir
from i2ptorrent.app.errors import EXIT_DAEMON, EXIT_FS, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, UserError
from i2ptorrent.app.output import Output, status_dict
from i2ptorrent.app.progress import format_bytes
from i2ptorrent.app.runtime import StopSignal, running_client
from i2ptorrent.app.sources import check_selection, check_trackers, load_source, parse_selection
from i2ptorrent.app.units import parse_size
from i2ptorrent.config import Config
from i2ptorrent.daemon.remote import try_daemon_add, try_daemon_seed

POLL = 0.25
JSON_PROGRESS_INTERVAL = 0.5  # --json: a {"event": "progress"} line this often while downloading


async def cmd_add(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    meta = load_source(args.source)
    selected = parse_selection(args.select) if args.select else None
    check_selection(meta, selected)
    dest = writable_dir(Path(args.output) if args.output else cfg.download_dir)
    check_free_space(meta, dest, selected)
    if not args.private_router:
        handed = await try_daemon_add(cfg, args.source, dest, selected)
        if handed is not None:
            if args.stream:
                if not handed.get("stream"):
                    raise UserError("the running daemon serves no streams (started with --no-rpc)", EXIT_DAEMON)
                out.result(handed["stream"], event="added", daemon=True, **handed)
                out.say("play that URL while it downloads (it carries the daemon's key: keep it private)")
                return EXIT_OK
            out.result(f"added to the running daemon: {handed['info_hash']} {handed['name']}",
                       event="added", daemon=True, **handed)
            return EXIT_OK
    if args.stream:
        raise UserError("--stream needs a running daemon (start one with `i2ptorrent daemon`)", EXIT_DAEMON)
    with StopSignal() as stop:
        async with running_client(cfg, out, stop, private=args.private_router, invite=args.invite) as client:
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
    trackers = check_trackers(args.tracker or [])
    if not args.private_router:
        handed = await try_daemon_seed(cfg, path, trackers)
        if handed is not None:
            out.result(handed["magnet"], event="seeding", daemon=True, **handed)
            out.say("the running daemon seeds it (see: i2ptorrent list)")
            return EXIT_OK
    with StopSignal() as stop:
        async with running_client(cfg, out, stop, private=args.private_router, invite=args.invite) as client:
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
    trackers = check_trackers(args.tracker or [])
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
