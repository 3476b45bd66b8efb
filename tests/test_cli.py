"""The `i2ptorrent` command run as a user runs it: subprocesses, real files, the session's real i2pd.

Offline checks (user errors and their exit codes, create/info) run many subprocesses at once. The router
test starts a seeder, a leecher and a daemon together (their SAM sessions become ready together, ~20 s),
interrupts the leecher mid-download, then restarts leecher and daemon together and checks that both
carried on from what was saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from i2ptorrent.engine import create_torrent, load_torrent, magnet_of
from i2ptorrent.transport.sam import new_destination
from i2ptorrent.wire.bencode import bencode

EXIT_OK, EXIT_USAGE, EXIT_INPUT, EXIT_I2P, EXIT_FS, EXIT_DAEMON, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 6, 130
TIMEOUT = 240.0


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("I2PTORRENT_")}
    env.update(XDG_CONFIG_HOME=str(tmp / "xdg-config"), XDG_DATA_HOME=str(tmp / "xdg-data"),
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


async def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "i2ptorrent", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def huge_torrent(path: Path, size: int) -> None:
    """A valid .torrent of one `size`-byte file (hashes are made up: it is never downloaded)."""
    plen = 1 << 28
    pieces = (size + plen - 1) // plen
    info = {b"name": b"huge.bin", b"length": size, b"piece length": plen, b"pieces": b"\x01" * 20 * pieces}
    path.write_bytes(bencode({b"info": info}))


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("i2ptorrent: ")
    return lines[0]


async def test_user_errors_are_one_line_with_their_exit_code(tmp_path: Path) -> None:
    env = cli_env(tmp_path, I2PTORRENT_SAM=f"127.0.0.1:{free_port()}")
    (tmp_path / "garbage.torrent").write_bytes(b"d4:infoi3e")
    (tmp_path / "a-file").write_text("x")
    huge = tmp_path / "huge.torrent"
    huge_torrent(huge, 8 * (shutil.disk_usage(tmp_path).free + (1 << 30)))
    share = tmp_path / "share.bin"
    share.write_bytes(os.urandom(50_000))
    good = tmp_path / "share.torrent"
    good.write_bytes(create_torrent(share))
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[tunnels]\ninbound_length = 99\n")
    cases = [
        # (args, extra env, exit code, words the message must contain)
        (("add", "magnet:?xt=urn:btih:nothex"), {}, EXIT_INPUT, "invalid magnet"),
        (("info", "magnet:?dn=no-hash"), {}, EXIT_INPUT, "magnet"),
        (("add", str(tmp_path / "garbage.torrent")), {}, EXIT_INPUT, "invalid torrent"),
        (("info", str(tmp_path / "missing.torrent")), {}, EXIT_INPUT, "no such file"),
        (("add", str(good), "--select", "2"), {}, EXIT_INPUT, "no file 2"),
        (("add", str(good), "-o", str(tmp_path / "a-file" / "sub")), {}, EXIT_FS, "cannot write"),
        (("add", str(huge), "-o", str(tmp_path / "dl")), {}, EXIT_FS, "not enough free space"),
        (("add", str(good), "-o", str(tmp_path / "dl")), {}, EXIT_I2P, "no SAM bridge answers"),
        (("seed", str(share)), {}, EXIT_I2P, "--private-router"),
        (("list",), {}, EXIT_DAEMON, "no daemon is running"),
        (("add", "--no-such-flag", str(good)), {}, EXIT_USAGE, "unrecognized arguments"),
        (("info", str(good), "--config", str(bad_config)), {}, EXIT_USAGE, "inbound_length"),
        (("info", str(good)), {"I2PTORRENT_SAM": "example.com:7656"}, EXIT_USAGE, "loopback"),
        (("create", str(share), "-t", "http://tracker.example.com/announce"), {}, EXIT_INPUT, "inside I2P"),
    ]
    # Each case in a data directory of its own: run together, two of them would meet the one-process lock
    # (a right answer, but not the one this case is about).
    results = await asyncio.gather(*(
        run({**env, "I2PTORRENT_DATA_DIR": str(tmp_path / f"data-{i}"), **extra}, *args, cwd=tmp_path)
        for i, (args, extra, _, _) in enumerate(cases)))
    for (args, _, code, words), (rc, out, err) in zip(cases, results):
        line = one_error_line(err)
        assert (rc, words in line) == (code, True), (args, rc, err)
    # --json: the error also as JSON on stdout, for scripts
    rc, out, err = await run(env, "add", "--json", "magnet:?xt=urn:btih:nothex")
    assert rc == EXIT_INPUT
    assert json.loads(out)["exit_code"] == EXIT_INPUT


async def test_create_then_info(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    d = tmp_path / "album"
    d.mkdir()
    (d / "one.bin").write_bytes(os.urandom(70_000))
    (d / "two.txt").write_text("hello")
    tracker = "ws://" + "a" * 52 + ".b32.i2p/announce"
    rc, out, err = await run(env, "create", str(d), "-o", str(tmp_path / "album.torrent"), "-t", tracker,
                             "--piece-size", "16K", "--json")
    assert rc == EXIT_OK, err
    created = json.loads(out)
    meta = load_torrent(tmp_path / "album.torrent")
    assert created["info_hash"] == meta.info_hash.hex() and meta.trackers == (tracker,)
    rc, out, err = await run(env, "info", str(tmp_path / "album.torrent"), "--json")
    assert rc == EXIT_OK, err
    info = json.loads(out)
    assert sorted(f["path"] for f in info["files"]) == ["album/one.bin", "album/two.txt"]
    assert info["size"] == 70_005 and info["piece_length"] == 16384
    # the magnet it prints names the same torrent
    rc, out, err = await run(env, "info", info["magnet"])
    assert rc == EXIT_OK and meta.info_hash.hex() in out and tracker in out
    # a second create refuses to overwrite
    rc, out, err = await run(env, "create", str(d), "-o", str(tmp_path / "album.torrent"))
    assert rc == EXIT_FS and "already exists" in one_error_line(err)


async def test_tracker_access_list_edits(tmp_path: Path) -> None:
    """invite/allow/revoke/show work on the tracker's files without any router."""
    env = cli_env(tmp_path)
    where = ("--tracker-dir", str(tmp_path / "tracker"))
    peer = "b" * 52 + ".b32.i2p"
    results = await asyncio.gather(
        run(env, "tracker", "invite", "--ttl", "7d", *where), run(env, "tracker", "allow", peer, *where))
    assert [r[0] for r in results] == [EXIT_OK, EXIT_OK], results
    rc, out, err = await run(env, "tracker", "show", "--json", *where)
    shown = json.loads(out)
    assert (rc, shown["b32"], shown["allowed"], shown["invites"]) == (EXIT_OK, None, [peer], 1)
    cases = [(("tracker", "allow", "not-a-b32", *where), EXIT_INPUT, "not a .b32.i2p"),
             (("tracker", "revoke", "c" * 52, *where), EXIT_INPUT, "not on the allowlist"),
             (("tracker", "invite", "--ttl", "soon", *where), EXIT_USAGE, "duration"),
             (("tracker", "allow", *where), EXIT_USAGE, "which destination")]
    for args, code, words in cases:
        rc, out, err = await run(env, *args)
        assert (rc, words in one_error_line(err)) == (code, True), (args, err)
    rc, out, err = await run(env, "tracker", "revoke", peer, *where)
    assert rc == EXIT_OK and "revoked" in out


