"""WebSocket tracker benchmark: our server against the reference `bittorrent-tracker` npm server.

One run, side by side on loopback: 1k and 5k concurrent WebSocket peers (100 info hashes), each
announce carrying 5 offers of ~600 bytes, every relayed offer answered. For each server:
  closed loop  - every peer re-announces as soon as its reply arrives: the saturated announce rate;
  fixed rate   - announces at --rate per second: p50/p99 latency at a load both servers can carry.
Prints announces/s, p50/p99, the server's CPU and RSS, and the load generator's CPU (it shares the
machine's cores with the server under test).

    python bench/tracker.py [--peers 1000 5000] [--seconds 10] [--rate 1000]
    python bench/tracker.py --instances 1,2 [--peers 5000]

With --instances, ours also runs with its swarms in Redis (a redis-server the bench starts on loopback,
persistence on as in production): one instance, and two instances sharing the swarms (the load
generator's peers alternate between them, so most offers and answers cross instances). Its last lines
compare saturated rates: `redis/memory` (one instance on Redis over one in memory) and `two
instances/one` (two on Redis over one on Redis). Server CPU is summed over the instances; Redis's own
CPU is shown apart. Before them, what bounds the saturated rates: the CPU each part spends per
announce (servers, the load generator, Redis), the load generator's own ceiling (one node process on
one thread: a whole core over its CPU per announce), and the most that all parts together allow on this
machine's cores, which is the bound on `two instances/one` here whatever the tracker does.

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
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def serve(port: int, loop: str, redis_url: str | None) -> None:
    """Child process: our tracker on loopback, printing its port, until killed."""
    sys.path.insert(0, str(ROOT))
    from i2ptorrent.tracker.limits import TrackerLimits
    from i2ptorrent.tracker.redis_store import RedisSwarmStore
    from i2ptorrent.tracker.server import TrackerServer

    async def main() -> None:
        limits = TrackerLimits(rate_per_second=10_000.0, rate_burst=10_000.0)
        store = await RedisSwarmStore.connect(redis_url) if redis_url else None
        server = TrackerServer(limits=limits, store=store)
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


def start_server(kind: str, loop: str, redis_url: str | None = None) -> tuple[subprocess.Popen[str], int]:
    if kind == "ours":
        cmd = [sys.executable, __file__, "--serve", "0", "--loop", loop, *(["--redis", redis_url] if redis_url else [])]
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


def load(ports: list[int], server_pids: list[int], peers: int, mode: str, rate: int, seconds: float,
         redis_pid: int | None = None) -> dict:
    urls = ",".join(f"ws://127.0.0.1:{port}/announce" for port in ports)
    cmd = ["node", "loadgen.mjs", urls, str(peers), "100", mode, str(rate), str(seconds), "5"]
    gen = subprocess.Popen(cmd, cwd=NODE_DIR, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert gen.stdout is not None
    watched = [*server_pids, *([redis_pid] if redis_pid else [])]
    try:
        first = gen.stdout.readline()
        if not first:
            raise RuntimeError("load generator failed before measuring")
        cpu0, t0 = [cpu_seconds(p) for p in watched], time.monotonic()
        result = json.loads(gen.stdout.readline())
        cpu1, t1 = [cpu_seconds(p) for p in watched], time.monotonic()
        gen.wait(60)
    finally:
        stop(gen)  # type: ignore[arg-type]
    used = [100 * (b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1)]
    rss = [rss_mb(p) for p in server_pids]
    result.update(serverCpuPercent=sum(used[:len(server_pids)]), serverRssMB=sum(r for r, _ in rss),
                  serverPeakRssMB=sum(p for _, p in rss), redisCpuPercent=used[-1] if redis_pid else None)
    return result


def start_target(kind: str, loop: str, redis: "RedisServer | None") -> list[tuple[subprocess.Popen[str], int]]:
    """'reference', 'ours' (in memory), or 'ours/redisxN' (N instances sharing swarms in Redis)."""
    if not kind.startswith("ours/redis"):
        return [start_server(kind, loop)]
    assert redis is not None
    import redis as redis_client  # a dependency of the package
    with redis_client.Redis.from_url(redis.url) as r:
        r.flushall()  # each measurement starts from empty swarms, like a fresh in-memory server
    return [start_server("ours", loop, redis.url) for _ in range(int(kind.rsplit("x", 1)[1]))]


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def cpu_per_announce(runs: list[dict]) -> tuple[float, float, float]:
    """Median CPU microseconds per announce: servers, load generator, Redis."""
    def us(key: str) -> float:
        return median([1e4 * (r[key] or 0) / max(r["announcesPerSecond"], 1) for r in runs])
    return us("serverCpuPercent"), us("loadgenCpuPercent"), us("redisCpuPercent")


def ceiling(runs: list[dict], servers: int = 1) -> float:
    """Announces/s this machine allows at these CPU costs, however loaded it was: every server process
    and the generator run on one thread each (at most a core each), and all parts share the cores."""
    srv, gen, red = cpu_per_announce(runs)
    return min(servers * 1e6 / max(srv, 1), 1e6 / max(gen, 1), (os.cpu_count() or 1) * 1e6 / max(srv + gen + red, 1))


def instances_of(kind: str) -> int:
    return int(kind.rsplit("x", 1)[1]) if kind.startswith("ours/redisx") else 1


def budget(measured: list[tuple[str, list[dict]]], repeat: int) -> str:
    """Where the CPU goes per saturated announce, and what that allows on this machine's cores."""
    cores = os.cpu_count() or 1
    lines = [f"\nsaturated (closed loop), median [min-max] of {repeat}; CPU per announce in us; "
             f"load average now {os.getloadavg()[0]:.1f} on {cores} cores:"]
    for kind, runs in measured:
        rates = sorted(r["announcesPerSecond"] for r in runs)
        srv, gen, red = cpu_per_announce(runs)
        used = median([r["serverCpuPercent"] + r["loadgenCpuPercent"] + (r["redisCpuPercent"] or 0) for r in runs])
        lines.append(f"  {kind:>12}: {median(rates):>5.0f} [{rates[0]:.0f}-{rates[-1]:.0f}] ann/s; "
                     f"server {srv:.0f} + generator {gen:.0f} + redis {red:.0f} us; all parts use {used:.0f} % CPU; "
                     f"generator alone <= {1e6 / max(gen, 1):.0f} ann/s (one core); this machine allows "
                     f"<= {ceiling(runs, instances_of(kind)):.0f} ann/s")
    return "\n".join(lines)


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
    parser.add_argument("--instances", metavar="1,2",
                        help="also ours on Redis with these numbers of instances (default peers: 5000)")
    parser.add_argument("--redis", help=argparse.SUPPRESS)  # for --serve
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.loop, args.redis)
        return
    if not (NODE_DIR / "node_modules" / "ws").exists():
        sys.exit("npm partners missing: run scripts/setup-node.sh")
    instances = [int(n) for n in args.instances.split(",")] if args.instances else []
    kinds = [*args.servers, *(f"ours/redisx{n}" for n in instances)]
    peer_counts = args.peers if not instances or "--peers" in sys.argv else [5000]
    redis = None
    if instances:
        sys.path.insert(0, str(ROOT / "tests"))
        from redis_server import RedisServer  # the tests' loopback redis-server (own port, temp dir)
        redis = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-"))).start()
    rows = []
    plan = [(peers, kind, mode) for _ in range(args.repeat) for peers in peer_counts
            for kind in kinds for mode in ("closed", "rate")]
    try:
        for peers, kind, mode in plan:
            servers = start_target(kind, args.loop, redis)  # fresh servers per measurement
            try:
                r = load([port for _, port in servers], [p.pid for p, _ in servers], peers, mode, args.rate,
                         args.seconds, redis.proc.pid if redis and redis.proc and "redis" in kind else None)
            finally:
                for proc, _ in servers:
                    stop(proc)
            r.update(server=kind if kind == "reference" else kind.replace("ours", f"ours/{args.loop}", 1))
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        if redis is not None:
            redis.stop()
            shutil.rmtree(redis.directory, ignore_errors=True)
    print(f"\n{'peers':>5} {'server':>22} {'mode':>12} {'ann/s':>7} {'p50 ms':>7} {'p99 ms':>8} "
          f"{'srv CPU%':>8} {'CPU us/ann':>10} {'RSS MB':>7} {'redis%':>6} {'gen CPU%':>8} {'fail':>5} "
          f"{'offers in':>9} {'answers in':>10}")
    for r in rows:
        mode = "closed loop" if r["mode"] == "closed" else f"{args.rate}/s"
        redis_cpu = f"{r['redisCpuPercent']:.0f}" if r.get("redisCpuPercent") is not None else "-"
        print(f"{r['peers']:>5} {r['server']:>22} {mode:>12} {r['announcesPerSecond']:>7.0f} "
              f"{r['p50ms'] or 0:>7.1f} {r['p99ms'] or 0:>8.1f} {r['serverCpuPercent']:>8.0f} "
              f"{1e4 * r['serverCpuPercent'] / max(r['announcesPerSecond'], 1):>10.0f} "
              f"{r['serverRssMB']:>7.0f} {redis_cpu:>6} {r['loadgenCpuPercent']:>8.0f} {r['failures']:>5} "
              f"{r['offersReceived']:>9} {r['answersReceived']:>10}")

    def closed(peers: int, server: str) -> list[dict]:
        return [r for r in rows if r["peers"] == peers and r["server"] == server and r["mode"] == "closed"]

    def median_rate(peers: int, server: str) -> float:
        return median([r["announcesPerSecond"] for r in closed(peers, server)])

    ours = f"ours/{args.loop}"
    if instances:
        print(budget([(kind, closed(peer_counts[-1], kind if kind == "reference" else
                                    kind.replace("ours", ours, 1))) for kind in kinds], args.repeat))
    for peers in peer_counts:
        if {"reference", "ours"} <= set(kinds):
            print(f"{peers} peers: saturated throughput ours/reference = "
                  f"{median_rate(peers, ours) / median_rate(peers, 'reference'):.2f} (median of {args.repeat})")
    if instances:
        peers = peer_counts[-1]
        one, two = median_rate(peers, ours + "/redisx1") if 1 in instances else 0.0, ours + "/redisx2"
        if one and 2 in instances:
            x1, x2 = closed(peers, ours + "/redisx1"), closed(peers, two)
            print(f"bound on this machine ({os.cpu_count()} cores for all parts): two instances/one <= "
                  f"{ceiling(x2, 2) / ceiling(x1):.2f} at the CPU per announce measured, <= "
                  f"{ceiling(x1, 2) / ceiling(x1):.2f} even if two cost no more per announce than one")
        if "ours" in kinds and one:
            print(f"redis/memory = {one / median_rate(peers, ours):.2f}")
        if one and 2 in instances:
            print(f"two instances/one = {median_rate(peers, two) / one:.2f}")


if __name__ == "__main__":
    main()
