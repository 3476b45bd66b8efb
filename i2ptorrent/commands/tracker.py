"""`i2ptorrent tracker`: run the private tracker eepsite, or edit who may use it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from i2ptorrent.app.errors import EXIT_INPUT, EXIT_OK, EXIT_STORE, EXIT_USAGE, UserError
from i2ptorrent.app.output import Output
from i2ptorrent.app.runtime import StopSignal, i2p_router, locked
from i2ptorrent.app.units import parse_duration
from i2ptorrent.config import Config


def tracker_dir(args: argparse.Namespace, cfg: Config) -> Path:
    return Path(args.tracker_dir).expanduser().absolute() if args.tracker_dir else cfg.data_dir / "tracker"


async def cmd_tracker(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    """Run the tracker eepsite, or edit its access list (works while it runs: it re-reads the file)."""
    from i2ptorrent.tracker.access import AccessList
    from i2ptorrent.tracker.eepsite import TrackerPaths, start_tracker
    from i2ptorrent.tracker.redis_store import RedisSwarmStore, StoreUnavailable

    paths = TrackerPaths(tracker_dir(args, cfg))
    if args.action in ("allow", "revoke") and not args.destination:
        raise UserError(f"tracker {args.action}: which destination (NAME.b32.i2p)?", EXIT_USAGE)
    store = None
    if args.redis:  # before any router: an unreachable store is one clear error, not a crash loop
        try:
            store = await RedisSwarmStore.connect(args.redis, private=not args.open)
        except StoreUnavailable as exc:
            raise UserError(str(exc), EXIT_STORE) from None
    if store is not None and args.action != "run":
        try:
            return await tracker_access_shared(args, out, store.access)
        except ValueError as exc:
            raise UserError(str(exc), EXIT_INPUT) from None
        finally:
            await store.close()
    if args.action != "run":
        try:
            return tracker_access(args, out, paths, AccessList.load(paths.access))
        except ValueError as exc:  # a bad destination name or a damaged access file
            raise UserError(str(exc), EXIT_INPUT) from None
    with locked(paths.data_dir), StopSignal() as stop:
        async with i2p_router(cfg, args.private_router, out.say) as (sam, options):
            out.say(f"publishing the tracker through SAM at {sam.host}:{sam.port} (building tunnels)...")
            try:
                site = await stop.guard(start_tracker(paths.data_dir, sam, options, private=not args.open,
                                                      store=store))
            except StoreUnavailable as exc:
                raise UserError(str(exc), EXIT_STORE) from None
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
    return EXIT_OK


async def tracker_access_shared(args: argparse.Namespace, out: Output, access: Any) -> int:
    """tracker invite | allow | revoke | show --redis: the same edits, in the shared store."""
    if args.action == "invite":
        ttl = parse_duration(args.ttl) if args.ttl else None
        token = await access.invite(ttl=ttl)
        out.result(token, invite=token, expires_in=ttl)
    elif args.action == "allow":
        name = await access.allow(args.destination)
        out.result(f"allowed {name}", allowed=name)
    elif args.action == "revoke":
        if not await access.revoke(args.destination):
            raise UserError(f"{args.destination} was not on the allowlist", EXIT_INPUT)
        out.result(f"revoked {args.destination}", revoked=args.destination)
    else:
        allowed, invites = await access.show()
        out.result("\n".join([f"allowed:  {len(allowed)}", *(f"  {a}" for a in allowed),
                              f"invites:  {len(invites)} unused"]), allowed=allowed, invites=len(invites))
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
