"""The filesystem as a command sees it: a directory we can write, room for a download, a storage error."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from i2ptorrent.app.errors import EXIT_FS, UserError
from i2ptorrent.app.progress import format_bytes


def writable_dir(path: Path) -> Path:
    """Create `path` if needed and prove we can write there (as root, permission bits do not tell)."""
    path = path.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".i2ptorrent-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to {path}: {exc.strerror or exc}", EXIT_FS) from None
    return path.resolve()


def check_free_space(meta: Any, out: Path, selected: Sequence[int] | None) -> None:
    """Refuse at once when the files cannot fit, rather than failing mid-download with a full disk."""
    if not meta.has_metadata:
        return
    files = meta.files
    wanted = [f for i, f in enumerate(files) if selected is None or i in selected]
    needed = 0
    for f in wanted:
        try:
            have = (out / f.path).stat().st_size
        except OSError:
            have = 0
        needed += max(0, f.size - have)
    free = shutil.disk_usage(out).free
    if needed > free:
        raise UserError(f"not enough free space in {out}: the torrent needs {format_bytes(needed)}, "
                        f"{format_bytes(free)} free", EXIT_FS)


def storage_failure(t: Any, out: Path) -> UserError | None:
    """libtorrent's storage error for a torrent (disk full, file unwritable) as a user error, if it has one."""
    err = t.status().error
    if not err:
        return None
    if "space" in err.lower():
        return UserError(f"{out}: disk full ({err})", EXIT_FS)
    return UserError(f"{out}: cannot write the download ({err})", EXIT_FS)
