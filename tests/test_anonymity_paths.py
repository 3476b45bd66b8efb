"""Socket audits of every path but the bridge (test_anonymity_bridge.py) and the bare engine
(test_anonymity_engine.py): each runs as a user would run it, in a child process under strace, and every
connect, bind and send must stay on the machine (tests/audit.py says what counts).

- WebRTC over the SAM stream carrier and over the SAM datagram carrier, peers meeting through a tracker
  eepsite (its WebSocket side): run as a script, this file is that child (`--rtc`).
- The daemon holding two torrents (one it seeds, one it downloads), driven by the CLI.
- The demo, its private i2pd included (strace follows it): the router's own sockets are audited too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit import Traced, run_traced  # noqa: E402

pytestmark = pytest.mark.timeout(420)


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The user's environment minus our settings, with config and data under tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("I2PTORRENT_")}
    env.update(XDG_CONFIG_HOME=str(tmp / "xdg-config"), XDG_DATA_HOME=str(tmp / "xdg-data"), TMPDIR=str(tmp),
               PYTHONUNBUFFERED="1", **extra)
    return env


async def cli(env: dict[str, str], *args: str) -> dict:
    """One `i2ptorrent ... --json` command; its JSON result."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "i2ptorrent", *args, "--json", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"i2ptorrent {' '.join(args)}: {err.decode()[-2000:]}"
    lines = out.decode().splitlines()
    return json.loads(lines[-1]) if lines else {}


