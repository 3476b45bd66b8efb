"""The `i2ptorrent` command line: parses arguments and dispatches to the commands; nothing imports it.

Every user error ends as one line on stderr ("i2ptorrent: ...") and one of the exit codes in
app/errors.py, never a traceback (`-v` shows logs; I2PTORRENT_TRACEBACK=1 re-raises for debugging). With
`--json`, results go to stdout as JSON (one object per line for long-running commands) and errors also as
{"error", "exit_code"}.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from i2ptorrent import __version__
from i2ptorrent.app.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, UserError, classify
from i2ptorrent.app.output import Output
from i2ptorrent.app.units import parse_rate, parse_size
from i2ptorrent.config import Config, load_config, parse_sam

log = logging.getLogger("i2ptorrent.cli")


# ---- dispatch: each command's body lives in commands/ or daemon/ ---------------------------------

def lazy(module: str, name: str) -> Callable[[argparse.Namespace, Config, Output], Any]:
    """A command's body, imported only when it runs (the engine imports libtorrent: keep `--help` quick)."""
    def run(args: argparse.Namespace, cfg: Config, out: Output) -> Any:
        return getattr(importlib.import_module(f"i2ptorrent.{module}"), name)(args, cfg, out)
    return run


async def cmd_demo(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.commands.demo import run_demo

    from i2ptorrent.transport.testnet import parse_delay

    try:
        delay = parse_delay(args.delay)
    except ValueError:
        raise UserError(f"--delay {args.delay!r}: expected e.g. 50ms, 0.15s or 0", EXIT_USAGE) from None
    if not 0 <= args.hops <= 7 or not 0 <= delay <= 5:
        raise UserError("demo: --hops must be 0..7 and --delay 0..5s", EXIT_USAGE)
    return await run_demo(out, size=parse_size(args.size), via_tracker=not args.direct, testnet=args.testnet,
                          hops=args.hops, delay=delay)


async def cmd_daemon(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.daemon.server import run_daemon

    from i2ptorrent.daemon.server import HttpOptions

    http = None if args.no_rpc else HttpOptions(
        args.rpc_port, args.rpc_bind, Path(args.rpc_auth_file).expanduser() if args.rpc_auth_file else None)
    return await run_daemon(cfg, out, private=args.private_router, invite=args.invite,
                            bridge_port=args.bridge_port, http=http)


async def cmd_control(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from i2ptorrent.daemon.remote import control_command

    # for `limits`, only the limits given on this command line change
    return await control_command(cfg, out, args.command, getattr(args, "torrent", None),
                                 download_rate=cfg.download_rate if hasattr(args, "download_limit") else None,
                                 upload_rate=cfg.upload_rate if hasattr(args, "upload_limit") else None)


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
    a.add_argument("--stream", action="store_true",
                   help="hand it to the running daemon and print an HTTP URL that plays the (first chosen) "
                        "file while it downloads")
    a.set_defaults(run=lazy("commands.torrents", "cmd_add"))

    s = sub.add_parser("seed", parents=[common], help="share a file or directory and print its magnet")
    s.add_argument("path", metavar="PATH")
    s.add_argument("--tracker", "-t", action="append", metavar="URL",
                   help="ws://NAME.b32.i2p/announce or http://... (repeatable)")
    s.set_defaults(run=lazy("commands.torrents", "cmd_seed"))

    c = sub.add_parser("create", parents=[common], help="write a .torrent for a file or directory")
    c.add_argument("path", metavar="PATH")
    c.add_argument("-o", "--output", metavar="FILE.torrent", help="default: NAME.torrent here")
    c.add_argument("--tracker", "-t", action="append", metavar="URL", help="announce URL (repeatable)")
    c.add_argument("--piece-size", metavar="SIZE", help="power of two >= 16K (default: chosen by size)")
    c.add_argument("-f", "--force", action="store_true", help="overwrite FILE.torrent")
    c.set_defaults(run=lazy("commands.torrents", "cmd_create"))

    i = sub.add_parser("info", parents=[common], help="show a magnet's or .torrent's contents")
    i.add_argument("source", metavar="MAGNET|FILE.torrent")
    i.set_defaults(run=lazy("commands.torrents", "cmd_info"))

    d = sub.add_parser("demo", parents=[common], help="a private router, tracker, seeder and leecher on "
                       "this machine (no I2P network needed)")
    d.add_argument("--size", default="4M", help="size of the generated file (default 4M)")
    d.add_argument("--direct", action="store_true", help="leecher uses the seeder's address (x.pe), no tracker")
    d.add_argument("--testnet", action="store_true", help="run across a private network of 8 routers in network "
                   "namespaces (needs root) instead of one 0-hop router")
    d.add_argument("--hops", type=int, default=3, help="with --testnet: tunnel length (default 3)")
    d.add_argument("--delay", default="50ms", help="with --testnet: one-way delay per link (default 50ms)")
    d.set_defaults(run=cmd_demo)

    tr = sub.add_parser("tracker", parents=[common], help="run a private tracker eepsite, or edit who may use it")
    tr.add_argument("action", nargs="?", default="run", choices=("run", "invite", "allow", "revoke", "show"),
                    help="run (default); invite: print a one-time token; allow/revoke NAME.b32.i2p; show")
    tr.add_argument("destination", nargs="?", metavar="NAME.b32.i2p")
    tr.add_argument("--open", action="store_true", help="serve everyone (default: private)")
    tr.add_argument("--ttl", metavar="DURATION", help="invite lifetime, e.g. 7d (default: no expiry)")
    tr.add_argument("--tracker-dir", metavar="DIR", help="its key and access list (default: DATA_DIR/tracker)")
    tr.add_argument("--redis", metavar="URL", help="share swarms, allowlist and invites with other instances "
                    "through this Redis (loopback or unix socket, e.g. redis://127.0.0.1:6379/0)")
    tr.set_defaults(run=lazy("commands.tracker", "cmd_tracker"))

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
    b.set_defaults(run=lazy("commands.bridge", "cmd_bridge"))

    dm = sub.add_parser("daemon", parents=[common], help="run in the background, controlled by list/status/...")
    dm.add_argument("--bridge-port", type=int, metavar="PORT",
                    help="also run the browser bridge on 127.0.0.1:PORT (0: any free port)")
    dm.add_argument("--rpc-port", type=int, metavar="PORT",
                    help="Transmission RPC, web page and streams on this port (default 9091, or any free port "
                         "when 9091 is taken; 0: any free port)")
    dm.add_argument("--rpc-bind", default="127.0.0.1", metavar="ADDRESS",
                    help="listen there instead of 127.0.0.1 (warned: others could then reach it)")
    dm.add_argument("--rpc-auth-file", metavar="FILE",
                    help="require HTTP basic auth with the user:password in FILE (mode 600)")
    dm.add_argument("--no-rpc", action="store_true", help="no Transmission RPC, web page or streams")
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
                             "(until it restarts; the config's [limits] apply at start); with a torrent, that "
                             "torrent's own limits (under the daemon's; kept with the torrent)")
    lm.add_argument("torrent", metavar="INFOHASH", nargs="?",
                    help="info-hash (or a unique prefix), or the torrent's name")
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
        for name, default in (("json", False), ("verbose", 0), ("quiet", False), ("private_router", False),
                              ("invite", None)):
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