class Proc:
    """A long-running CLI process: its stdout JSON lines read as they come, its stderr kept (and drained)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict] = []
        self.stderr = bytearray()
        self._drain = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr += chunk

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> "Proc":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "i2ptorrent", *args, "--json", "-vv", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    def tail(self) -> str:
        lines = [ln for ln in self.stderr.decode(errors="replace").splitlines()
                 if " block " not in ln and " piece " not in ln and "sam " not in ln]
        return f"events {self.events[-3:]}; stderr: " + "\n".join(lines[-60:])

    async def event(self, predicate, timeout: float = TIMEOUT) -> dict:
        async def scan() -> dict:
            assert self.proc.stdout is not None
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    await self.proc.wait()
                    await self._drain
                    raise AssertionError(f"process ended ({self.proc.returncode}): {self.tail()}")
                ev = json.loads(line)
                self.events.append(ev)
                if predicate(ev):
                    return ev
        try:
            return await asyncio.wait_for(scan(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for an event: {self.tail()}") from None

    async def finish(self, sig: int | None = None, timeout: float = 60) -> tuple[int, str]:
        if sig is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        await asyncio.wait_for(self.proc.wait(), timeout)
        await self._drain
        for line in rest.decode().splitlines():
            self.events.append(json.loads(line))
        return self.proc.returncode, self.stderr.decode()  # type: ignore[return-value]

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._drain.cancel()


async def disk_fills_mid_download(env: dict[str, str], magnet: str, size: int, tmp: Path) -> str | None:
    """`add` into a small tmpfs that we fill once the download is under way: exit 5, "disk full".

    Returns why it could not run (mounting needs root), else None after its assertions passed.
    """
    mnt = tmp / "small-disk"
    mnt.mkdir()
    mount = await asyncio.create_subprocess_exec("mount", "-t", "tmpfs", "-o", f"size={size + (8 << 20)}",
                                                 "tmpfs", str(mnt), stderr=asyncio.subprocess.PIPE)
    _, err = await mount.communicate()
    if mount.returncode != 0:
        return f"cannot mount a tmpfs: {err.decode().strip()}"
    proc = None
    try:
        proc = await Proc.start(env, "add", magnet, "-o", str(mnt), "--no-seed", "--data-dir", str(tmp / "full"))
        await proc.event(lambda e: e.get("event") == "progress" and e["progress"] > 0)
        st = os.statvfs(mnt)
        with open(mnt / "filler", "wb") as f:
            try:
                f.write(b"\0" * (st.f_bavail * st.f_frsize))
            except OSError:
                pass  # the download got some of the space first: full either way
        rc, err = await proc.finish()
        assert rc == EXIT_FS, err
        last = err.rstrip().splitlines()[-1]
        assert last.startswith("i2ptorrent: ") and "disk full" in last and "Traceback" not in err
        assert not any(e.get("event") == "complete" for e in proc.events)
        return None
    finally:
        if proc is not None:
            await proc.kill()
        umount = await asyncio.create_subprocess_exec("umount", str(mnt))
        await umount.wait()


async def test_add_by_magnet_interrupt_resume_and_daemon_restart(own_router, tmp_path: Path) -> None:
    """The whole life of a user's torrents across processes. It used to stall in about 1 run in 5; both
    causes are fixed and tested on their own: the restarted leecher was refused as 'already connected'
    by a seeder that never heard the first one die (engine/swarm.py: _replace_stale), and one garbled SAM
    accept ended a node's accept loop (transport/accepting.py). Since then it passed 18 runs in a row here,
    with the machine's load up to 10, so it runs once: every assertion has to pass in one run. It restarts
    nodes under the same keys, which i2pd 2.45 handles worst (the shared router once died under it in CI),
    so it runs on a router of its own."""
    router = own_router
    sam = f"{router.sam.host}:{router.sam.port}"
    env = cli_env(tmp_path, I2PTORRENT_SAM=sam, I2PTORRENT_PROFILE="local")
    share = tmp_path / "share"
    share.mkdir()
    payload = share / "big.bin"
    with open(payload, "wb") as f:
        for _ in range(128):
            f.write(os.urandom(1 << 20))
    # the seeder's identity made in advance, so its address (x.pe) is known before it starts
    seeder_dir = tmp_path / "seeder"
    dest = await new_destination(router.sam)
    dest.save(seeder_dir / "keys" / "destination.key")
    (tmp_path / "share.torrent").write_bytes(create_torrent(payload))
    meta = load_torrent(tmp_path / "share.torrent")
    magnet = magnet_of(meta, peers=[dest.b32])
    # a private tracker whose address is known in advance too, and an invite for the seeder
    tracker_dir = tmp_path / "tracker"
    tracker_dest = await new_destination(router.sam)
    tracker_dest.save(tracker_dir / "tracker.key")
    tracker_args = ("--tracker-dir", str(tracker_dir))
    rc, out, err = await run(env, "tracker", "invite", "--ttl", "1h", *tracker_args)
    assert rc == EXIT_OK, err
    invite = out.strip()
    announce = [f"ws://{tracker_dest.b32}/announce", f"http://{tracker_dest.b32}/announce"]
    procs: list[Proc] = []
    try:
        seeder, daemon, tracker = await asyncio.gather(
            Proc.start(env, "seed", str(payload), "--data-dir", str(seeder_dir), "--invite", invite,
                       "--tracker", announce[0], "--tracker", announce[1]),
            Proc.start(env, "daemon", "--data-dir", str(tmp_path / "daemon")),
            Proc.start(env, "tracker", *tracker_args))
        procs += [seeder, daemon, tracker]
        seeding = await seeder.event(lambda e: e.get("event") == "seeding")
        assert seeding["info_hash"] == meta.info_hash.hex() and dest.b32 in seeding["magnet"]
        assert all(url in seeding["magnet"] for url in announce)
        assert (await tracker.event(lambda e: e.get("event") == "ready"))["b32"] == tracker_dest.b32
        # leechers start once the seeder is up: one that connects while the seeder still checks its file
        # is never told what it has (engine: Swarm.set_store sends no HAVEs to already-connected peers)
        leecher = await Proc.start(env, "add", magnet, "-o", str(tmp_path / "dl"), "--no-seed",
                                   "--data-dir", str(tmp_path / "leecher"))
        procs.append(leecher)
        disk_full = asyncio.ensure_future(disk_fills_mid_download(env, magnet, meta.total_size, tmp_path))
        await daemon.event(lambda e: e.get("event") == "ready")
        rc, out, err = await run(env, "add", magnet, "-o", str(tmp_path / "daemon-dl"), "--select", "1",
                                 "--data-dir", str(tmp_path / "daemon"), "--json")
        assert rc == EXIT_OK, err
        assert json.loads(out)["daemon"] is True
        # interrupt the leecher part way; it must say so, exit 130 and keep what it has
        part = await leecher.event(lambda e: e.get("event") == "progress" and 0 < e["progress"] < 0.8)
        rc, err = await leecher.finish(signal.SIGINT)
        assert rc == EXIT_INTERRUPTED, err
        assert "run the same command again to resume" in err
        assert not any(e.get("event") == "complete" for e in leecher.events), "finished before Ctrl-C"
        # wait for the daemon's copy to finish, then restart the daemon and the leecher together
        deadline = asyncio.get_running_loop().time() + 150
        while True:
            rc, out, err = await run(env, "list", "--data-dir", str(tmp_path / "daemon"), "--json")
            assert rc == EXIT_OK, err
            listed = json.loads(out)["torrents"][0]
            if listed["state"] == "seeding":
                break
            assert asyncio.get_running_loop().time() < deadline, (listed, daemon.tail(), seeder.tail())
            await asyncio.sleep(1)
        rc, _ = await daemon.finish(signal.SIGTERM)
        assert rc == EXIT_OK
        skipped = await disk_full
        daemon2, leecher2, bridge = await asyncio.gather(
            Proc.start(env, "daemon", "--data-dir", str(tmp_path / "daemon"), "--bridge-port", "0"),
            Proc.start(env, "add", magnet, "-o", str(tmp_path / "dl"), "--no-seed",
                       "--data-dir", str(tmp_path / "leecher")),
            Proc.start(env, "bridge", str(tmp_path / "share.torrent"), "-o", str(share),
                       "--data-dir", str(tmp_path / "bridge")))
        procs += [daemon2, leecher2, bridge]
        ready = await daemon2.event(lambda e: e.get("event") == "ready")
        assert ready["torrents"] == 1 and ready["bridge"].startswith("ws://127.0.0.1:")
        rc, out, err = await run(env, "status", meta.info_hash.hex()[:8], "--data-dir", str(tmp_path / "daemon"),
                                 "--json")
        assert rc == EXIT_OK, err
        st = json.loads(out)["torrent"]
        assert (st["state"], st["progress"], st["downloaded"]) == ("seeding", 1.0, 0)  # from disk, not refetched
        # rate limits change in the running daemon; only the one given changes
        rc, out, err = await run(env, "limits", "--upload-limit", "2M", "--data-dir", str(tmp_path / "daemon"))
        assert rc == EXIT_OK and "download limit: unlimited" in out and "upload limit: 2.1 MB/s" in out, (out, err)
        rc, out, err = await run(env, "limits", "--data-dir", str(tmp_path / "daemon"), "--json")
        assert rc == EXIT_OK and json.loads(out)["limits"] == {"download_rate": 0, "upload_rate": 2 << 20}, err
        done = await leecher2.event(lambda e: e.get("event") == "complete")
        rc, err = await leecher2.finish()
        assert rc == EXIT_OK, err
        assert Path(done["path"]).read_bytes() == payload.read_bytes()
        assert (tmp_path / "daemon-dl" / "big.bin").read_bytes() == payload.read_bytes()
        # the second run fetched only what the first had not verified
        assert 0 < done["downloaded"] <= meta.total_size - part["pieces_done"] * meta.piece_length
        # remove through the control API; the files stay
        rc, out, err = await run(env, "remove", "big.bin", "--data-dir", str(tmp_path / "daemon"))
        assert rc == EXIT_OK and "removed" in out, err
        rc, out, err = await run(env, "list", "--data-dir", str(tmp_path / "daemon"))
        assert (rc, out.strip()) == (EXIT_OK, "no torrents")
        assert (tmp_path / "daemon-dl" / "big.bin").exists()
        # `seed` while the daemon runs hands the file to it; the magnet names the daemon's address
        small = share / "small.bin"
        small.write_bytes(os.urandom(100_000))
        rc, out, err = await run(env, "seed", str(small), "--data-dir", str(tmp_path / "daemon"), "--json")
        assert rc == EXIT_OK, err
        handed = json.loads(out)
        assert handed["daemon"] is True and ready["b32"] in handed["magnet"]
        rc, out, err = await run(env, "list", "--data-dir", str(tmp_path / "daemon"))
        assert rc == EXIT_OK and "seeding" in out and "small.bin" in out, out
        rc, _ = await daemon2.finish(signal.SIGTERM)
        assert rc == EXIT_OK
        # the browser bridge: a loopback WebSocket tracker that answers a WebTorrent scrape of our torrent
        ready = await bridge.event(lambda e: e.get("event") == "ready")
        secret = tmp_path / "bridge" / "keys" / "bridge.secret"  # the URL's capability, kept 0600
        assert ready["announce"].startswith("ws://127.0.0.1:") and (secret.stat().st_mode & 0o777) == 0o600
        assert ready["announce"].endswith(f"/{secret.read_text().strip()}/announce")
        async with aiohttp.ClientSession() as http, http.ws_connect(ready["announce"]) as ws:
            await ws.send_json({"action": "scrape", "info_hash": meta.info_hash.decode("latin-1")})
            answer = await asyncio.wait_for(ws.receive_json(), 30)
        assert answer["action"] == "scrape", answer
        assert answer["files"][meta.info_hash.decode("latin-1")]["complete"] >= 1, answer  # it seeds it
        rc, _ = await bridge.finish(signal.SIGINT)
        assert rc == EXIT_OK
        rc, _ = await seeder.finish(signal.SIGINT)
        assert rc == EXIT_OK
        # the seeder announced to the private tracker with its invite: now it is on the allowlist
        rc, out, err = await run(env, "tracker", "show", "--json", *tracker_args)
        shown = json.loads(out)
        assert (shown["b32"], shown["allowed"], shown["invites"]) == (tracker_dest.b32, [dest.b32], 0), tracker.tail()
        rc, _ = await tracker.finish(signal.SIGINT)
        assert rc == EXIT_OK
        # what each process kept (keys, secrets, the access list, torrent lists, resume data, peers) is its
        # owner's alone: no other user on the machine learns what this user shares
        for data in (seeder_dir, tmp_path / "daemon", tmp_path / "leecher", tmp_path / "bridge", tracker_dir):
            assert exposed_to_others(data) == [], data
        if skipped:
            pytest.skip(f"all checked except a disk filling mid-download: {skipped}")
    finally:
        for p in procs:
            await p.kill()
        if "disk_full" in locals() and not disk_full.done():
            disk_full.cancel()
            with contextlib.suppress(BaseException):
                await disk_full


def exposed_to_others(root: Path) -> list[str]:
    """What under `root` another local user could read: the directory itself when group or others may
    enter it, and every file with contents that they may read."""
    if root.stat().st_mode & 0o077:
        return [f"{root} mode {root.stat().st_mode & 0o777:o}"]
    return [f"{p} mode {p.stat().st_mode & 0o777:o}" for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and p.stat().st_size and p.stat().st_mode & 0o077]


def i2pd_processes_under(path: Path) -> list[int]:
    """PIDs of i2pd processes whose data directory is under `path` (to prove the demo stopped its router).
    Found by the --datadir we pass, not the program name: I2PTORRENT_I2PD may run i2pd through its loader."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(b"--datadir=" + str(path).encode()) for a in cmdline):
            pids.append(int(entry.name))
    return pids


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def run_example(name: str, tmp: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / name), env=cli_env(tmp, TMPDIR=str(tmp)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode()  # type: ignore[return-value]


@pytest.mark.router  # the demo and the examples each start an i2pd of their own
async def test_demo_and_examples_run_on_their_own_private_router(tmp_path: Path) -> None:
    """README command one and the examples: each on its own private router, nothing left behind."""
    full_tmp, cut_tmp, ex_tmp = tmp_path / "full", tmp_path / "cut", tmp_path / "examples"
    for d in (full_tmp, cut_tmp, ex_tmp):
        d.mkdir()

    async def interrupted() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "i2ptorrent", "demo", env=cli_env(cut_tmp, TMPDIR=str(cut_tmp)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stderr is not None
            while b"[3/6]" not in await asyncio.wait_for(proc.stderr.readline(), 60):
                pass
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return proc.returncode, err.decode()  # type: ignore[return-value]

    examples = ("seed_and_fetch.py", "private_tracker.py", "add_with_progress.py")
    (rc, out, err), (cut_rc, cut_err), *ran = await asyncio.gather(
        run(cli_env(full_tmp, TMPDIR=str(full_tmp)), "demo", "--size", "3M", "--json"), interrupted(),
        *(run_example(name, ex_tmp) for name in examples))
    for name, (ex_rc, ex_out) in zip(examples, ran):
        assert ex_rc == 0 and ("identical: True" in ex_out or "done:" in ex_out), (name, ex_out)
    assert rc == EXIT_OK, err
    result = json.loads(out.splitlines()[-1])
    assert result["identical"] is True and result["size"] == 3 * 1024 * 1024
    assert result["tracker"] and result["tracker"] in result["magnet"]
    assert "x.pe" not in result["magnet"]  # the leecher had only the tracker to go by
    assert cut_rc == EXIT_INTERRUPTED, cut_err
    for where in (full_tmp, cut_tmp, ex_tmp):
        assert not list(where.glob("i2ptorrent-*")), "demo or example left files behind"
        assert i2pd_processes_under(where) == [], "demo left its router running"
