"""Bad input from the browser side gets an error for that socket and service for everyone else.

A real Bridge and a real Chromium in a namespace the test creates (no I2P here: the bridge's engine
seeds the file itself). While hostile WebSocket clients send garbage, oversized frames, floods, offers
that are not data-channel offers, offers aiortc cannot parse, and a flood of offers that never connect,
and a peer in the page itself opens a real data channel and sends bytes that are not the BitTorrent wire,
the page's WebTorrent client downloads the file; its bytes are compared, and each hostile client got its
own error (the garbage channel is closed by the bridge).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
from lab import VETH_ADDRESS, Chromium, NetnsLoop, PageServer, missing_requirements  # noqa: E402
from offers import chrome_offer  # noqa: E402

from i2ptorrent.bridge import Bridge, BridgeLimits  # noqa: E402
from i2ptorrent.engine import Engine, create_torrent  # noqa: E402

pytestmark = [pytest.mark.timeout(180)]

SKIP = missing_requirements()
LIMITS = BridgeLimits(max_strikes=5, rate_per_second=2.0, rate_burst=10.0, connect_timeout=6.0,
                      max_connecting_per_socket=3)


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsLoop]:
    if SKIP:
        pytest.skip(SKIP)
    loop = NetnsLoop().start()
    try:
        yield loop
    finally:
        loop.stop()


def ident(n: int) -> str:
    return f"-HX0001-{n:012d}"


def announce(info_hash: str, peer: str, sdps: list[str]) -> str:
    return orjson.dumps({"action": "announce", "info_hash": info_hash, "peer_id": peer, "numwant": len(sdps),
                         "uploaded": 0, "downloaded": 0, "left": 1, "event": "started",
                         "offers": [{"offer_id": f"{i:020d}", "offer": {"type": "offer", "sdp": s}}
                                    for i, s in enumerate(sdps)]}).decode()


async def replies(ws: aiohttp.ClientWebSocketResponse, until: float) -> tuple[list[dict[str, Any]], int | None]:
    """Frames received until the socket closes or `until` seconds pass; and the close code, if closed."""
    got: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(until):
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    got.append(orjson.loads(msg.data))
    except TimeoutError:
        return got, None
    return got, ws.close_code


async def garbage(session: aiohttp.ClientSession, url: str) -> tuple[list[dict[str, Any]], int | None]:
    ws = await session.ws_connect(url)
    for _ in range(8):
        await ws.send_str("this is not JSON")
    return await replies(ws, 10)


async def oversized(session: aiohttp.ClientSession, url: str) -> tuple[list[dict[str, Any]], int | None]:
    ws = await session.ws_connect(url)
    await ws.send_str("x" * (LIMITS.max_message_size + 1))  # refused by the parser's bound
    await ws.send_str("x" * (5 * LIMITS.max_message_size))  # refused by the socket's hard bound
    return await replies(ws, 10)


async def flood(session: aiohttp.ClientSession, url: str) -> tuple[list[dict[str, Any]], int | None]:
    ws = await session.ws_connect(url)
    for _ in range(200):
        await ws.send_str('{"action":"scrape"}')
    return await replies(ws, 10)


async def bad_offers(session: aiohttp.ClientSession, url: str, info_hash: str) -> list[dict[str, Any]]:
    ws = await session.ws_connect(url)
    not_datachannel = chrome_offer().replace("m=application 41234 UDP/DTLS/SCTP webrtc-datachannel",
                                             "m=audio 41234 UDP/TLS/RTP/SAVPF 111")
    unparsable = chrome_offer(port="notaport")
    await ws.send_str(announce(info_hash, ident(1), [not_datachannel]))
    await ws.send_str(announce(info_hash, ident(2), [unparsable]))
    got, _ = await replies(ws, 6)
    await ws.close()
    return got


async def offer_flood(session: aiohttp.ClientSession, url: str, info_hash: str,
                      bridge: Bridge) -> tuple[list[str], list[int]]:
    """Offers that look right but never connect (nobody behind them): our answers, connecting counts."""
    ws = await session.ws_connect(url)
    for n in range(10):
        await ws.send_str(announce(info_hash, ident(100 + n), [chrome_offer(candidates=(f"{VETH_ADDRESS} 9",))] * 5))
    peaks = []
    for _ in range(10):
        await asyncio.sleep(0.5)
        peaks.append(bridge.core._connecting)  # noqa: SLF001 - what the test checks
    answers, _ = await replies(ws, LIMITS.connect_timeout + 4)
    await ws.close()
    sdps = [a["answer"]["sdp"] for a in answers if "answer" in a]
    return sdps, peaks


@pytest.mark.browser
def test_hostile_sockets_get_errors_and_the_browser_is_served(lab: NetnsLoop) -> None:
    data = random.Random(3).randbytes(2 * 1024 * 1024 + 99)

    async def scenario() -> dict[str, Any]:
        tmpdir = tempfile.TemporaryDirectory(prefix="i2pt-hostile-")
        tmp = Path(tmpdir.name)
        (tmp / "seed").mkdir()
        (tmp / "seed" / "file.bin").write_bytes(data)
        engine = Engine(tmp / "state")
        await engine.start()
        bridge = Bridge(engine, limits=LIMITS)
        page = PageServer()
        chrome: Chromium | None = None
        try:
            t = await engine.add(create_torrent(tmp / "seed" / "file.bin", piece_size=32768), tmp / "seed")
            ih = t.info_hash.decode("latin-1")
            await bridge.start()
            await page.start()
            url = bridge.announce_url
            async with aiohttp.ClientSession() as session:
                hostile = asyncio.gather(garbage(session, url), oversized(session, url), flood(session, url),
                                         bad_offers(session, url, ih), offer_flood(session, url, ih, bridge))
                # as stock Chrome: host candidates hidden behind mDNS names, which the bridge never resolves
                chrome = Chromium(page.url(mode="download", magnet=t.magnet(), tracker=url, garbage="1"),
                                  mdns_hides_addresses=True).start()
                try:
                    got = await asyncio.wait_for(page.result("download"), 60)
                    # the page's second peer opened a channel, sent non-BitTorrent bytes, and was dropped
                    await asyncio.wait_for(page.result("garbage-open"), 30)
                    await asyncio.wait_for(page.result("garbage-closed"), 30)
                except BaseException:
                    print("page log:", *page.logs[-30:], bridge.stats(), chrome.log_tail(1500), sep="\n")
                    raise
                g, o, f, b, (answers, peaks) = await hostile
            # every offer that never connected gives its slot back once it times out
            async with asyncio.timeout(60):
                while bridge.core._connecting:  # noqa: SLF001 - what the test checks
                    await asyncio.sleep(0.2)
            stats = bridge.stats()
            return {"got": got, "garbage": g, "oversized": o, "flood": f, "bad_offers": b,
                    "answers": answers, "peaks": peaks, "stats": stats, "connecting": bridge.core._connecting}
        finally:
            if chrome is not None:
                chrome.stop()
            await bridge.close()
            await page.close()
            await engine.close(save_resume=False)
            tmpdir.cleanup()

    r = lab.run(scenario(), timeout=120)
    assert hashlib.sha256(r["got"]).digest() == hashlib.sha256(data).digest()
    frames, code = r["garbage"]
    assert [m["failure reason"] for m in frames] == ["invalid JSON"] * LIMITS.max_strikes and code == 1008
    frames, code = r["oversized"]
    assert [m["failure reason"] for m in frames] == ["message too large"] and code == 1009
    frames, code = r["flood"]
    reasons = [m.get("failure reason") for m in frames]
    assert reasons.count(None) >= LIMITS.rate_burst - 1 and "rate limit exceeded, slow down" in reasons
    assert code == 1008
    refused = [m["failure reason"] for m in r["bad_offers"] if "failure reason" in m]
    assert len(refused) == 2 and all(x.startswith("offer refused") for x in refused), r["bad_offers"]
    assert "data-channel" in refused[0]
    # The offer flood never had more than its per-socket share connecting, and every slot came back.
    assert max(r["peaks"]) <= LIMITS.max_connecting_per_socket + 2  # + the page's two peers
    assert 1 <= len(r["answers"]) <= 10 and r["connecting"] == 0
    # What the bridge tells a browser about itself: one address, the one the offers named.
    addresses = {line.split()[4] for sdp in r["answers"] for line in sdp.splitlines()
                 if line.startswith("a=candidate:")}
    assert addresses == {VETH_ADDRESS}, addresses
    assert r["stats"]["refused"] >= 2 * LIMITS.max_strikes

