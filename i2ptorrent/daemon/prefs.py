"""What a user set on one torrent (speed limits, seed limits, labels) and on the session (seed limits):
saved in the daemon's torrent list (registry.py), so a restart keeps them. Values are in Transmission's
units except speeds (minutes; ratios), speeds in bytes/s (the RPC's kB/s are 1000 bytes, the CLI's K 1024);
`from_dict` checks a saved file's values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

KB = 1000  # Transmission's speed unit (units.speed-bytes)
GLOBAL, SINGLE, UNLIMITED = 0, 1, 2  # seedRatioMode / seedIdleMode: the session's limit, its own, none
MAX_LABELS = 64
MAX_LABEL = 128
MAX_RATE = 1 << 40  # bytes/s, as the engine's
MAX_RATIO = 1e6
MAX_IDLE_MINUTES = 1 << 20


class PrefsError(ValueError):
    """A value a user may not set (the message says which and why)."""


@dataclass
class TorrentPrefs:
    """One torrent's settings beyond which files it downloads."""

    down_limit: int = 100 * KB  # bytes/s, applied while down_on
    down_on: bool = False
    up_limit: int = 100 * KB
    up_on: bool = False
    honors_session: bool = True
    ratio_limit: float = 2.0
    ratio_mode: int = GLOBAL
    idle_minutes: int = 30
    idle_mode: int = GLOBAL
    labels: list[str] = field(default_factory=list)
    finished: bool = False  # stopped by its seed limit (Transmission's isFinished)
    uploaded_before: int = 0  # payload bytes moved in earlier runs, for uploadRatio and the ratio limit
    downloaded_before: int = 0

    @property
    def download_rate(self) -> int:
        """The engine's limit in bytes/s (0: none of its own)."""
        return self.down_limit if self.down_on else 0

    @property
    def upload_rate(self) -> int:
        return self.up_limit if self.up_on else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> "TorrentPrefs":
        return _checked(cls, raw)


@dataclass
class SessionPrefs:
    """The session's seed limits (session-get seedRatioLimit, idle-seeding-limit and their switches)."""

    ratio_limit: float = 2.0
    ratio_on: bool = False
    idle_minutes: int = 30
    idle_on: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> "SessionPrefs":
        return _checked(cls, raw)


def check(key: str, value: Any) -> Any:
    """One field's value as a user may set it, else PrefsError naming the field."""
    if key in ("down_on", "up_on", "honors_session", "finished", "ratio_on", "idle_on"):
        if not isinstance(value, bool):
            raise PrefsError(f"{key}: expected true or false")
        return value
    if key in ("down_limit", "up_limit"):
        return _number(value, key, 0, MAX_RATE, int)
    if key in ("uploaded_before", "downloaded_before"):
        return _number(value, key, 0, 1 << 62, int)
    if key == "ratio_limit":
        return _number(value, key, 0, MAX_RATIO, float)
    if key == "idle_minutes":
        return _number(value, key, 0, MAX_IDLE_MINUTES, int)
    if key in ("ratio_mode", "idle_mode"):
        if value not in (GLOBAL, SINGLE, UNLIMITED) or isinstance(value, bool):
            raise PrefsError(f"{key}: expected 0 (session's), 1 (its own) or 2 (unlimited)")
        return int(value)
    if key == "labels":
        return labels(value)
    raise PrefsError(f"{key}: no such setting")


def labels(value: Any) -> list[str]:
    """Transmission's rule: strings, none empty or with a comma (its clients join them with commas)."""
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        raise PrefsError(f"labels: expected a list of at most {MAX_LABELS} strings")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or "," in item or len(item) > MAX_LABEL:
            raise PrefsError(f"labels: each label is 1 to {MAX_LABEL} characters without a comma")
        if item.strip() not in out:
            out.append(item.strip())
    return out


def _number(value: Any, key: str, low: float, high: float, kind: type) -> Any:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or not low <= value <= high:
        raise PrefsError(f"{key}: expected a number from {low:g} to {high:g}")
    return kind(value)


def _checked(cls: Any, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise PrefsError("expected an object")
    known = {f.name for f in fields(cls)}
    return cls(**{k: check(k, v) for k, v in raw.items() if k in known})
