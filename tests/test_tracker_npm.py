"""The real `bittorrent-tracker` npm client against our tracker on loopback.

The same scenario also runs against the reference npm server, and the WebSocket answers must agree.
Node packages come from scripts/setup-node.sh (tests/node/package-lock.json).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from i2ptorrent.tracker.access import AccessList
from i2ptorrent.tracker.server import TrackerServer

NODE_DIR = Path(__file__).parent / "node"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _require_modules() -> None:
    if not (NODE_DIR / "node_modules" / "bittorrent-tracker" / "package.json").exists():
        pytest.fail("npm partners missing: run scripts/setup-node.sh")


async def run_scenario(url: str, scenario: str = "swarm") -> list[dict]:
    _require_modules()
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "tracker-client.mjs"), url, os.urandom(20).hex(), scenario,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=NODE_DIR)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode == 0, (lines, err.decode()[-2000:])
    assert lines[-1] == {"event": "done"}
    return lines


def leecher_view(lines: list[dict]) -> list[tuple]:
    return [(d["event"], d["complete"], d["incomplete"]) for d in lines if d.get("client") == "l"]


@pytest.fixture
async def reference_server():
    _require_modules()
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "reference-server.mjs"), "0", stdout=asyncio.subprocess.PIPE,
        cwd=NODE_DIR, start_new_session=True)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)  # type: ignore[union-attr]
        yield json.loads(line)["port"]
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            await proc.wait()


@pytest.fixture
async def our_server():
    servers: list[TrackerServer] = []

    async def start(**kw) -> int:
        server = TrackerServer(**kw)
        servers.append(server)
        return await server.start_tcp()

    yield start
    for server in servers:
        await server.close()


async def test_websocket_announce_and_scrape_agree_with_the_reference_server(our_server, reference_server) -> None:
    ours = await run_scenario(f"ws://127.0.0.1:{await our_server()}/announce")
    reference = await run_scenario(f"ws://127.0.0.1:{reference_server}/announce")
    expected = [("update", 1, 1), ("scrape", 1, 1), ("update", 2, 0), ("scrape", 2, 0), ("update", 1, 0),
                ("scrape", 1, 0)]
    assert leecher_view(reference) == expected  # the scenario itself is what we think it is
    assert leecher_view(ours) == expected
    assert all(d.get("interval") == 120 for d in ours if d.get("event") == "update")
    assert not [d for d in ours if d.get("event") in ("warning", "error")]
    # Completions are counted: one peer completed while we watched.
    assert [d["downloaded"] for d in ours if d.get("client") == "l" and d["event"] == "scrape"] == [0, 1, 1]


async def test_classic_http_announce_and_scrape(our_server) -> None:
    lines = await run_scenario(f"http://127.0.0.1:{await our_server()}/announce")
    assert leecher_view(lines) == [("update", 1, 1), ("update", 2, 0), ("scrape", 2, 0), ("scrape", 1, 0)]
    assert not [d for d in lines if d.get("event") in ("warning", "error")]


async def test_private_tracker_refuses_the_reference_client(our_server, tmp_path) -> None:
    port = await our_server(access=AccessList(tmp_path / "access.json"))
    lines = await run_scenario(f"ws://127.0.0.1:{port}/announce", "denied")
    warnings = [d["message"] for d in lines if d.get("event") == "warning"]
    # The announce shows our reason; the reference client reads any scrape reply without `files`
    # (ours carries only the failure reason) as "invalid scrape response".
    assert warnings == ["access denied: this is a private tracker", "invalid scrape response"]
    assert not [d for d in lines if d.get("event") in ("update", "scrape")]
