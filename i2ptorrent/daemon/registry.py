"""The daemon's saved torrent list (data_dir/daemon/torrents.json): what it restores at start.

The engine's resume files hold the pieces, so a restarted daemon carries on where it stopped; each entry
also keeps what the user set on the torrent (prefs.py), and the file the session's seed limits.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from i2ptorrent.daemon.prefs import PrefsError, SessionPrefs, TorrentPrefs
from i2ptorrent.daemon.protocol import HEX40, ControlError

from ..private_files import write_private

MAX_REGISTRY_BYTES = 16 * 1024 * 1024


@dataclass
class Entry:
    """One torrent the daemon restores at start."""

    info_hash: str
    source: str  # a magnet, or the path of the .torrent kept in data_dir/torrents
    save_path: str
    selected: list[int] | None = None
    paused: bool = False
    prefs: TorrentPrefs = field(default_factory=TorrentPrefs)


@dataclass
class Registry:
    """The daemon's torrent list, saved atomically as JSON after every change."""

    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    session: SessionPrefs = field(default_factory=SessionPrefs)

    @classmethod
    def load(cls, path: Path) -> "Registry":
        reg = cls(path)
        try:
            if path.stat().st_size > MAX_REGISTRY_BYTES:
                raise ControlError(f"{path}: too large")
            raw = path.read_bytes()
        except FileNotFoundError:
            return reg
        try:
            doc = json.loads(raw)
            for item in doc.get("torrents", []):
                e = Entry(str(item["info_hash"]), str(item["source"]), str(item["save_path"]),
                          [int(i) for i in item["selected"]] if item.get("selected") is not None else None,
                          bool(item.get("paused", False)), TorrentPrefs.from_dict(item.get("prefs", {})))
                if HEX40.fullmatch(e.info_hash):
                    reg.entries[e.info_hash] = e
            reg.session = SessionPrefs.from_dict(doc.get("session", {}))
        except (ValueError, KeyError, TypeError, AttributeError, PrefsError):
            raise ControlError(f"{path}: corrupt torrent list (fix or remove it)") from None
        return reg

    def save(self) -> None:
        data = json.dumps({"torrents": [asdict(e) for e in self.entries.values()],
                           "session": self.session.to_dict()}, indent=1)
        write_private(self.path, data, durable=True)

    def put(self, entry: Entry) -> None:
        self.entries[entry.info_hash] = entry
        self.save()

    def set_paused(self, info_hash: str, paused: bool) -> None:
        if info_hash in self.entries:
            self.entries[info_hash].paused = paused
            self.save()

    def set_selected(self, info_hash: str, selected: list[int] | None) -> None:
        if info_hash in self.entries:
            self.entries[info_hash].selected = selected
            self.save()

    def drop(self, info_hash: str) -> None:
        if self.entries.pop(info_hash, None) is not None:
            self.save()
