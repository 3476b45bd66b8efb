"""Private-tracker access: an allowlist of destinations plus one-time invite tokens.

Kept as a small JSON file in the tracker's data directory so the `i2ptorrent tracker invite|allow|
revoke` commands can edit it while a tracker runs (the server reloads it when it changes). Invites are
stored as SHA-256 digests: reading the file does not reveal a usable token. Their expiries are stored
times, so they are wall-clock times (`clocks.wall`), set by one process and checked by another.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Callable, Iterator

from .. import clocks
from .identity import b32_to_hash
from ..private_files import write_private

FILE_NAME = "access.json"
MAX_FILE_SIZE = 16 * 1024 * 1024


def _signature(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_invite_token() -> str:
    """A one-time invite token (144 random bits, URL-safe) that never starts with '-': users pass it as
    `--invite TOKEN`, and argparse takes a value starting with '-' for an option (1 token in 64 was)."""
    while (token := secrets.token_urlsafe(18)).startswith("-"):
        pass
    return token


def normalize_destination(name: str) -> str:
    """Accept 'xxx.b32.i2p' or the bare 52 characters; return the lowercase '.b32.i2p' form."""
    name = name.strip().lower()
    if not name.endswith(".b32.i2p"):
        name += ".b32.i2p"
    if b32_to_hash(name) is None:
        raise ValueError(f"not a .b32.i2p address: {name!r}")
    return name


class AccessList:
    """Who may use a private tracker. `private=False` admits everyone (an open tracker)."""

    def __init__(self, path: Path | str | None = None, private: bool = True,
                 wall_clock: clocks.Clock = clocks.wall) -> None:
        self.path = Path(path) if path is not None else None
        self.private = private
        self.wall_clock = wall_clock
        self.allowed: set[str] = set()
        self.invites: dict[str, float | None] = {}  # sha256(token) -> expiry (unix time) or None
        self.on_change: Callable[[], None] | None = None
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) of what we last read

    # -- the CLI's API -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str, private: bool = True, wall_clock: clocks.Clock = clocks.wall) -> "AccessList":
        """Read the file if it exists (an absent file is an empty list)."""
        acl = cls(path, private, wall_clock)
        acl.reload()
        return acl

    def invite(self, ttl: float | None = None) -> str:
        """A new one-time token; the peer presents it as `invite` (message field or URL query)."""
        token = new_invite_token()
        expires = None if ttl is None else self.wall_clock() + ttl
        with self._editing():
            self.invites[_digest(token)] = expires
        return token

    def allow(self, destination: str) -> str:
        name = normalize_destination(destination)
        with self._editing():
            self.allowed.add(name)
        return name

    def revoke(self, destination: str) -> bool:
        name = normalize_destination(destination)
        with self._editing():
            present = name in self.allowed
            self.allowed.discard(name)
        return present

    # -- what the tracker core asks --------------------------------------------------------------

    def is_allowed(self, name: str) -> bool:
        return not self.private or name in self.allowed

    def redeem(self, token: str, name: str) -> bool:
        """Spend a valid invite on `name` (an I2P destination); True when it joined the allowlist.

        Takes no `now`: the tracker core's clock is monotonic, an invite's expiry is a wall-clock time."""
        if b32_to_hash(name) is None:
            return False
        key = _digest(token)
        self.reload()  # a stat; picks up invites the CLI made a moment ago
        if key not in self.invites:
            return False  # no lock, no write: strangers guessing tokens cost us nothing
        with self._editing():  # spends the invite once, even with the CLI writing too
            if key not in self.invites:
                return False
            expires = self.invites.pop(key)
            if expires is not None and expires < self.wall_clock():
                return False
            self.allowed.add(name)
        return True

    # -- persistence -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        return {"version": 1, "allowed": sorted(self.allowed),
                "invites": [{"sha256": k, "expires": v} for k, v in sorted(self.invites.items())]}

    @contextlib.contextmanager
    def _editing(self) -> Iterator[None]:
        """Read-modify-write under a lock file: the CLI and a running tracker both edit the file."""
        if self.path is None:
            yield
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.path.with_name(self.path.name + ".lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self.reload()
                yield
                self.save()
            finally:
                os.close(fd)  # releases the lock
        if self.on_change is not None:
            self.on_change()

    def save(self) -> None:
        """Write atomically with mode 0600."""
        if self.path is None:
            return
        write_private(self.path, json.dumps(self.to_json(), indent=1), durable=True)
        self._seen = _signature(self.path)

    def reload(self) -> bool:
        """Re-read the file if it changed on disk; True when it did. Bad content raises ValueError."""
        if self.path is None or not self.path.exists():
            return False
        stat = self.path.stat()
        if self._seen == _signature(self.path):
            return False
        if stat.st_size > MAX_FILE_SIZE:
            raise ValueError(f"{self.path}: too large")
        data = json.loads(self.path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: not an object")
        allowed = {normalize_destination(n) for n in data.get("allowed", [])}
        invites: dict[str, float | None] = {}
        for item in data.get("invites", []):
            key, expires = item["sha256"], item.get("expires")
            if not isinstance(key, str) or len(key) != 64:
                raise ValueError(f"{self.path}: bad invite entry")
            invites[key] = float(expires) if expires is not None else None
        self.allowed, self.invites, self._seen = allowed, invites, (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return True
