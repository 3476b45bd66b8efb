"""Real Transmission clients drive the daemon's RPC on the session's router: Debian's transmission-remote
and transmission-rpc from PyPI add, list, stop, start, choose files, verify and remove real torrents."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
import transmission_rpc

from faces_lab import faces_lab

TIMEOUT = 180.0
pytestmark = pytest.mark.skipif(shutil.which("transmission-remote") is None,
                                reason="transmission-remote missing (bash scripts/setup.sh --test)")


async def remote(port: int, *args: str, auth: str | None = None) -> str:
    cmd = ["transmission-remote", f"127.0.0.1:{port}", *(["-n", auth] if auth else []), *args]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (cmd, out.decode(), err.decode())
    return out.decode()


async def until(check, what: str, timeout: float = TIMEOUT):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}: {got!r}"
        await asyncio.sleep(0.5)


async def flushed(lab, h: str) -> None:
    """100% means every piece verified; the engine's `complete` also means flushed to the files."""
    t = lab.daemon.client.engine.get(bytes.fromhex(h))
    await asyncio.wait_for(t.wait_complete(), 60)


def listed(out: str) -> list[str]:
    """transmission-remote -l rows, header and Sum line left out."""
    return [ln for ln in out.splitlines()[1:] if ln.strip() and not ln.startswith("Sum:")]


async def test_transmission_remote_adds_lists_stops_starts_removes(router, sam_pool, tmp_path: Path) -> None:
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        src, magnet = await lab.share("movie.bin", 3 * 1024 * 1024 + 123)
        port = lab.port
        assert "success" in await remote(port, "-a", magnet)
        h = magnet.split("btih:")[1][:40]

        async def done() -> str | None:
            rows = listed(await remote(port, "-l"))
            return rows[0] if rows and "100%" in rows[0] else None

        row = await until(done, "the magnet to complete")
        assert "movie.bin" in row and row.split()[0] == "1"
        await flushed(lab, h)
        dl = tmp_path / "downloads" / "movie.bin"
        assert dl.read_bytes() == src.read_bytes()
        info = await remote(port, "-t", h, "-i")
        assert h in info and "movie.bin" in info

        await remote(port, "-t", "1", "-S")
        assert "Stopped" in listed(await remote(port, "-l"))[0]
        await remote(port, "-t", h, "-s")
        assert "Stopped" not in listed(await remote(port, "-l"))[0]

        await remote(port, "-t", "1", "-r")
        assert listed(await remote(port, "-l")) == []
        assert dl.exists()  # -r keeps the data

        # a .torrent file from disk (transmission-remote sends it as base64 metainfo); the file is there
        torrent = tmp_path / "seed" / "torrents" / f"{h}.torrent"
        assert "success" in await remote(port, "-a", str(torrent))
        await until(done, "the re-added torrent to find its data")
        await remote(port, "-t", h, "--remove-and-delete")
        assert not dl.exists()  # deleted before the reply
        assert listed(await remote(port, "-l")) == []


