"""I2PTORRENT_I2PD names the i2pd a managed router runs (e.g. a newer i2pd beside the system's); one that
cannot run is a clear error naming it, never a silent fall back to another router or a 30 s wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from i2ptorrent.transport.router import I2PD_ENV, ManagedRouter, RouterError, i2pd_executable
from i2ptorrent.transport.sam import sam_answers

pytestmark = pytest.mark.router


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


async def test_missing_override_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-i2pd"
    monkeypatch.setenv(I2PD_ENV, str(missing))
    router = ManagedRouter(datadir=tmp_path / "router")
    with pytest.raises(RouterError) as err:
        await router.start()
    assert f"{I2PD_ENV}={missing} is not an executable file" in str(err.value)
    assert router.process is None


async def test_not_executable_override_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "i2pd"
    plain.write_text("not a program\n")  # mode 0644
    monkeypatch.setenv(I2PD_ENV, str(plain))
    with pytest.raises(RouterError, match="is not an executable file"):
        await ManagedRouter(datadir=tmp_path / "router").start()


async def test_override_that_fails_to_run_reports_its_error(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapper whose private loader or libraries are gone: its own message comes back at once."""
    broken = script(tmp_path / "i2pd-new", "echo 'ld-linux-x86-64.so.2: cannot open shared object file' >&2\n"
                                           "exit 127\n")
    monkeypatch.setenv(I2PD_ENV, str(broken))
    router = ManagedRouter(datadir=tmp_path / "router")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RouterError) as err:
        await router.start()
    assert loop.time() - started < 10, "a router that exited was waited for as if it were starting"
    message = str(err.value)
    assert f"{broken} exited at start (code 127)" in message
    assert "cannot open shared object file" in message


async def test_override_is_the_router_that_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = i2pd_executable()  # the system i2pd, or the one this test run was told to use
    marker = tmp_path / "wrapper-ran"
    wrapper = script(tmp_path / "i2pd-wrapper", f'echo "$@" > "{marker}"\nexec "{real}" "$@"\n')
    monkeypatch.setenv(I2PD_ENV, str(wrapper))
    async with ManagedRouter(datadir=tmp_path / "router") as router:
        assert router.sam is not None and await sam_answers(router.sam)
        assert router.executable == str(wrapper)
        assert f"--conf={tmp_path / 'router'}/i2pd.conf" in marker.read_text()
