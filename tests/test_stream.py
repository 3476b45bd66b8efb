"""/stream: a file's bytes over HTTP with Range while it downloads; the pieces a stream needs come first."""

from __future__ import annotations

import json
import random
from pathlib import Path

import aiohttp
import pytest

from i2ptorrent.daemon.protocol import Request
from i2ptorrent.daemon.stream import RangeError, byte_range, pieces_for
from i2ptorrent.engine.picker import BLOCK, PiecePicker
from faces_lab import faces_lab


def test_range_arithmetic() -> None:
    assert byte_range(None, 100) is None
    assert byte_range("bytes=0-", 100) == (0, 99)
    assert byte_range("bytes=10-19", 100) == (10, 19)
    assert byte_range("bytes=90-500", 100) == (90, 99)
    assert byte_range("bytes=-30", 100) == (70, 99)
    assert byte_range("bytes=-300", 100) == (0, 99)
    assert byte_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole file
    for bad in ("bytes=100-", "bytes=20-10", "bytes=-0"):
        with pytest.raises(RangeError):
            byte_range(bad, 100)
    assert pieces_for(0, 0, 99, 16) == range(0, 7)
    assert pieces_for(1000, 0, 23, 1024) == range(0, 1)  # a file starting inside piece 0
    assert pieces_for(1000, 0, 24, 1024) == range(0, 2)


def test_urgent_pieces_are_started_first_in_deadline_order() -> None:
    picker = PiecePicker(16, BLOCK, 16 * BLOCK, rng=random.Random(1))
    picker.add_peer("p")
    picker.peer_bitfield("p", (1 << 16) - 1)
    picker.set_urgent([9, 3, 12])
    assert [r[0] for r in picker.pick("p", 3)] == [9, 3, 12]
    picker.set_urgent([])
    assert {r[0] for r in picker.pick("p", 5)}.isdisjoint({9, 3, 12})  # the rest goes on around them


async def test_ranges_answer_from_pieces_as_they_arrive(router, sam_pool, tmp_path: Path) -> None:
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        size = 6 * 1024 * 1024 + 4321
        src, magnet = await lab.share("video.mp4", size, piece_size=65536)
        data = src.read_bytes()
        engine = lab.daemon.client.engine
        engine.set_rate_limits(500_000, None)  # ~13 s for the whole file: a stream's piece comes long before
        reply = json.loads(await lab.daemon.execute(Request("add", magnet=magnet, save_path=str(tmp_path / "dl"),
                                                            selected=(0,))))
        url = reply["torrent"]["stream"]
        assert url.startswith(lab.face.base_url + "/stream/") and "?key=" in url
        t = engine.get(bytes.fromhex(reply["torrent"]["info_hash"]))

        async with aiohttp.ClientSession() as http:
            # a range near the end (ten pieces), asked for before any of it is here
            first, last = size - 700_000, size - 50_001
            async with http.get(url, headers={"Range": f"bytes={first}-{last}"}) as r:
                assert r.status == 206 and r.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
                assert r.headers["Content-Type"] == "video/mp4"
                head = await r.content.readexactly(1)
                at_first_byte = t.status()
                body = head + await r.read()
                at_last_byte = t.status()
            assert body == data[first:last + 1]
            assert at_first_byte.state == "downloading" and at_first_byte.progress < 1.0
            # fetched first: the range's ten pieces were all here while most of the file was not (in
            # rarest-first order alone, all ten before the half-way mark would be a 1-in-1000 chance)
            assert at_last_byte.state == "downloading" and at_last_byte.progress < 0.5, at_last_byte.progress
            # the whole file from the start, while the rest is still arriving
            async with http.get(url) as r:
                assert r.status == 200 and int(r.headers["Content-Length"]) == size
                assert await r.read() == data
            assert t.status().progress == 1.0
            rng = random.Random(5)
            for _ in range(20):  # arbitrary offsets, now from the disk
                a = rng.randrange(size)
                b = rng.randrange(a, min(size, a + 300_000))
                async with http.get(url, headers={"Range": f"bytes={a}-{b}"}) as r:
                    assert r.status == 206 and await r.read() == data[a:b + 1], (a, b)
            async with http.get(url, headers={"Range": "bytes=-1000"}) as r:
                assert await r.read() == data[-1000:]
            async with http.get(url, headers={"Range": f"bytes={size}-"}) as r:
                assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{size}"
            async with http.get(url.replace("/0?", "/1?")) as r:
                assert r.status == 404
            async with http.get(url.split("?")[0]) as r:  # no key
                assert r.status == 403
