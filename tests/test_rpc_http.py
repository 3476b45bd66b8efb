"""The HTTP face's refusals, on a real loopback socket with a fake backend: DNS rebinding (Host), CSRF
(session id), basic auth, oversized and malformed requests, stream keys; and the secrets files' modes."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from i2ptorrent.daemon.guard import GuardError, Guard, host_allowed, load_auth, new_guard
from i2ptorrent.daemon.rpc_core import RpcCore
from i2ptorrent.daemon.web import MAX_BODY, HttpFace
from test_rpc_core import H1, FakeBackend

SID = "X-Transmission-Session-Id"


@pytest_asyncio.fixture
async def face(tmp_path: Path) -> AsyncIterator[HttpFace]:
    guard = Guard("the-session-id", "k" * 43, ("alice", "pw"))
    f = HttpFace(RpcCore(FakeBackend()), guard, "127.0.0.1", 0)
    await f.start()
    try:
        yield f
    finally:
        await f.close()


def basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


async def post(face: HttpFace, body: bytes, **headers: str) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as s:
        async with s.post(face.base_url + "/transmission/rpc", data=body, headers=headers) as r:
            await r.read()
            return r


GET_IDS = json.dumps({"method": "torrent-get", "arguments": {"fields": ["hashString"]}}).encode()


async def test_the_handshake_then_the_answer(face: HttpFace) -> None:
    auth = basic("alice", "pw")
    r = await post(face, GET_IDS, Authorization=auth)
    assert r.status == 409 and r.headers[SID] == "the-session-id"
    assert "Access-Control-Allow-Origin" not in r.headers  # another origin cannot read the id
    async with aiohttp.ClientSession() as s:
        async with s.post(face.base_url + "/transmission/rpc", data=GET_IDS,
                          headers={"Authorization": auth, SID: r.headers[SID]}) as ok:
            assert ok.status == 200
            reply = await ok.json()
    assert reply["result"] == "success" and reply["arguments"]["torrents"][0]["hashString"] == H1


async def test_refusals(face: HttpFace) -> None:
    ok = {"Authorization": basic("alice", "pw"), SID: "the-session-id"}
    # DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends its own name as Host
    assert (await post(face, GET_IDS, **ok, Host="evil.example:9091")).status == 421
    assert (await post(face, GET_IDS, **{**ok, "Authorization": basic("alice", "nope")})).status == 401
    assert (await post(face, GET_IDS, Authorization=ok["Authorization"], **{SID: "guessed"})).status == 409
    assert (await post(face, b"{not json", **ok)).status == 400
    assert (await post(face, b"[" * (MAX_BODY + 10), **ok)).status == 413
    async with aiohttp.ClientSession() as s:
        async with s.get(face.base_url + "/", headers={"Host": "rebind.example"}) as r:
            assert r.status == 421
        async with s.get(face.base_url + "/") as r:
            assert r.status == 401 and "WWW-Authenticate" in r.headers
        async with s.get(face.base_url + "/", headers={"Authorization": ok["Authorization"]}) as r:
            assert r.status == 200 and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        # a stream without the key, or fetched cross-site, says nothing about the hash
        for url, extra in ((f"/stream/{H1}/0", {}), (f"/stream/{H1}/0?key=wrong", {}),
                           (f"/stream/{'00' * 20}/0?key=wrong", {}),
                           (f"/stream/{H1}/0?key={'k' * 43}", {"Sec-Fetch-Site": "cross-site"})):
            async with s.get(face.base_url + url, headers={"Authorization": ok["Authorization"], **extra}) as r:
                assert r.status == 403, url
        # the key is a stream's credential: a player needs no password (this face has no streams: 404)
        async with s.get(face.base_url + f"/stream/{H1}/0?key={'k' * 43}") as r:
            assert r.status == 404
        async with s.get(face.base_url + f"/stream/{H1}/0?key={'k' * 43}", headers={"Host": "evil.example"}) as r:
            assert r.status == 421


def test_host_rule() -> None:
    for good in ("127.0.0.1:9091", "localhost", "localhost.:1", "[::1]:9091", "10.0.0.2"):
        assert host_allowed(good), good
    for bad in (None, "", "evil.example", "127.0.0.1.nip.io:9091", "[::1", "localhost.evil"):
        assert not host_allowed(bad), bad


def test_secrets_files(tmp_path: Path) -> None:
    g = new_guard(tmp_path / "daemon")
    secret = tmp_path / "daemon" / "http.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert new_guard(tmp_path / "daemon").stream_key == g.stream_key  # kept across restarts
    assert new_guard(tmp_path / "daemon").session_id != g.session_id  # new every start
    auth = tmp_path / "auth"
    auth.write_text("bob:pw\n")
    auth.chmod(0o644)
    with pytest.raises(GuardError, match="chmod 600"):
        load_auth(auth)
    auth.chmod(0o600)
    assert load_auth(auth) == ("bob", "pw")
