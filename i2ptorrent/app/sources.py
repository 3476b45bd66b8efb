"""What a user names a torrent by (a magnet, a bare info-hash, a .torrent path), which of its files they
want, and the trackers they give: each checked here, once, with a message that says what was expected."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from i2ptorrent.app.errors import EXIT_INPUT, EXIT_USAGE, UserError

INFO_HASH_RE = re.compile(r"(?:[0-9a-fA-F]{40}|[A-Za-z2-7]{32})")


def as_magnet(source: str) -> str | None:
    """The magnet URI for a magnet or a bare info-hash; None when `source` names a file."""
    if source.startswith("magnet:"):
        return source
    if INFO_HASH_RE.fullmatch(source) and not Path(source).exists():
        return f"magnet:?xt=urn:btih:{source}"
    return None


def load_source(source: str) -> Any:
    """A magnet, a bare info-hash, or a .torrent path -> Metainfo (MetainfoError when none of these)."""
    from i2ptorrent.engine import MetainfoError, load_torrent, parse_magnet

    magnet = as_magnet(source)
    if magnet is not None:
        return parse_magnet(magnet)
    path = Path(source).expanduser()
    if not path.exists():
        raise MetainfoError(f"{source}: not a magnet link, info-hash or .torrent file (no such file)")
    if path.is_dir():
        raise MetainfoError(f"{source}: is a directory, not a .torrent file (to share it: i2ptorrent seed)")
    return load_torrent(path)


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
    """Every selected file exists in the torrent (checked again once a magnet's metadata arrives)."""
    if selected is None or not meta.has_metadata:
        return
    count = len(meta.files)
    bad = [i + 1 for i in selected if i >= count]
    if bad:
        raise UserError(f"--select: the torrent has {count} file(s), no file {bad[0]}", EXIT_INPUT)


def check_trackers(urls: Iterable[str]) -> list[str]:
    """The tracker URLs a user gave, each passed through the one tracker-URL rule (tracker/urls.py)."""
    from i2ptorrent.tracker.urls import TrackerURLError, parse_tracker_url

    checked = []
    for url in urls:
        try:
            parse_tracker_url(url)
        except TrackerURLError as exc:
            raise UserError(str(exc), EXIT_INPUT) from None
        checked.append(url)
    return checked
