"""Torrent transfer between two of our peers over SAM streams vs raw SAM stream bulk, in one run.

    python bench/transfer.py                 # 64 MiB, private i2pd started and stopped here
    python bench/transfer.py --mib 1024      # the memory goal: leecher peak RSS on a 1 GiB torrent

The leecher runs in a child process (its own SAM sessions), so its peak RSS is its own. Both
measurements go parent -> child through the same router in the same run, each between a fresh pair of
destinations (i2pd is much slower on a second stream between the same two destinations):
  raw:    one SAM stream, the parent writes N MiB, the child reads to EOF (first byte to last);
  engine: the parent seeds an N MiB torrent, the child's engine downloads it (first payload byte to
          every piece verified; the time from add, with the dial, is printed too).
Prints both rates, the ratio (goal >= 0.60) and the leecher's peak RSS (goal < 200 MB at 1 GiB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2ptorrent.engine import Engine, create_torrent  # noqa: E402
from i2ptorrent.transport.router import ManagedRouter  # noqa: E402
from i2ptorrent.transport.sam import SAMAddress, StreamSession, new_destination  # noqa: E402

MiB = 1024 * 1024
CHUNK = 256 * 1024


async def make_session(sam: SAMAddress, options: dict[str, str]) -> StreamSession:
    return await StreamSession.create(sam, await new_destination(sam), options)


# -- child: the receiving side --------------------------------------------------------------------


async def child_main(sam: SAMAddress, options: dict[str, str], workdir: Path) -> None:
    # one destination per measurement: i2pd serves a second stream between the same two destinations
    # markedly slower than the first (measured: 24-31 MB/s first, 7-15 MB/s after), so each
    # measurement gets a fresh pair
    raw_session, session = await asyncio.gather(make_session(sam, options), make_session(sam, options))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict[str, object]) -> None:
        print(json.dumps(obj), flush=True)

    reply({"raw_b32": raw_session.b32, "b32": session.b32})
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "raw":
                stream = await raw_session.accept()
                total, first = 0, None
                while data := await stream.read(CHUNK):
                    first = first or time.perf_counter()
                    total += len(data)
                end = time.perf_counter()
                await stream.close()
                reply({"bytes": total, "seconds": end - (first or end)})
            elif cmd["cmd"] == "leech":
                engine = Engine(workdir / "leech-state", dial=lambda b32: session.connect(b32, timeout=60),
                                own_addresses=[session.b32])
                await engine.start()
                t0, cpu0 = time.perf_counter(), time.process_time()
                t = await engine.add(Path(cmd["torrent"]), workdir / "download")
                t.add_candidates([cmd["seed"]])
                first = None
                done = asyncio.ensure_future(t.wait_complete())
                while not done.done():  # note when the first payload arrives (dial + handshake before it)
                    if first is None and t.status().downloaded:
                        first = time.perf_counter()
                    await asyncio.wait([done], timeout=0.01)
                end = time.perf_counter()
                seconds = end - t0
                st = t.status()
                await engine.close()
                reply({"cpu": time.process_time() - cpu0, "seconds": seconds, "transfer_seconds": end - (first or t0), "pieces": st.stats.pieces_fetched, "bytes": st.downloaded,
                       "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            else:
                break
    finally:
        await session.close()
        await raw_session.close()


# -- parent: the sending side ---------------------------------------------------------------------


async def parent_main(args: argparse.Namespace) -> None:
    size = args.mib * MiB
    work = Path(tempfile.mkdtemp(prefix="i2ptorrent-bench-"))
    router = ManagedRouter()
    child = None
    try:
        sam = await router.start()
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", "--sam", f"{sam.host}:{sam.port}",
            "--options", json.dumps(router.session_options), "--workdir", str(work / "child"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert child.stdin is not None and child.stdout is not None

        async def ask(obj: dict[str, object] | None = None) -> dict[str, object]:
            if obj is not None:
                child.stdin.write((json.dumps(obj) + "\n").encode())  # type: ignore[union-attr]
                await child.stdin.drain()  # type: ignore[union-attr]
            return json.loads(await child.stdout.readline())  # type: ignore[union-attr]

        print(f"creating SAM sessions (20 s on i2pd) and {args.mib} MiB of content ...", flush=True)
        content = work / "seed" / "bench.bin"
        content.parent.mkdir(parents=True)
        with open(content, "wb") as f:
            block = os.urandom(MiB)
            for i in range(args.mib):
                f.write(block[i % 251:] + block[:i % 251])  # distinct pieces, cheap to make
        torrent_path = work / "bench.torrent"
        torrent_path.write_bytes(create_torrent(content, piece_size=args.piece_kib * 1024 or None))
        raw_session, session, hello = await asyncio.gather(
            make_session(sam, router.session_options), make_session(sam, router.session_options), ask())

        # raw SAM stream bulk, parent -> child
        pending = asyncio.ensure_future(ask({"cmd": "raw"}))
        stream = await raw_session.connect(str(hello["raw_b32"]), timeout=60)
        payload = os.urandom(CHUNK)
        for _ in range(size // CHUNK):
            await stream.write(payload)
        await stream.close()
        raw = await pending
        raw_rate = float(raw["bytes"]) / float(raw["seconds"]) / 1e6  # type: ignore[arg-type]

        # the engine, parent seeds -> child leeches
        seed = Engine(work / "seed-state", own_addresses=[session.b32])
        await seed.start()
        accepting = asyncio.ensure_future(_accept_into(session, seed))
        await seed.add(torrent_path, content.parent)
        cpu0 = time.process_time()
        res = await ask({"cmd": "leech", "torrent": str(torrent_path), "seed": session.b32})
        seed_cpu = time.process_time() - cpu0
        eng_rate = size / float(res["transfer_seconds"]) / 1e6  # type: ignore[arg-type]
        accepting.cancel()
        await seed.close()
        child.stdin.write(b'{"cmd": "quit"}\n')
        await child.stdin.drain()

        print(f"raw SAM stream : {raw_rate:6.1f} MB/s ({raw['bytes']} bytes in {float(raw['seconds']):.2f} s)")
        print(f"engine torrent : {eng_rate:6.1f} MB/s ({args.mib} MiB, {res['pieces']} pieces verified, first "
              f"block to complete {float(res['transfer_seconds']):.2f} s; {float(res['seconds']):.2f} s from add, "
              f"dial and handshake included)")
        print(f"ratio          : {eng_rate / raw_rate:.2f}  (goal >= 0.60)")
        print(f"engine CPU     : seeder {seed_cpu:.1f} s, leecher {float(res['cpu']):.1f} s (all threads, "
              f"{float(res['seconds']):.1f} s wall)")
        print(f"leecher peak RSS: {float(res['rss_mb']):.0f} MB for a {args.mib} MiB torrent (goal < 200 MB at 1 GiB)")
        await session.close()
        await raw_session.close()
    finally:
        if child is not None and child.returncode is None:
            try:
                await asyncio.wait_for(child.wait(), 15)
            except asyncio.TimeoutError:
                child.kill()
                await child.wait()
        await router.stop()
        shutil.rmtree(work, ignore_errors=True)


async def _accept_into(session: StreamSession, engine: Engine) -> None:
    while True:
        stream = await session.accept()
        asyncio.ensure_future(engine.handle_incoming(stream))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=int, default=64, help="size to move (MiB)")
    p.add_argument("--piece-kib", type=int, default=256, help="piece size of the bench torrent (0: libtorrent's)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--sam", help=argparse.SUPPRESS)
    p.add_argument("--options", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        host, port = args.sam.rsplit(":", 1)
        asyncio.run(child_main(SAMAddress(host, int(port)), json.loads(args.options), Path(args.workdir)))
    else:
        asyncio.run(parent_main(args))


if __name__ == "__main__":
    main()
