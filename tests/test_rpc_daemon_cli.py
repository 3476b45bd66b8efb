"""The real `i2ptorrent daemon` process with its HTTP face: the flags, the ready line, the secrets file,
`add --stream` printing a URL that carries the key, and the warning for a non-default address."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import stat
from pathlib import Path

import aiohttp
import pytest

from test_cli import EXIT_DAEMON, EXIT_OK, Proc, cli_env, run


@pytest.mark.router
async def test_daemon_serves_rpc_page_and_stream_urls(router, tmp_path: Path) -> None:
    env = cli_env(tmp_path, I2PTORRENT_SAM=f"{router.sam.host}:{router.sam.port}", I2PTORRENT_PROFILE="local")
    data = tmp_path / "data"
    magnet = f"magnet:?xt=urn:btih:{hashlib.sha1(os.urandom(8)).hexdigest()}&dn=film.mkv"
    rc, out, err = await run(env, "add", "--stream", magnet, "--data-dir", str(data), "-o", str(tmp_path / "dl"))
    assert rc == EXIT_DAEMON and "--stream needs a running daemon" in err

    # 127.0.0.2 is loopback too, but not the default: the daemon warns that others might reach it
    daemon = await Proc.start(env, "daemon", "--data-dir", str(data), "--rpc-port", "0", "--rpc-bind", "127.0.0.2")
    try:
        ready = await daemon.event(lambda e: e.get("event") == "ready")
        assert ready["rpc"].startswith("http://127.0.0.2:") and ready["rpc"].endswith("/transmission/rpc")
        assert "not loopback" in daemon.stderr.decode()
        base = ready["web"].rstrip("/")
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/") as r:
                assert r.status == 200 and "i2ptorrent" in await r.text()
        if shutil.which("transmission-remote"):
            proc = await asyncio.create_subprocess_exec("transmission-remote", base.removeprefix("http://"), "-l",
                                                        stdout=asyncio.subprocess.PIPE)
            listing, _ = await proc.communicate()
            assert proc.returncode == 0 and b"Sum:" in listing

        rc, out, err = await run(env, "add", "--stream", magnet, "--data-dir", str(data), "-o", str(tmp_path / "dl"))
        assert rc == EXIT_OK, err
        url = out.strip()
        secret = data / "daemon" / "http.secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert url == f"{base}/stream/{magnet[20:60]}/0?key={secret.read_text().strip()}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url.split("?")[0]) as r:
                assert r.status == 403
        rc, out, err = await run(env, "list", "--data-dir", str(data), "--json")
        assert rc == EXIT_OK and magnet[20:60] in out
        # one torrent's own limit from the CLI; the RPC shows it (Transmission's kB/s are 1000 bytes)
        rc, out, err = await run(env, "limits", magnet[20:28], "--download-limit", "50K", "--data-dir", str(data))
        assert rc == EXIT_OK and "film.mkv" in out and "unlimited" in out, err  # its upload: not limited
        fields = ["downloadLimit", "downloadLimited", "uploadLimited", "labels"]
        await rpc(base, "torrent-set", ids=[magnet[20:60]], labels=["kept"])
        assert await rpc(base, "torrent-get", fields=fields) == {"torrents": [
            {"downloadLimit": 51, "downloadLimited": True, "uploadLimited": False, "labels": ["kept"]}]}
        if shutil.which("transmission-remote"):  # --exit: session-close stops the daemon, resume data saved
            proc = await asyncio.create_subprocess_exec("transmission-remote", base.removeprefix("http://"),
                                                        "--exit", stdout=asyncio.subprocess.DEVNULL)
            assert await proc.wait() == 0
            rc, _ = await daemon.finish()
        else:
            rc, _ = await daemon.finish(signal.SIGTERM)
    finally:
        await daemon.kill()
    assert rc == EXIT_OK, daemon.tail()
    assert json.dumps(daemon.events).count('"ready"') == 1

    # restarted, the daemon keeps what was set on the torrent
    daemon = await Proc.start(env, "daemon", "--data-dir", str(data), "--rpc-port", "0")
    try:
        ready = await daemon.event(lambda e: e.get("event") == "ready")
        assert ready["torrents"] == 1
        got = await rpc(ready["web"].rstrip("/"), "torrent-get", fields=fields)
        assert got == {"torrents": [{"downloadLimit": 51, "downloadLimited": True, "uploadLimited": False,
                                     "labels": ["kept"]}]}
        rc, _ = await daemon.finish(signal.SIGTERM)
    finally:
        await daemon.kill()
    assert rc == EXIT_OK, daemon.tail()


async def rpc(base: str, method: str, **args: object) -> dict:
    """One Transmission RPC call, with the session-id handshake a client does."""
    url, body = base + "/transmission/rpc", json.dumps({"method": method, "arguments": args})
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body) as r:
            assert r.status == 409
            sid = r.headers["X-Transmission-Session-Id"]
        async with http.post(url, data=body, headers={"X-Transmission-Session-Id": sid}) as r:
            reply = await r.json()
    assert reply["result"] == "success", reply
    return reply["arguments"]
