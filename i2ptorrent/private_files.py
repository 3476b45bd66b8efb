"""The one rule for files that say who we are or what we share: keys, secrets, access lists, the torrent
list, resume data and the peer cache. They are written 0600 and atomically (a crash never leaves half a
key), in directories only their owner can list (a file name is an info hash)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) and make it 0700; an existing one is tightened, never loosened."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    tighten(path, 0o700)
    return path


def tighten(path: Path, mode: int = 0o600) -> None:
    """Drop group and other permissions from an existing file or directory, saying so once."""
    current = path.stat().st_mode & 0o777
    if current & 0o077:
        log.warning("%s was readable by others (mode %o); tightening it to %o", path, current, mode)
        os.chmod(path, mode)


def write_private(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Replace `path` with `data`, mode 0600, atomically; `durable` also fsyncs before the rename (resume
    data and the torrent list must survive a power cut, a secret is simply made again)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
