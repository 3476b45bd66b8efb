"""Who may use the bridge, checked without a browser: a real Bridge on loopback and aiohttp as the page.

A page without the secret, with a DNS-rebinding Host, or from an origin not on the list gets the same 404
before any WebSocket exists: no announce, no scrape, no hint whether a hash is held, and the bridge's
tracker core never hears of it. The page with the URL the CLI prints is served. The secret file is 0600,
stable across restarts, replaced by --new-secret; --adopt without --origin is a usage error.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from i2ptorrent.bridge import SECRET_FILE, Bridge, Gate, load_or_create_secret
from i2ptorrent.engine import Engine, create_torrent



def test_gate_admits_only_the_secret_the_host_and_a_listed_origin() -> None:
    g = Gate.of("s3cret-s3cret-s3cret", "127.0.0.1:4000")
    assert g.admits("/s3cret-s3cret-s3cret/announce", "127.0.0.1:4000", None)
    assert g.admits("/s3cret-s3cret-s3cret/announce", "127.0.0.1:4000", "https://any.example")
    for path in ("/announce", "/", "/s3cret-s3cret-s3creT/announce", "/s3cret-s3cret-s3cret",
                 "/s3cret-s3cret-s3cret/announce/", "/x/s3cret-s3cret-s3cret/announce"):
        assert not g.admits(path, "127.0.0.1:4000", None), path
    for host in (None, "", "rebind.example:4000", "127.0.0.1:4001", "127.0.0.1", "localhost:4000"):
        assert not g.admits("/s3cret-s3cret-s3cret/announce", host, None), host
    narrowed = Gate.of("s3cret-s3cret-s3cret", "127.0.0.1:4000", ["http://127.0.0.1:8080/"])
    assert narrowed.admits("/s3cret-s3cret-s3cret/announce", "127.0.0.1:4000", "http://127.0.0.1:8080")
    for origin in (None, "", "null", "http://127.0.0.1:8081", "http://evil.example"):
        assert not narrowed.admits("/s3cret-s3cret-s3cret/announce", "127.0.0.1:4000", origin), origin


def test_secret_is_0600_kept_and_replaced_on_request(tmp_path: Path) -> None:
    path = tmp_path / "data" / SECRET_FILE
    first = load_or_create_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) >= 32
    assert load_or_create_secret(path) == first  # the page the user set up keeps working
    os.chmod(path, 0o644)
    assert load_or_create_secret(path) == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_or_create_secret(path, renew=True)
    assert second != first and load_or_create_secret(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Bridge, bytes]]:
    """A bridge over an engine that seeds one file; yields it and the held info-hash."""
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "held.bin").write_bytes(os.urandom(100_000))
    engine = Engine(tmp_path / "state")
    await engine.start()
    bridge = Bridge(engine, secret=load_or_create_secret(tmp_path / SECRET_FILE), adopt_dir=tmp_path / "adopt",
                    allowed_origins=None)
    try:
        t = await engine.add(create_torrent(tmp_path / "seed" / "held.bin", piece_size=32768), tmp_path / "seed")
        await bridge.start()
        yield bridge, t.info_hash
    finally:
        await bridge.close()
        await engine.close(save_resume=False)


async def _refusal(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(skip_auto_headers=()) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers=headers)
        async with session.get(url.replace("ws://", "http://"), headers=headers) as plain:
            assert plain.status == refused.value.status
            return refused.value.status, await plain.text()


async def _scrape(url: str, info_hashes: list[bytes], **headers: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url, headers=headers)
        await ws.send_str(orjson.dumps({"action": "scrape",
                                        "info_hash": [ih.decode("latin-1") for ih in info_hashes]}).decode())
        reply = orjson.loads((await ws.receive(timeout=10)).data)
        await ws.close()
        return reply["files"]  # type: ignore[no-any-return]


async def test_without_the_secret_a_page_learns_nothing(served: tuple[Bridge, bytes]) -> None:
    bridge, held = served
    unknown = os.urandom(20)
    base = f"ws://127.0.0.1:{bridge.port}"
    # The URL the user was given works: the held hash is seen as complete, the unknown one not at all.
    files = await _scrape(bridge.announce_url, [held, unknown])
    assert files[held.decode("latin-1")]["complete"] == 1 and files[unknown.decode("latin-1")]["complete"] == 0
    core_refused, turned_away = bridge.core.refused, bridge.turned_away
    wrong = "A" * len(bridge.secret)
    replies = {await _refusal(url, Origin="http://evil.example")
               for url in (f"{base}/announce", f"{base}/", f"{base}/{wrong}/announce",
                           f"{base}/{bridge.secret}", f"{base}/{bridge.secret[:-1]}/announce")}
    # DNS rebinding: the page's own name resolves to 127.0.0.1, so its Host header is its own name.
    replies.add(await _refusal(bridge.announce_url, Host=f"rebind.example:{bridge.port}"))
    replies.add(await _refusal(bridge.announce_url, Host="127.0.0.1:1"))
    assert replies == {(404, "not found\n")}  # one reply for every reason: no hint of the secret or a hash
    assert bridge.turned_away == turned_away + 2 * 7  # each probe: a WebSocket and a plain GET
    assert bridge.core.refused == core_refused and bridge.stats()["sockets"] == 0
    assert bridge.adopted == [] and not bridge._adopting  # noqa: SLF001 - nothing was started for them


async def test_origin_list_narrows_who_holds_the_secret(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "state")
    await engine.start()
    bridge = Bridge(engine, allowed_origins=["http://127.0.0.1:8080"])
    try:
        await bridge.start()
        for origin in ("https://tracker.example", "null", "http://127.0.0.1:8081"):
            assert await _refusal(bridge.announce_url, Origin=origin) == (404, "not found\n")
        assert await _refusal(bridge.announce_url) == (404, "not found\n")  # no Origin at all
        files = await _scrape(bridge.announce_url, [b"a" * 20, b"b" * 20], Origin="http://127.0.0.1:8080/")
        assert files["a" * 20]["complete"] == 0
        assert bridge.turned_away == 2 * 4
    finally:
        await bridge.close()
        await engine.close(save_resume=False)


async def test_cli_refuses_adopt_without_origin(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "I2PTORRENT_DATA_DIR": str(tmp_path / "data")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "i2ptorrent", "bridge", "--adopt", str(tmp_path / "adopt"), "--sam", "127.0.0.1:1",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, (out, err)
    assert b"--origin" in err and not (tmp_path / "data").exists()
