"""Metainfo: magnets, .torrent files and new torrents; every bad input is one clear MetainfoError."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from i2ptorrent.engine import MetainfoError, create_torrent, load_torrent, magnet_of, parse_magnet
from i2ptorrent.engine.metainfo import as_metainfo

from test_engine_support import make_files

B32 = "a" * 52 + ".b32.i2p"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_files(tmp_path / "album", {"one.bin": 100_000, "sub/two.bin": 50_000}, seed=9)


def test_create_and_load_multi_file_v1(tree: Path) -> None:
    data = create_torrent(tree, trackers=["ws://t.b32.i2p/announce", "http://u.b32.i2p/a"], piece_size=16384)
    meta = load_torrent(data)
    assert meta.name == "album"
    assert sorted((f.path, f.size) for f in meta.files) == [("album/one.bin", 100_000), ("album/sub/two.bin", 50_000)]
    assert meta.trackers == ("ws://t.b32.i2p/announce", "http://u.b32.i2p/a")
    assert meta.piece_length == 16384 and meta.num_pieces == (150_000 + 16383) // 16384
    assert hashlib.sha1(meta.info_bytes or b"").digest() == meta.info_hash
    assert b"piece layers" not in data  # v1 only
    assert load_torrent(data) == meta


def test_single_file_and_path_input(tree: Path, tmp_path: Path) -> None:
    data = create_torrent(tree / "one.bin")
    path = tmp_path / "one.torrent"
    path.write_bytes(data)
    meta = load_torrent(path)
    assert meta.name == "one.bin" and meta.total_size == 100_000
    assert as_metainfo(str(path)) == meta


def test_magnet_round_trip_with_b32_peers(tree: Path) -> None:
    meta = load_torrent(create_torrent(tree, trackers=["ws://t.b32.i2p/announce"]))
    uri = magnet_of(meta, peers=[B32])
    back = parse_magnet(uri)
    assert back.info_hash == meta.info_hash and back.name == "album"
    assert back.trackers == ("ws://t.b32.i2p/announce",) and back.peers == (B32,)
    assert not back.has_metadata
    full = back.with_info(meta.info_bytes or b"")
    assert full.files == meta.files


def test_magnet_ignores_non_i2p_peers() -> None:
    ih = "0123456789abcdef0123456789abcdef01234567"
    m = parse_magnet(f"magnet:?xt=urn:btih:{ih}&x.pe=1.2.3.4:6881&x.pe={B32}:6881&x.pe=evil.i2p")
    assert m.peers == (B32,)
    assert m.name == ih  # no dn: the hash names it


@pytest.mark.parametrize("uri, why", [
    ("http://example/x", "not a magnet"),
    ("magnet:?dn=x", "invalid magnet"),
    ("magnet:?xt=urn:btih:zz", "invalid magnet"),
    ("magnet:?xt=urn:btih:" + "0" * 40 + "&dn=" + "x" * 70000, "too long"),
])
def test_bad_magnets(uri: str, why: str) -> None:
    with pytest.raises(MetainfoError, match=why):
        parse_magnet(uri)


def test_bad_torrents(tmp_path: Path, tree: Path) -> None:
    with pytest.raises(MetainfoError, match="invalid torrent"):
        load_torrent(b"not bencode")
    with pytest.raises(MetainfoError, match="invalid torrent"):
        load_torrent(b"d4:infod4:name1:xee")
    with pytest.raises(MetainfoError, match="cannot read"):
        load_torrent(tmp_path / "nope.torrent")
    meta = load_torrent(create_torrent(tree))
    with pytest.raises(MetainfoError, match="does not match"):
        parse_magnet(magnet_of(meta)).with_info(b"d4:name1:xe")


def test_bad_create_inputs(tmp_path: Path, tree: Path) -> None:
    with pytest.raises(MetainfoError, match="no such file"):
        create_torrent(tmp_path / "absent")
    with pytest.raises(MetainfoError, match="power of two"):
        create_torrent(tree, piece_size=20000)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetainfoError, match="empty|nothing"):
        create_torrent(tmp_path / "empty")
