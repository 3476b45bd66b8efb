"""The CLI's pure parts: progress formatting, --select parsing, the control protocol and its registry."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from i2ptorrent.app.errors import UserError
from i2ptorrent.app.progress import ProgressDisplay, format_bytes, format_eta, progress_line
from i2ptorrent.app.sources import parse_selection
from i2ptorrent.app.units import parse_size
from i2ptorrent.daemon.protocol import ControlError, Request, decode_request, resolve
from i2ptorrent.daemon.registry import Entry, Registry
from i2ptorrent.engine import SwarmStats, TorrentStatus


def status(**kw: object) -> TorrentStatus:
    base = dict(name="ubuntu.iso", info_hash="ab" * 20, state="downloading", progress=0.5, pieces_done=5,
                pieces_total=10, download_rate=2_000_000.0, upload_rate=0.0, peers=3, downloaded=500,
                uploaded=0, total_size=100_000_000, stats=SwarmStats())
    base.update(kw)
    return TorrentStatus(**base)  # type: ignore[arg-type]


def test_progress_line_shows_what_a_user_needs() -> None:
    line = progress_line(status(), 120)
    for part in ("ubuntu.iso", "50.0%", "2.0 MB/s", "peers 3", "ETA 0:25", "[###"):
        assert part in line
    assert len(progress_line(status(name="x" * 200), 60)) < 60
    assert "metadata" in progress_line(status(state="metadata", progress=0.0, total_size=0))
    assert "ETA --:--" in progress_line(status(download_rate=0.0))
    stuck = progress_line(status(error="No space left on device (big.bin)"), 120)
    assert "error: No space left on device (big.bin)" in stuck and "ETA" not in stuck
    lost = progress_line(status(state="metadata", warning="I2P router lost, reconnecting for 5 s"), 160)
    assert lost.endswith("! I2P router lost, reconnecting for 5 s") and "peers" in lost


def test_formatting() -> None:
    assert format_bytes(999) == "999 B" and format_bytes(1_500_000) == "1.5 MB"
    assert format_eta(3725) == "1:02:05" and format_eta(None) == "--:--" and format_eta(59) == "0:59"


def test_display_redraws_on_a_tty_and_prints_sparingly_otherwise() -> None:
    tty, plain = io.StringIO(), io.StringIO()
    t, p = ProgressDisplay(tty, tty=True), ProgressDisplay(plain, tty=False)
    for i in range(20):
        t.update(status(progress=i / 20), now=i * 0.5)
        p.update(status(progress=i / 20), now=i * 0.5)
    assert tty.getvalue().count("\r\x1b[K") == 20 and "\n" not in tty.getvalue()
    assert plain.getvalue().count("\n") == 2  # at 0 s and 5 s
    p.update(status(state="seeding", progress=1.0), now=9.6)  # a state change is always shown
    assert "seeding" in plain.getvalue().splitlines()[-1]


def test_selection_and_sizes() -> None:
    assert parse_selection("1,3,5-7") == [0, 2, 4, 5, 6]
    for bad in ("0", "a", "3-1", "1,,2"):
        with pytest.raises(UserError):
            parse_selection(bad)
    assert parse_size("16K") == 16384 and parse_size("4M") == 4 << 20 and parse_size("100") == 100
    with pytest.raises(UserError):
        parse_size("lots")


def test_rate_limit_flags_override_the_config(tmp_path: Path) -> None:
    from i2ptorrent.cli import build_parser, resolve_config

    conf = tmp_path / "c.toml"
    conf.write_text("[limits]\ndownload_rate = 100000\nupload_rate = 200000\n")
    args = build_parser().parse_args(["list", "--config", str(conf), "--upload-limit", "2M"])
    cfg = resolve_config(args)
    assert (cfg.download_rate, cfg.upload_rate) == (100000, 2 << 20)
    args = build_parser().parse_args(["list", "--config", str(conf), "--download-limit", "fast"])
    with pytest.raises(UserError, match="--download-limit 'fast'") as err:
        resolve_config(args)
    assert err.value.code == 2
    for too_low in ("1", "500"):
        args = build_parser().parse_args(["list", "--config", str(conf), "--upload-limit", too_low])
        with pytest.raises(UserError, match="from 1K"):
            resolve_config(args)


def test_control_requests_are_checked() -> None:
    req = Request("add", torrent_bytes=b"d4:infod...e", save_path="/tmp/x", selected=(0, 2))
    assert decode_request(req.encode()) == req
    assert decode_request(b'{"op": "list"}\n') == Request("list")
    seed = Request("seed", path="/srv/a.iso", trackers=("ws://x.b32.i2p/announce",))
    assert decode_request(seed.encode()) == seed
    limits = Request("limits", upload_rate=1 << 20)
    assert decode_request(limits.encode()) == limits and limits.download_rate is None
    for bad in (b"nonsense", b"[]", b'{"op": "format"}', b'{"op": "pause"}',
                b'{"op": "limits", "upload_rate": -1}', b'{"op": "limits", "download_rate": "fast"}',
                b'{"op": "limits", "download_rate": true}', b'{"op": "limits", "upload_rate": 10}',
                b'{"op": "add", "magnet": "m", "save_path": "relative"}',
                b'{"op": "add", "torrent_b64": "!!", "save_path": "/x"}',
                b'{"op": "add", "magnet": "m", "save_path": "/x", "selected": [true]}',
                b'{"op": "seed", "path": "rel"}', b'{"op": "seed", "path": "/a", "trackers": "ws://t"}'):
        with pytest.raises(ControlError):
            decode_request(bad)


def test_resolve_by_hash_prefix_or_name() -> None:
    pairs = [("ab" * 20, "one"), ("abcd" + "0" * 36, "two"), ("ff" * 20, "two")]
    assert resolve("ab" * 20, pairs) == "ab" * 20
    assert resolve("abab", pairs) == "ab" * 20
    assert resolve("one", pairs) == "ab" * 20
    with pytest.raises(ControlError, match="matches 2"):
        resolve("abxx"[:2] + "ab", [("abab" + "0" * 36, "a"), ("abab" + "1" * 36, "b")])
    with pytest.raises(ControlError, match="named"):
        resolve("two", pairs)
    with pytest.raises(ControlError) as info:
        resolve("nothing", pairs)
    assert info.value.code == "not_found"


def test_registry_round_trip_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "daemon" / "torrents.json"
    reg = Registry.load(path)
    reg.put(Entry("ab" * 20, "magnet:?xt=urn:btih:" + "ab" * 20, "/dl", [1], False))
    reg.set_paused("ab" * 20, True)
    again = Registry.load(path)
    assert again.entries == reg.entries and again.entries["ab" * 20].paused
    again.drop("ab" * 20)
    assert Registry.load(path).entries == {}
    path.write_text(json.dumps({"torrents": [{"info_hash": 5}]}))
    with pytest.raises(ControlError, match="corrupt"):
        Registry.load(path)
