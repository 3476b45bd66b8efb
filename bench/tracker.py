"""WebSocket tracker benchmark: our server against the reference `bittorrent-tracker` npm server.

One run, side by side on loopback: 1k and 5k concurrent WebSocket peers (100 info hashes), each
announce carrying 5 offers of ~600 bytes, every relayed offer answered. For each server:
  closed loop  - every peer re-announces as soon as its reply arrives: the saturated announce rate;
  fixed rate   - announces at --rate per second: p50/p99 latency at a load both servers can carry.
Prints announces/s, p50/p99, the server's CPU and RSS, and the load generator's CPU (it shares the
machine's cores with the server under test).

    python bench/tracker.py [--peers 1000 5000] [--seconds 10] [--rate 1000]

Needs node and the npm partners (scripts/setup-node.sh). Our server runs with a rate limit high
enough not to throttle the load generator (each of its peers answers many offers per second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def serve(port: int, loop: str) -> None:
    """Child process: our tracker on loopback, printing its port, until killed."""
    sys.path.insert(0, str(ROOT))
    from i2ptorrent.tracker.limits import TrackerLimits
    from i2ptorrent.tracker.server import TrackerServer

    async def main() -> None:
        server = TrackerServer(limits=TrackerLimits(rate_per_second=10_000.0, rate_burst=10_000.0))
        bound = await server.start_tcp("127.0.0.1", port)
        print(json.dumps({"port": bound}), flush=True)
        await asyncio.Event().wait()

    if loop == "uvloop":
        import uvloop  # optional, not a dependency of the package: measured to inform that choice
        uvloop.run(main())
    else:
        asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def start_server(kind: str, loop: str) -> tuple[subprocess.Popen[str], int]:
    if kind == "ours":
        cmd = [sys.executable, __file__, "--serve", "0", "--loop", loop]
        cwd = ROOT
    else:
        cmd = ["node", "reference-server.mjs", "0"]
        cwd = NODE_DIR
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, json.loads(line)["port"]


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load(port: int, server_pid: int, peers: int, mode: str, rate: int, seconds: float) -> dict:
    cmd = ["node", "loadgen.mjs", f"ws://127.0.0.1:{port}/announce", str(peers), "100", mode, str(rate),
           str(seconds), "5"]
    gen = subprocess.Popen(cmd, cwd=NODE_DIR, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert gen.stdout is not None
    try:
        first = gen.stdout.readline()
        if not first:
            raise RuntimeError("load generator failed before measuring")
        cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
        result = json.loads(gen.stdout.readline())
        cpu1, t1 = cpu_seconds(server_pid), time.monotonic()
        gen.wait(60)
    finally:
        stop(gen)  # type: ignore[arg-type]
    rss, peak = rss_mb(server_pid)
    result.update(serverCpuPercent=100 * (cpu1 - cpu0) / (t1 - t0), serverRssMB=rss, serverPeakRssMB=peak)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--peers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the whole comparison N times, interleaved (the machine is shared)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="event loop for our server (uvloop must be importable)")
    parser.add_argument("--servers", nargs="+", default=["reference", "ours"], choices=["reference", "ours"])
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.loop)
        return
    if not (NODE_DIR / "node_modules" / "ws").exists():
        sys.exit("npm partners missing: run scripts/setup-node.sh")
    rows = []
    plan = [(peers, kind, mode) for _ in range(args.repeat) for peers in args.peers
            for kind in args.servers for mode in ("closed", "rate")]
    for peers, kind, mode in plan:
        proc, port = start_server(kind, args.loop)  # a fresh server per measurement
        try:
            r = load(port, proc.pid, peers, mode, args.rate, args.seconds)
        finally:
            stop(proc)
        r.update(server=kind if kind == "reference" else f"ours/{args.loop}")
        rows.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    print(f"\n{'peers':>5} {'server':>13} {'mode':>12} {'ann/s':>7} {'p50 ms':>7} {'p99 ms':>8} "
          f"{'srv CPU%':>8} {'CPU us/ann':>10} {'RSS MB':>7} {'gen CPU%':>8} {'fail':>5} {'offers in':>9} "
          f"{'answers in':>10}")
    for r in rows:
        mode = "closed loop" if r["mode"] == "closed" else f"{args.rate}/s"
        print(f"{r['peers']:>5} {r['server']:>13} {mode:>12} {r['announcesPerSecond']:>7.0f} "
              f"{r['p50ms'] or 0:>7.1f} {r['p99ms'] or 0:>8.1f} {r['serverCpuPercent']:>8.0f} "
              f"{1e4 * r['serverCpuPercent'] / max(r['announcesPerSecond'], 1):>10.0f} "
              f"{r['serverRssMB']:>7.0f} {r['loadgenCpuPercent']:>8.0f} {r['failures']:>5} "
              f"{r['offersReceived']:>9} {r['answersReceived']:>10}")
    if len(args.servers) == 2:
        for peers in args.peers:
            def median_rate(prefix: str) -> float:
                rates = sorted(r["announcesPerSecond"] for r in rows if r["peers"] == peers
                               and r["server"].startswith(prefix) and r["mode"] == "closed")
                return rates[len(rates) // 2]
            print(f"{peers} peers: saturated throughput ours/reference = "
                  f"{median_rate('ours') / median_rate('reference'):.2f} (median of {args.repeat})")


if __name__ == "__main__":
    main()
