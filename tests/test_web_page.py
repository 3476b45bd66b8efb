"""The daemon's web page in real headless Chromium, on the session's router: it loads with no console
error, shows our address, adds a magnet through its form and shows the download's progress until it
completes; limits, pause/resume, file choice and remove work from its buttons; a screenshot is kept; a
torrent's own limits and labels are set from its Settings panel and shown (as text) on its row."""

from __future__ import annotations

import asyncio
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from i2ptorrent.tracker.access import AccessList
from i2ptorrent.transport.sam import new_destination
from faces_browser import chromium_page
from faces_lab import faces_lab
from test_rpc_limits import one

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium missing")]
SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "web-page.png"  # kept for people to look at


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours) of an 8-bit RGB(A) PNG, decoded here (PIL is not a dependency)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, ctype = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and ctype in (2, 6)
    idat, pos = b"", 8
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for r in range(height):
        kind = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):  # undo the row filter (PNG spec 9.2)
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if r % 9 == 0:
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp))
        prev = line
    return width, height, len(colours)


async def settled(check, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the daemon never saw the change"
        await asyncio.sleep(0.1)


async def test_the_page_adds_a_magnet_and_shows_its_progress(router, sam_pool, tmp_path: Path) -> None:
    SCREENSHOT.unlink(missing_ok=True)
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        src, magnet = await lab.share("clip.bin", 4 * 1024 * 1024 + 77, piece_size=65536)
        h = magnet.split("btih:")[1][:40]
        engine = lab.daemon.client.engine
        # a tracker kept in the daemon's data directory (`i2ptorrent tracker invite|allow` edit these files)
        tracker_dest = await new_destination(router.sam)
        tracker_dest.save(tmp_path / "daemon" / "tracker" / "tracker.key")
        acl = AccessList.load(tmp_path / "daemon" / "tracker" / "access.json")
        invite = acl.invite(ttl=3600)
        acl.allow(lab.seeder.b32)
        async with chromium_page(lab.face.base_url + "/") as page:
            b32 = await page.wait_for("document.getElementById('b32').textContent.endsWith('.b32.i2p') && "
                                      "document.getElementById('b32').textContent")
            assert b32 == lab.daemon.client.b32
            tracker = await page.eval("document.getElementById('tracker').textContent")
            assert f"ws://{tracker_dest.b32}/announce" in tracker and "1 allowed, 1 open invite(s)" in tracker
            assert invite not in await page.eval("document.documentElement.outerHTML")  # only its digest is kept

            # limits from the page: slow enough that the page sees the download part-way
            await page.eval("document.getElementById('down-limit').value = '700';"
                            "document.getElementById('set-limits').click()")
            await page.wait_for("document.getElementById('message').textContent === 'limits applied'")
            assert engine.limits.download.rate == 700_000

            await page.eval(f"document.getElementById('magnet').value = {magnet!r};"
                            "document.getElementById('add').click()")
            row = f"document.querySelector('tr[data-hash=\"{h}\"]')"
            await page.wait_for(f"!!{row}")
            seen: list[float] = []
            while not seen or seen[-1] < 1.0:
                seen.append(float(await page.wait_for(f"{row}.dataset.progress", 10)))
                if 0 < seen[-1] < 1.0 and not SCREENSHOT.exists():  # the page mid-download
                    SCREENSHOT.parent.mkdir(exist_ok=True)
                    width, height, colours = png_size_and_colours(await page.screenshot(SCREENSHOT))
                    assert width == 1200 and height > 400 and colours >= 4  # drawn, not a blank page
                if seen[-1] < 1.0:
                    await page.wait_for(f"{row}.dataset.progress !== '{seen[-1]}'", 120)
            assert any(0 < p < 1 for p in seen), seen  # the page showed the download under way
            assert SCREENSHOT.exists()
            t = engine.get(bytes.fromhex(h))
            await asyncio.wait_for(t.wait_complete(), 60)  # verified and flushed to the file
            assert (tmp_path / "downloads" / "clip.bin").read_bytes() == src.read_bytes()
            assert "100%" in await page.eval(f"{row}.querySelector('.pct').textContent")

            await page.eval(f"[...{row}.querySelectorAll('button')].find(b => b.textContent === 'Pause').click()")
            await page.wait_for(f"{row}.textContent.includes('stopped')")
            assert t.status().state == "paused"
            await page.eval(f"[...{row}.querySelectorAll('button')].find(b => b.textContent === 'Resume').click()")
            await page.wait_for(f"{row}.textContent.includes('seeding')")

            await page.eval(f"[...{row}.querySelectorAll('button')].find(b => b.textContent === 'Files').click()")
            box = f"{row}.querySelector('input[data-file=\"0\"]')"
            await page.wait_for(f"!!{box}")
            link = await page.eval(f"{row}.querySelector('.files a').href")
            assert link.startswith(lab.face.base_url + f"/stream/{h}/0?key=")
            await page.eval(f"{box}.click()")
            await settled(lambda: t.selected_files == [])  # the daemon got it (nothing wanted now)
            await page.wait_for(f"!!{box} && !{box}.checked")
            await page.eval(f"{box}.click()")
            await settled(lambda: t.selected_files is None)
            await page.wait_for(f"!!{box} && {box}.checked")

            await page.eval("window.confirm = () => true;"
                            f"[...{row}.querySelectorAll('button')].find(b => b.textContent === 'Remove').click()")
            await page.wait_for(f"!{row} && document.getElementById('torrents').textContent.includes('no torrents')")
            assert engine.get(bytes.fromhex(h)) is None
            assert (tmp_path / "downloads" / "clip.bin").exists()

            # the .torrent upload: the file is already there, so it comes back complete
            torrent = tmp_path / "seed" / "torrents" / f"{h}.torrent"
            doc = await page.send("DOM.getDocument")
            node = await page.send("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#torrent-file")
            await page.send("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(torrent)])
            await page.wait_for(f"!!{row} && {row}.dataset.progress === '1'")
            assert page.errors == []


HOSTILE = '<img src=x onerror="window.pwned=1">'  # a label is user text: shown as text, never as markup


async def test_the_page_sets_a_torrents_limits_and_labels(router, sam_pool, tmp_path: Path) -> None:
    """Per-torrent settings from the page's Settings panel: what the user applies reaches the daemon (the
    RPC reports it), shows on the torrent's row and after a reload; a refused value shows the daemon's
    error, keeps what the user typed and changes nothing."""
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        _, magnet = await lab.share("prefs.bin", 300_000, piece_size=16384)
        h = magnet.split("btih:")[1][:40]
        async with chromium_page(lab.face.base_url + "/") as page:
            await page.wait_for("document.getElementById('b32').textContent.endsWith('.b32.i2p')")
            await page.eval(f"document.getElementById('magnet').value = {magnet!r};"
                            "document.getElementById('add').click()")
            row = f"document.querySelector('tr[data-hash=\"{h}\"]')"
            await page.wait_for(f"!!{row}")
            assert "limits ↓ off ↑ off, seed ratio off (the session's)" in await page.eval(f"{row}.textContent")

            settings = f"[...{row}.querySelectorAll('button')].find(b => b.textContent === 'Settings').click()"
            await page.eval(settings)
            await page.wait_for("!document.getElementById('prefs').hidden")
            await page.eval("document.getElementById('prefs-down').value = '25';"
                            "document.getElementById('prefs-ratio-mode').value = '1';"
                            "document.getElementById('prefs-ratio').value = '1.5';"
                            f"document.getElementById('prefs-labels').value = {'films, ' + HOSTILE!r};"
                            "document.getElementById('prefs-apply').click()")
            await page.wait_for("document.getElementById('message').textContent === 'settings applied'")
            want = {"downloadLimit": 25, "downloadLimited": True, "uploadLimited": False,
                    "seedRatioLimit": 1.5, "seedRatioMode": 1, "labels": ["films", HOSTILE]}
            assert await one(lab, h, *want) == want
            assert lab.daemon.client.engine.get(bytes.fromhex(h)).limits.download.rate == 25_000

            async def shows_them() -> None:
                text = await page.wait_for(f"{row}.textContent.includes('limits ↓ 25 kB/s ↑ off, seed ratio 1.5') "
                                           f"&& {row}.textContent")
                labels = await page.eval(f"[...{row}.querySelectorAll('.label')].map(l => l.textContent)")
                assert labels == ["films", HOSTILE] and HOSTILE in text
                assert await page.eval(f"{row}.querySelector('img') === null && window.pwned === undefined")

            await shows_them()
            await page.eval("window.before = true")
            await page.send("Page.reload")
            await page.wait_for(f"window.before === undefined && !!{row}")
            await shows_them()

            # refused: a negative limit. The daemon's error shows, the form keeps what was typed, and the
            # torrent keeps its settings (on the daemon and on the page's next refresh)
            await page.eval(settings)
            await page.wait_for("!document.getElementById('prefs').hidden && "
                                "document.getElementById('prefs-down').value === '25'")
            await page.eval("document.getElementById('prefs-down').value = '-5';"
                            "document.getElementById('prefs-labels').value = 'other';"
                            "document.getElementById('prefs-apply').click()")
            error = await page.wait_for("document.getElementById('message').className === 'error' && "
                                        "document.getElementById('message').textContent")
            assert "downloadLimit" in error and "kB/s" in error, error
            assert await page.eval("[document.getElementById('prefs-down').value, "
                                   "document.getElementById('prefs-labels').value]") == ["-5", "other"]
            assert await one(lab, h, *want) == want
            await page.eval(f"{row}.dataset.seen = '1'")
            await page.wait_for(f"!!{row} && !{row}.dataset.seen")  # the row drawn again since
            await shows_them()
            assert await page.eval("document.getElementById('prefs-down').value") == "-5"
            assert page.errors == []


PROBE_PAGE = """<!doctype html><title>probe</title><body><script>
async function probe(src) {  // what a <video> tells a page about a URL: loaded, or which error
  return new Promise((done) => {
    const v = document.createElement("video");
    v.onloadeddata = () => done("loaded");
    v.onerror = () => done(`error ${v.error && v.error.code}`);
    v.src = src;
    document.body.append(v);
  });
}
async function rpc(url) {
  try { const r = await fetch(url, {method: "POST", body: "{}"}); return `read ${r.status}`; }
  catch (e) { return `blocked ${e.name}`; }
}
window.probe = probe; window.rpc = rpc;
</script></body>"""


async def test_a_page_at_another_origin_learns_nothing(router, sam_pool, tmp_path: Path) -> None:
    """A page on another port (another origin) probes streams with <video> and calls the RPC: a held and
    an unknown hash look the same, and the RPC's answer (and its session id) cannot be read."""
    from aiohttp import web

    async with faces_lab(router, sam_pool, tmp_path) as lab:
        held = "ab" * 20
        await lab.daemon.add(f"magnet:?xt=urn:btih:{held}&dn=secret.mkv", tmp_path / "dl")
        app = web.Application()
        async def probe_page(request: web.Request) -> web.Response:
            return web.Response(text=PROBE_PAGE, content_type="text/html")

        app.router.add_get("/", probe_page)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        try:
            async with chromium_page(f"http://127.0.0.1:{port}/") as page:
                await page.wait_for("typeof window.probe === 'function'")
                base = lab.face.base_url
                results = {h: await page.eval(f"probe('{base}/stream/{h}/0')") for h in (held, "cd" * 20)}
                assert results[held] == results["cd" * 20] == "error 4", results  # the same refusal
                guessed = await page.eval(f"probe('{base}/stream/{held}/0?key=guess')")
                assert guessed == results[held]
                assert (await page.eval(f"rpc('{base}/transmission/rpc')")).startswith("blocked")
                assert (await page.eval(f"rpc('{base}/')")).startswith("blocked")
        finally:
            await runner.cleanup()