async def json_event(stream: asyncio.StreamReader, name: str, timeout: float = 180) -> dict:
    """The first JSON line on a CLI process's output with "event": name (other lines are skipped)."""
    async def scan() -> dict:
        while line := await stream.readline():
            if line.startswith(b"{") and json.loads(line).get("event") == name:
                return json.loads(line)
        raise AssertionError(f"output ended before a {name!r} event")
    return await asyncio.wait_for(scan(), timeout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_webrtc_over_each_carrier_through_a_tracker_eepsite_touches_only_loopback(router, tmp_path) -> None:
    assert router.sam is not None
    audit = await run_traced(
        [sys.executable, __file__, "--rtc", "--sam", f"{router.sam.host}:{router.sam.port}",
         "--options", json.dumps(router.session_options), "--workdir", str(tmp_path / "work")],
        tmp_path / "trace.log", timeout=360)
    assert audit.returncode == 0, audit.output[-3000:]
    result = json.loads(audit.output.strip().splitlines()[-1])
    # each leecher got its pieces only over WebRTC, on the carrier it was limited to
    assert result == {"sam-stream": ["StreamCarrier"], "sam-datagram": ["DatagramCarrier"],
                      "sam-stripe": ["StripedCarrier"]}, result
    audit.check()
    # the datagram carrier's packets were seen, and went to the router's SAM UDP port
    assert any(u.call in ("sendto", "sendmsg") and (u.address, u.port) == router.sam.udp for u in audit.uses)


async def test_daemon_with_two_torrents_touches_only_loopback(router, tmp_path) -> None:
    """The daemon seeds one file and downloads another from a seeder (over plain SAM streams, x.pe)."""
    assert router.sam is not None
    env = cli_env(tmp_path, I2PTORRENT_SAM=f"{router.sam.host}:{router.sam.port}", I2PTORRENT_PROFILE="local")
    daemon_dir, seeder_dir = tmp_path / "daemon", tmp_path / "seeder"
    own, theirs = tmp_path / "own.bin", tmp_path / "theirs.bin"
    own.write_bytes(os.urandom(300_000))
    theirs.write_bytes(os.urandom(1_500_000))
    daemon = await Traced.start([sys.executable, "-m", "i2ptorrent", "daemon", "--data-dir", str(daemon_dir),
                                 "--json"], tmp_path / "trace.log", env=env)
    seeder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "i2ptorrent", "seed", str(theirs), "--data-dir", str(seeder_dir), "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    drain: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    try:
        assert daemon.proc.stdout is not None and seeder.stdout is not None
        _, seeding = await asyncio.gather(json_event(daemon.proc.stdout, "ready"),
                                          json_event(seeder.stdout, "seeding"))
        drain = asyncio.ensure_future(seeder.stdout.read())  # its progress lines must not fill the pipe
        handed = await cli(env, "seed", str(own), "--data-dir", str(daemon_dir))
        assert handed["daemon"] is True
        added = await cli(env, "add", seeding["magnet"], "-o", str(tmp_path / "dl"), "--data-dir", str(daemon_dir))
        assert added["daemon"] is True
        deadline = asyncio.get_running_loop().time() + 180
        while True:
            listed = (await cli(env, "list", "--data-dir", str(daemon_dir)))["torrents"]
            if len(listed) == 2 and all(t["state"] == "seeding" for t in listed):
                break
            assert asyncio.get_running_loop().time() < deadline, listed
            await asyncio.sleep(1)
        assert sha256(tmp_path / "dl" / theirs.name) == sha256(theirs)
        await cli(env, "stop", "--data-dir", str(daemon_dir))
        audit = await daemon.finish(60)
    finally:
        daemon.kill()
        if seeder.returncode is None:
            seeder.kill()
        await seeder.wait()
        drain.cancel()
    assert audit.returncode == 0, audit.output[-3000:]
    audit.check()
    assert router.sam.host in audit.loopback


async def test_demo_and_its_private_router_touch_only_loopback(tmp_path) -> None:
    audit = await run_traced([sys.executable, "-m", "i2ptorrent", "demo", "--json"], tmp_path / "trace.log",
                             env=cli_env(tmp_path), timeout=360)
    assert audit.returncode == 0, audit.output[-3000:]
    result = next(json.loads(line) for line in audit.output.splitlines() if '"event": "demo"' in line)
    assert result["identical"] is True
    assert audit.sam_connects >= 3  # the tracker's, the seeder's and the leecher's sessions at least
    audit.check()


# -- the audited WebRTC child ---------------------------------------------------------------------


async def run_rtc(sam_address: str, options: dict[str, str], work: Path) -> dict[str, list[str]]:
    """A tracker eepsite, a seeder offering every carrier, and one leecher per carrier; returns the carrier
    classes each leecher's peers used (a plain SAM stream peer would show as its own class name)."""
    from i2ptorrent.client import Client, ClientConfig
    from i2ptorrent.tracker.eepsite import start_tracker
    from i2ptorrent.transport.sam import SAMAddress
    from i2ptorrent.transport.sdp import CARRIER_DATAGRAM, CARRIER_STREAM, CARRIER_STRIPE

    host, port = sam_address.rsplit(":", 1)
    sam = SAMAddress(host, int(port))

    def client(name: str, *carriers: str) -> Client:
        return Client(ClientConfig(work / name, sam, dict(options), rtc_carriers=carriers))

    seeder = client("seeder", CARRIER_STREAM, CARRIER_DATAGRAM, CARRIER_STRIPE)
    leechers = {c: client(f"leecher-{c}", c) for c in (CARRIER_STREAM, CARRIER_DATAGRAM, CARRIER_STRIPE)}
    site, *_ = await asyncio.gather(start_tracker(work / "tracker", sam, dict(options), private=False),
                                    seeder.start(), *(c.start() for c in leechers.values()))
    try:
        share = work / "share.bin"
        share.write_bytes(os.urandom(1 << 20))
        t_seed = await seeder.seed(share, trackers=[site.announce_url])
        magnet = t_seed.magnet()  # the WebSocket tracker only: WebRTC is the one way to the seeder
        torrents = {c: await leecher.add(magnet, work / f"dl-{c}") for c, leecher in leechers.items()}
        seen: dict[str, set[str]] = {c: set() for c in torrents}

        async def watch(carrier: str) -> None:
            t = torrents[carrier]
            done = asyncio.ensure_future(t.wait_complete())
            while not done.done():
                seen[carrier] |= {type(getattr(p.stream, "carrier", p.stream)).__name__ for p in t.swarm.peers}
                await asyncio.wait({done}, timeout=0.05)
            await done

        await asyncio.wait_for(asyncio.gather(*(watch(c) for c in torrents)), 240)
        for c in torrents:
            assert sha256(work / f"dl-{c}" / share.name) == sha256(share)
        return {c: sorted(s) for c, s in seen.items()}
    finally:
        for c in [*leechers.values(), seeder]:
            await c.close()
        await site.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rtc", action="store_true", required=True)
    p.add_argument("--sam", required=True)
    p.add_argument("--options", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    print(json.dumps(asyncio.run(run_rtc(a.sam, json.loads(a.options), Path(a.workdir)))), flush=True)
