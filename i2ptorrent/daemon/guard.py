"""Who may use the daemon's HTTP faces (RPC, web page, /stream): the rules, with no I/O.

- Host header: an IP literal, `localhost` or `localhost.` only. A DNS-rebinding page reaches us under
  its own name, so its requests are refused before anything else (Transmission's rule too).
- Basic auth, when the user configured a user:password file.
- The RPC's X-Transmission-Session-Id: a page at another origin can make the first request but cannot
  read the 409's header, so it never learns the id (CSRF protection, as Transmission).
- /stream carries the daemon's secret in its URL (`?key=`): a <video> on another origin cannot name a
  stream without it, so it learns nothing about which torrents we hold. Cross-site fetches
  (Sec-Fetch-Site: cross-site) are refused as well.
Every secret is compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..private_files import tighten, write_private

SESSION_HEADER = "X-Transmission-Session-Id"
SECRET_FILE = "http.secret"


class GuardError(Exception):
    """A secrets or auth file we refuse to use."""


def host_allowed(host_header: str | None) -> bool:
    """The Host header (port stripped) is an IP literal or localhost."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        if end < 0:
            return False
        host = host[1:end]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Guard:
    """The daemon's HTTP secrets: the session id (new every start), the stream key (kept in a 0600 file),
    and the optional basic-auth credentials."""

    session_id: str
    stream_key: str
    auth: tuple[str, str] | None = None

    def auth_ok(self, authorization: str | None) -> bool:
        if self.auth is None:
            return True
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return False
        ok_user = same(user, self.auth[0])
        ok_password = same(password, self.auth[1])
        return ok_user and ok_password

    def session_ok(self, header: str | None) -> bool:
        return same(header, self.session_id)

    def stream_ok(self, key: str | None, fetch_site: str | None) -> bool:
        return fetch_site != "cross-site" and same(key, self.stream_key)


def load_stream_key(daemon_dir: Path) -> str:
    """The daemon's stream key from daemon_dir/http.secret (made 0600 on first use)."""
    path = daemon_dir / SECRET_FILE
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            tighten(path)
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)
    write_private(path, key + "\n")
    return key


def load_auth(path: Path) -> tuple[str, str]:
    """user:password from a file only its owner can read (a password on the command line shows in ps)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise GuardError(f"{path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GuardError(f"{path}: readable by others; chmod 600 it")
    user, sep, password = text.partition(":")
    if not sep or not user or not password or "\n" in text:
        raise GuardError(f"{path}: expected one line user:password")
    return user, password


def new_guard(daemon_dir: Path, auth_file: Path | None = None) -> Guard:
    return Guard(secrets.token_urlsafe(24), load_stream_key(daemon_dir),
                 load_auth(auth_file) if auth_file is not None else None)
