"""Browser download through the bridge vs the same transfer between two i2ptorrent clients, one run.

Everything runs in a network namespace of its own (tests/browser/lab.py: needs root, Chromium and the
webtorrent bundle from scripts/setup-browser.sh) with a private i2pd. One seeder engine serves a file over
I2P; then, side by side in the same run:
  i2p     another i2ptorrent engine downloads it from the seeder over I2P;
  bridge  Chromium (stock webtorrent) downloads it through the bridge whose engine already has it
          (the WebRTC leg alone);
  e2e     Chromium downloads it through a bridge whose engine fetches it from the seeder over I2P at the
          same time (what a browser user sees).
Times run from the torrent's add (engine) or `client.add` (page) to completion, metadata included.

Usage: python bench/bridge.py [--mib 32]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "browser"))
from lab import Chromium, I2PWorld, NetnsLoop, missing_requirements  # noqa: E402

from i2ptorrent.bridge import Bridge  # noqa: E402
from i2ptorrent.engine import Engine, create_torrent  # noqa: E402


args_timeout = 600.0


async def browser_download(w: I2PWorld, bridge: Bridge, magnet: str, data: bytes) -> float:
    w.page.reset()
    chrome = Chromium(w.page.url(mode="download", magnet=magnet, tracker=bridge.announce_url)).start()
    w.chromes.append(chrome)
    try:
        seconds = float((await asyncio.wait_for(w.page.result("seconds"), args_timeout)).decode())
        got = await asyncio.wait_for(w.page.result("download"), 120)
    except BaseException:
        print("page log:", *w.page.logs[-20:], f"bridge: {bridge.stats()}", chrome.log_tail(2000), sep="\n")
        raise
    finally:
        w.stop_browsers()
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        raise SystemExit("the browser's bytes differ from the seeded file")
    return seconds


async def engine_download(engine: Engine, magnet: str, save: Path) -> float:
    start = time.perf_counter()
    t = await engine.add(magnet, save)
    await asyncio.wait_for(t.wait_complete(), 600)
    return time.perf_counter() - start


async def run(w: I2PWorld, mib: int) -> None:
    seeder, i2p_client, e2e_engine, bridge_engine = w.engines
    data = random.Random(mib).randbytes(mib * 1024 * 1024)
    seed_dir = w.tmp / "seed"
    seed_dir.mkdir()
    (seed_dir / "bench.bin").write_bytes(data)
    t = await seeder.add(create_torrent(seed_dir / "bench.bin", piece_size=256 * 1024), seed_dir)
    over_i2p = t.magnet(peers=[w.sessions[0].b32])
    plain = t.magnet()

    i2p = await engine_download(i2p_client, over_i2p, w.tmp / "i2p-dl")
    assert (w.tmp / "i2p-dl" / "bench.bin").read_bytes() == data
    # the bridge leg alone: the bridge's engine has the file already
    await bridge_engine.add(create_torrent(seed_dir / "bench.bin", piece_size=256 * 1024), seed_dir)
    leg = await browser_download(w, w.bridge, plain, data)
    # end to end: a second bridge whose engine fetches over I2P while the browser fetches from it
    e2e_bridge = Bridge(e2e_engine)
    await e2e_bridge.start()
    try:
        await e2e_engine.add(over_i2p, w.tmp / "e2e-dl")
        e2e = await browser_download(w, e2e_bridge, plain, data)
    finally:
        await e2e_bridge.close()

    size = len(data) / 1e6
    print(f"file {mib} MiB, piece 256 KiB, private 0-hop i2pd, Chromium {w.chromium_version}")
    for name, secs in (("i2p     engine <- engine over I2P", i2p), ("bridge  browser <- bridge (has it)", leg),
                       ("e2e     browser <- bridge <- I2P", e2e)):
        print(f"{name:38s} {secs:7.2f} s  {size / secs:7.2f} MB/s")
    print(f"ratio bridge/i2p (throughput) {i2p / leg:.2f}")
    print(f"ratio e2e/i2p    (throughput) {i2p / e2e:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=600.0, help="per browser download, seconds")
    args = ap.parse_args()
    global args_timeout
    args_timeout = args.timeout
    why = missing_requirements()
    if why:
        raise SystemExit(f"cannot run: {why}")
    lab = NetnsLoop().start()
    tmp = tempfile.TemporaryDirectory(prefix="i2pt-bench-bridge-")
    w = I2PWorld(Path(tmp.name), names=("seeder", "i2p-client", "e2e", "bridge"))
    try:
        lab.run(w.start(), timeout=120)
        lab.run(run(w, args.mib), timeout=1800)
    finally:
        try:
            lab.run(w.close(), timeout=60)
        finally:
            w.stop_browsers()
            lab.stop()
            if w.router.process is not None and w.router.process.poll() is None:
                w.router.kill()
            tmp.cleanup()


if __name__ == "__main__":
    main()
