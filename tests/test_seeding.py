"""The seed ratio and idle limits (sans-I/O, `now` passed in) and the saved settings they read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2ptorrent.daemon.prefs import GLOBAL, SINGLE, UNLIMITED, PrefsError, SessionPrefs, TorrentPrefs
from i2ptorrent.daemon.protocol import ControlError
from i2ptorrent.daemon.registry import Entry, Registry
from i2ptorrent.daemon.seeding import SeedSample, SeedWatch

MB = 1_000_000


def seeding(uploaded: int, downloaded: int = 10 * MB, active: bool = False) -> SeedSample:
    return SeedSample(seeding=True, uploaded=uploaded, downloaded=downloaded, size_when_done=10 * MB,
                      active=active)


def test_the_ratio_limit_is_the_torrents_own_the_sessions_or_none() -> None:
    watch = SeedWatch()
    own = TorrentPrefs(ratio_mode=SINGLE, ratio_limit=1.5)
    off, on = SessionPrefs(), SessionPrefs(ratio_on=True, ratio_limit=0.5)
    assert watch.check("a", seeding(14 * MB), own, on, 0.0) is None  # its own 1.5 beats the session's 0.5
    assert watch.check("a", seeding(15 * MB), own, on, 1.0) == "ratio"
    assert watch.check("b", seeding(5 * MB), TorrentPrefs(), off, 0.0) is None  # session limit off
    assert watch.check("b", seeding(5 * MB), TorrentPrefs(), on, 1.0) == "ratio"
    assert watch.check("c", seeding(10**12), TorrentPrefs(ratio_mode=UNLIMITED), on, 0.0) is None


def test_a_torrent_we_never_downloaded_counts_its_ratio_against_its_size() -> None:
    own = TorrentPrefs(ratio_mode=SINGLE, ratio_limit=1.0)
    assert SeedWatch().check("s", seeding(9 * MB, downloaded=0), own, SessionPrefs(), 0.0) is None
    assert SeedWatch().check("s", seeding(10 * MB, downloaded=0), own, SessionPrefs(), 0.0) == "ratio"


def test_the_idle_limit_counts_from_the_last_payload_moved_or_from_when_seeding_began() -> None:
    watch = SeedWatch()
    prefs = TorrentPrefs(idle_mode=SINGLE, idle_minutes=10)
    session = SessionPrefs()
    assert watch.check("a", seeding(0), prefs, session, 1000.0) is None  # seeding begins: clock starts
    assert watch.idle_eta("a", prefs, session, 1300.0) == 300
    assert watch.check("a", seeding(0, active=True), prefs, session, 1500.0) is None  # a peer took a piece
    assert watch.check("a", seeding(0), prefs, session, 2099.0) is None
    assert watch.check("a", seeding(0), prefs, session, 2100.0) == "idle"
    # not seeding (downloading, stopped) forgets the clock: the next seeding gets its full time again
    watch.check("a", SeedSample(False, 0, 0, 10 * MB, False), prefs, session, 2200.0)
    assert watch.idle_eta("a", prefs, session, 2200.0) == -1
    assert watch.check("a", seeding(0), prefs, session, 5000.0) is None
    glob = TorrentPrefs(idle_mode=GLOBAL)
    assert watch.check("g", seeding(0), glob, SessionPrefs(idle_on=True, idle_minutes=1), 0.0) is None
    assert watch.check("g", seeding(0), glob, SessionPrefs(idle_on=True, idle_minutes=1), 60.0) == "idle"
    assert watch.check("g", seeding(0), glob, SessionPrefs(idle_on=False, idle_minutes=1), 600.0) is None


def test_settings_survive_the_registry_and_a_bad_saved_value_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "torrents.json"
    reg = Registry(path)
    prefs = TorrentPrefs(down_limit=50_000, down_on=True, ratio_mode=SINGLE, labels=["x"], uploaded_before=7)
    reg.put(Entry("ab" * 20, "magnet:?xt=urn:btih:" + "ab" * 20, "/dl", prefs=prefs))
    reg.session = SessionPrefs(ratio_on=True, idle_minutes=5)
    reg.save()
    back = Registry.load(path)
    assert back.entries["ab" * 20].prefs == prefs and back.session == reg.session
    doc = json.loads(path.read_text())
    doc["torrents"][0]["prefs"]["ratio_mode"] = 9
    path.write_text(json.dumps(doc))
    with pytest.raises(ControlError, match="corrupt"):
        Registry.load(path)
    with pytest.raises(PrefsError, match="labels"):
        TorrentPrefs.from_dict({"labels": "not a list"})
