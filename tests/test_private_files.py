"""The one rule for private files: 0600, atomic, in 0700 directories, whatever the umask."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from i2ptorrent.private_files import private_dir, tighten, write_private


@pytest.fixture
def loose_umask():
    old = os.umask(0o002)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_written_0600_and_replaced_whole(tmp_path: Path, loose_umask) -> None:
    path = tmp_path / "keys" / "destination.key"
    write_private(path, "first\n")
    assert path.read_text() == "first\n" and mode(path) == 0o600
    write_private(path, b"second", durable=True)
    assert path.read_bytes() == b"second" and mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["destination.key"]  # no temporary left


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_private(path, "kept")
    with pytest.raises(TypeError):
        write_private(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_directories_are_made_and_tightened_to_0700(tmp_path: Path, loose_umask, caplog) -> None:
    made = private_dir(tmp_path / "a" / "data")
    assert mode(made) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with caplog.at_level(logging.WARNING):
        private_dir(shared)
    assert mode(shared) == 0o700 and "readable by others" in caplog.text


def test_tighten_never_loosens(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    os.chmod(path, 0o400)
    tighten(path)
    assert mode(path) == 0o400
    os.chmod(path, 0o644)
    tighten(path)
    assert mode(path) == 0o600
