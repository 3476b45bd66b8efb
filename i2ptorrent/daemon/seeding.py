"""When a seeding torrent has given enough: Transmission's seed ratio and idle limits, sans-I/O (`now` in).

A torrent's own limit applies when its mode is SINGLE, the session's when GLOBAL and the session's is on,
none when UNLIMITED. The ratio counts against what was downloaded, or (for a torrent we never downloaded:
our own seed) against its size, as Transmission does, so a seed-only torrent also stops. Idle means no
payload moved either way; the clock starts when seeding starts, so a fresh seed gets its full idle time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from i2ptorrent.daemon.prefs import GLOBAL, SINGLE, SessionPrefs, TorrentPrefs


@dataclass(frozen=True)
class SeedSample:
    """What the rule needs of one torrent at one moment."""

    seeding: bool  # every wanted piece here and not stopped
    uploaded: int  # payload bytes, every run
    downloaded: int
    size_when_done: int
    active: bool  # payload moved since the last sample


def ratio_limit(prefs: TorrentPrefs, session: SessionPrefs) -> float | None:
    if prefs.ratio_mode == SINGLE:
        return prefs.ratio_limit
    if prefs.ratio_mode == GLOBAL and session.ratio_on:
        return session.ratio_limit
    return None


def idle_limit(prefs: TorrentPrefs, session: SessionPrefs) -> float | None:
    """Seconds."""
    if prefs.idle_mode == SINGLE:
        return prefs.idle_minutes * 60.0
    if prefs.idle_mode == GLOBAL and session.idle_on:
        return session.idle_minutes * 60.0
    return None


def ratio_reached(sample: SeedSample, limit: float) -> bool:
    base = sample.downloaded or sample.size_when_done
    return base > 0 and sample.uploaded >= limit * base


@dataclass
class SeedWatch:
    """Tells which seeding torrents reached a limit. Holds only when each torrent last moved payload."""

    _idle_since: dict[str, float] = field(default_factory=dict)

    def check(self, key: str, sample: SeedSample, prefs: TorrentPrefs, session: SessionPrefs,
              now: float) -> str | None:
        """"ratio" or "idle" when the torrent should stop seeding now, else None."""
        if not sample.seeding:
            self._idle_since.pop(key, None)
            return None
        if sample.active or key not in self._idle_since:
            self._idle_since[key] = now
        ratio = ratio_limit(prefs, session)
        if ratio is not None and ratio_reached(sample, ratio):
            return "ratio"
        idle = idle_limit(prefs, session)
        if idle is not None and now - self._idle_since[key] >= idle:
            return "idle"
        return None

    def idle_eta(self, key: str, prefs: TorrentPrefs, session: SessionPrefs, now: float) -> int:
        """Seconds until the idle limit stops the torrent (Transmission's etaIdle), -1 when none applies."""
        idle = idle_limit(prefs, session)
        since = self._idle_since.get(key)
        if idle is None or since is None:
            return -1
        return max(0, int(since + idle - now))

    def forget(self, key: str) -> None:
        self._idle_since.pop(key, None)