async def test_transmission_rpc_from_python_with_basic_auth(router, sam_pool, tmp_path: Path) -> None:
    auth = tmp_path / "rpc-auth"
    auth.write_text("alice:s3cret\n")
    auth.chmod(0o600)
    async with faces_lab(router, sam_pool, tmp_path, auth_file=auth) as lab:
        share = tmp_path / "share" / "album"
        files = {"a.bin": 700_000, "b.bin": 500_000, "c.bin": 300_000}
        for name, size in files.items():
            (share / name).parent.mkdir(parents=True, exist_ok=True)
            (share / name).write_bytes(bytes([len(name) + size % 251]) * size)
        t = await lab.seeder.seed(share, piece_size=16384)
        h = t.info_hash.hex()
        torrent_path = tmp_path / "seed" / "torrents" / f"{h}.torrent"

        def open_client(user: str, password: str) -> transmission_rpc.Client:
            return transmission_rpc.Client(host="127.0.0.1", port=lab.port, username=user, password=password,
                                           timeout=30)

        with pytest.raises(transmission_rpc.TransmissionAuthError):
            await asyncio.to_thread(open_client, "alice", "wrong")
        c = await asyncio.to_thread(open_client, "alice", "s3cret")
        # by path, paused, without b.bin; the seeder is dialled through the magnet's x.pe
        added = await asyncio.to_thread(c.add_torrent, str(torrent_path), paused=True, files_unwanted=[1])
        assert added.hash_string == h
        got = await asyncio.to_thread(c.get_torrent, h)
        assert got.status == "stopped" and [f.selected for f in got.get_files()] == [True, False, True]
        lab.daemon.client.engine.get(t.info_hash).add_candidates([lab.seeder.b32])
        await asyncio.to_thread(c.start_torrent, h)

        async def finished() -> bool:
            tor = await asyncio.to_thread(c.get_torrent, h)
            return tor.percent_done == 1.0

        await until(finished, "the two chosen files")
        await flushed(lab, h)
        dl = tmp_path / "downloads" / "album"
        assert (dl / "a.bin").read_bytes() == (share / "a.bin").read_bytes()
        assert (dl / "c.bin").read_bytes() == (share / "c.bin").read_bytes()
        # now b.bin too: the torrent leaves "done" and fetches it
        await asyncio.to_thread(c.change_torrent, h, files_wanted=[1])
        await until(finished, "b.bin after choosing it")
        await flushed(lab, h)
        assert (dl / "b.bin").read_bytes() == (share / "b.bin").read_bytes()

        # a corrupted byte is found by verify and fetched again
        with open(dl / "c.bin", "r+b") as f:
            f.seek(1000)
            f.write(b"\xff" if (share / "c.bin").read_bytes()[1000] != 0xFF else b"\x00")
        await asyncio.to_thread(c.verify_torrent, h)
        await until(finished, "the repaired piece")
        await flushed(lab, h)
        assert (dl / "c.bin").read_bytes() == (share / "c.bin").read_bytes()

        await asyncio.to_thread(c.set_session, speed_limit_down=500, speed_limit_down_enabled=True)
        session = await asyncio.to_thread(c.get_session)
        assert session.speed_limit_down == 500 and session.speed_limit_down_enabled
        assert lab.daemon.client.engine.limits.download.rate == 500_000
        assert await asyncio.to_thread(c.free_space, str(tmp_path)) > 0
        stats = await asyncio.to_thread(c.session_stats)
        assert stats.torrent_count == 1

        await asyncio.to_thread(c.stop_torrent, h)
        assert (await asyncio.to_thread(c.get_torrent, h)).status == "stopped"
        await asyncio.to_thread(c.remove_torrent, h, delete_data=True)
        assert await asyncio.to_thread(c.get_torrents) == []
        assert not dl.exists()
        assert share.exists()  # the seeder's files are its own


async def stig(port: int, home: Path, *commands: str) -> str:
    """stig (a Transmission client with a TUI) without its TUI: `;`-chained commands, tab-separated output."""
    args: list[str] = []
    for cmd in ("set connect.host 127.0.0.1", f"set connect.port {port}", *commands):
        args += [*cmd.split(" ", 1 if cmd.startswith("add ") else -1), ";"]
    proc = await asyncio.create_subprocess_exec("stig", "--no-rc-file", "--no-tui", *args[:-1],
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                env={"HOME": str(home), "PATH": os.environ["PATH"]})
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode()


@pytest.mark.skipif(shutil.which("stig") is None, reason="stig missing (pip install .[test])")
async def test_stig_lists_and_adds(router, sam_pool, tmp_path: Path) -> None:
    async with faces_lab(router, sam_pool, tmp_path) as lab:
        home = tmp_path / "stig-home"
        home.mkdir()
        assert (await stig(lab.port, home, "ls")).strip() == ""  # no torrents yet, and no error
        src, magnet = await lab.share("song.bin", 500_000, piece_size=16384)
        out = await stig(lab.port, home, f"add {magnet}")
        assert "Added" in out and "song.bin" in out, out
        h = magnet.split("btih:")[1][:40]
        out = await stig(lab.port, home, "label stig name=song.bin")
        assert "No matching" not in out and "rror" not in out, out

        async def done() -> str | None:
            rows = (await stig(lab.port, home, "ls --columns name,%downloaded,labels,infohash")).splitlines()
            return rows[0].split("\t") if rows and float(rows[0].split("\t")[1]) == 100 else None

        row = await until(done, "the torrent stig added")
        assert row == ["song.bin", "100.0", "stig", h], row
        await flushed(lab, h)
        assert (tmp_path / "downloads" / "song.bin").read_bytes() == src.read_bytes()

