"""The peer cache kept beside resume data: bounded, newest first, only dialable addresses, 0600."""

from __future__ import annotations

import hashlib
from pathlib import Path

from i2ptorrent.engine.peer_cache import MAX_CACHED, PeerCache
from i2ptorrent.transport.sam_protocol import b32_from_hash


def b32(n: int) -> str:
    return b32_from_hash(hashlib.sha256(str(n).encode()).digest())


def test_newest_first_bounded_and_only_b32(tmp_path: Path) -> None:
    cache = PeerCache()
    for n in range(MAX_CACHED + 10):
        cache.seen(b32(n))
    cache.seen("loopback:127.0.0.1:5000")
    cache.seen(b32(3))  # seen again: to the front
    assert cache.addresses[0] == b32(3) and len(cache.addresses) == MAX_CACHED
    assert cache.addresses[1] == b32(MAX_CACHED + 9) and b32(0) not in cache.addresses
    assert cache.changed
    path = tmp_path / "x.peers"
    cache.save(path)
    assert not cache.changed and path.stat().st_mode & 0o777 == 0o600
    assert PeerCache.load(path).addresses == cache.addresses


def test_damaged_or_missing_files_give_an_empty_cache(tmp_path: Path) -> None:
    assert PeerCache.load(tmp_path / "none.peers").addresses == []
    bad = tmp_path / "bad.peers"
    bad.write_text("{not json")
    assert PeerCache.load(bad).addresses == []
    bad.write_text('[1, "x", "' + b32(1).upper() + '", "' + b32(1) + '"]')
    assert PeerCache.load(bad).addresses == [b32(1)]
