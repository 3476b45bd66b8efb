"""`i2ptorrent bridge`: serve our torrents to browser WebTorrent apps on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from i2ptorrent.app.disk import writable_dir
from i2ptorrent.app.errors import EXIT_OK, EXIT_USAGE, UserError
from i2ptorrent.app.output import Output
from i2ptorrent.app.runtime import StopSignal, running_client, start_bridge
from i2ptorrent.app.sources import load_source
from i2ptorrent.config import Config


async def cmd_bridge(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    """A loopback WebSocket tracker whose only peer is the bridge, joined to our Client."""
    if args.adopt and not args.origin:
        raise UserError("--adopt lets a page make your I2P identity seed what it chooses: "
                        "name the page that may, with --origin URL", EXIT_USAGE)
    metas = [load_source(s) for s in args.sources]
    dest = writable_dir(Path(args.output) if args.output else cfg.download_dir) if metas else None
    adopt = writable_dir(Path(args.adopt)) if args.adopt else None
    with StopSignal() as stop:
        async with running_client(cfg, out, stop, private=args.private_router, invite=args.invite) as client:
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
