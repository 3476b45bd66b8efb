"""The daemon's control protocol, with no I/O of its own: requests and replies as bytes and back.

Protocol: a client connects to the daemon's unix socket (mode 0600 in the data directory, so only this
user can use it), writes one JSON object on one line, reads one JSON object on one line, and closes.

    {"op": "list"}                                   -> {"ok": true, "torrents": [status, ...]}
    {"op": "status", "torrent": ID}                  -> {"ok": true, "torrent": status}
    {"op": "pause" | "resume" | "remove", "torrent": ID}
    {"op": "add", "magnet": URI | "torrent_b64": B64, "save_path": ABS, "selected": [i, ...] | null}
    {"op": "seed", "path": ABS, "trackers": [URL, ...]}  -> {"ok": true, "torrent": status (with magnet)}
    {"op": "limits", "download_rate": N, "upload_rate": N}  (either optional; bytes/s, 0 = unlimited)
                                                     -> {"ok": true, "limits": {"download_rate", "upload_rate"}}
      with "torrent": that torrent's own limits (kept with it)      -> also "torrent": {status}
    {"op": "stop"}                                   -> the daemon saves resume data and exits
    errors: {"ok": false, "error": "one line", "code": "input" | "not_found" | "failed"}

ID is an info-hash, a unique prefix of one (4+ hex digits), or a torrent's exact name.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOCKET_NAME = "control.sock"  # in the data directory, mode 0600
REQUEST_TIMEOUT = 60.0
MAX_LINE = 64 * 1024 * 1024  # a request may carry a .torrent (at most 64 MiB as the engine allows)
OPS = ("list", "status", "pause", "resume", "remove", "add", "seed", "limits", "stop")
MAX_TRACKERS = 64
HEX40 = re.compile(r"[0-9a-f]{40}")


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class ControlError(Exception):
    """A request the daemon refuses (or a reply we cannot read); `code` tells the CLI which exit code."""

    def __init__(self, message: str, code: str = "input") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Request:
    op: str
    torrent: str | None = None
    magnet: str | None = None
    torrent_bytes: bytes | None = None
    save_path: str | None = None
    selected: tuple[int, ...] | None = None
    path: str | None = None
    trackers: tuple[str, ...] = ()
    download_rate: int | None = None
    upload_rate: int | None = None

    def encode(self) -> bytes:
        d: dict[str, Any] = {"op": self.op}
        if self.torrent is not None:
            d["torrent"] = self.torrent
        if self.magnet is not None:
            d["magnet"] = self.magnet
        if self.torrent_bytes is not None:
            d["torrent_b64"] = base64.b64encode(self.torrent_bytes).decode()
        if self.save_path is not None:
            d["save_path"] = self.save_path
        if self.selected is not None:
            d["selected"] = list(self.selected)
        if self.path is not None:
            d["path"] = self.path
        if self.trackers:
            d["trackers"] = list(self.trackers)
        for key in ("download_rate", "upload_rate"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return json.dumps(d).encode() + b"\n"


def _loads(line: bytes, what: str) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise ControlError(f"{what} too large")
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ControlError(f"{what} is not JSON") from None
    if not isinstance(obj, dict):
        raise ControlError(f"{what} is not a JSON object")
    return obj


def decode_request(line: bytes) -> Request:
    """Parse and check one request line; every field is validated here and nowhere else."""
    obj = _loads(line, "request")
    op = obj.get("op")
    if op not in OPS:
        raise ControlError(f"unknown op {op!r}")
    torrent = obj.get("torrent")
    if op in ("status", "pause", "resume", "remove") and (op != "status" or torrent is not None):
        if not isinstance(torrent, str) or not 0 < len(torrent) <= 1024:
            raise ControlError(f"{op}: which torrent?")
    if op == "seed":
        path, trackers = obj.get("path"), obj.get("trackers", [])
        if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
            raise ControlError("seed: path must be an absolute path")
        if not isinstance(trackers, list) or len(trackers) > MAX_TRACKERS or \
                not all(isinstance(t, str) and len(t) <= 2048 for t in trackers):
            raise ControlError("seed: trackers must be a list of URLs")
        return Request("seed", path=path, trackers=tuple(trackers))
    if op == "limits":
        from i2ptorrent.engine.ratelimit import MAX_RATE, MIN_RATE  # the engine's rule (it imports libtorrent)

        rates = {}
        for key in ("download_rate", "upload_rate"):
            value = obj.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or not (value == 0 or MIN_RATE <= value <= MAX_RATE)):
                raise ControlError(f"limits: {key} must be 0 (unlimited) or {MIN_RATE} to {MAX_RATE} bytes/s")
            rates[key] = value
        if torrent is not None and (not isinstance(torrent, str) or not 0 < len(torrent) <= 1024):
            raise ControlError("limits: which torrent?")
        return Request("limits", torrent, **rates)
    if op != "add":
        return Request(op, torrent if isinstance(torrent, str) else None)
    magnet, b64 = obj.get("magnet"), obj.get("torrent_b64")
    data = None
    if isinstance(b64, str):
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ControlError("add: torrent_b64 is not base64") from None
    elif not isinstance(magnet, str):
        raise ControlError("add: give a magnet or torrent_b64")
    save = obj.get("save_path")
    if not isinstance(save, str) or not os.path.isabs(save) or "\0" in save:
        raise ControlError("add: save_path must be an absolute path")
    sel = obj.get("selected")
    if sel is not None:
        if not isinstance(sel, list) or len(sel) > 1_000_000 or \
                not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1 << 31 for i in sel):
            raise ControlError("add: selected must be a list of file indices")
        sel = tuple(sel)
    return Request("add", None, magnet if data is None else None, data, save, sel)


def reply_ok(**data: Any) -> bytes:
    return json.dumps({"ok": True, **data}, default=str).encode() + b"\n"


def reply_error(message: str, code: str = "failed") -> bytes:
    return json.dumps({"ok": False, "error": message, "code": code}).encode() + b"\n"


def decode_reply(line: bytes) -> dict[str, Any]:
    obj = _loads(line, "daemon reply")
    if obj.get("ok") is not True and not isinstance(obj.get("error"), str):
        raise ControlError("malformed daemon reply", "failed")
    return obj


def resolve(ident: str, candidates: list[tuple[str, str]]) -> str:
    """ID -> info-hash hex among (info_hash_hex, name) pairs: full hash, unique prefix, or exact name."""
    key = ident.strip().lower()
    if HEX40.fullmatch(key):
        if any(h == key for h, _ in candidates):
            return key
        raise ControlError(f"no torrent {ident}", "not_found")
    if len(key) >= 4 and re.fullmatch(r"[0-9a-f]+", key):
        hits = [h for h, _ in candidates if h.startswith(key)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ControlError(f"{ident!r} matches {len(hits)} torrents; give more of the info-hash")
    named = [h for h, n in candidates if n == ident]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise ControlError(f"{len(named)} torrents are named {ident!r}; use the info-hash")
    raise ControlError(f"no torrent {ident!r}", "not_found")
