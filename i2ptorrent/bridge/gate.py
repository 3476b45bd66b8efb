"""Who may use the bridge: the secret in its URL, the Host header, and (optionally) the page's origin.

Any web page the user opens can reach a loopback port (WebSockets ignore the same-origin policy), and a
DNS-rebinding page can even appear to be on 127.0.0.1. So a request is served only when
- its path is `/<secret>/announce`: the secret is a capability the user gives only to their own page;
- its Host header names the bridge's own address and port: a rebinding page's Host is its own domain;
- with an origin list (`--origin`), its Origin header is on the list.
Everything else gets one and the same refusal before any WebSocket exists, so a refused page learns
nothing of what the bridge holds. Sans-I/O except for the secret file.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..private_files import tighten, write_private

log = logging.getLogger(__name__)

SECRET_BYTES = 24  # 192 bits, 32 URL-safe characters
SECRET_FILE = Path("keys") / "bridge.secret"
"""Where the CLI keeps the secret, under the data directory (beside the destination key)."""


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def load_or_create_secret(path: Path, renew: bool = False) -> str:
    """The secret stored at `path` (mode 0600), created on first use or when `renew`: a page the user
    once gave the URL keeps working across restarts until the user replaces the secret."""
    path = Path(path)
    if not renew and path.exists():
        tighten(path)
        text = path.read_text("ascii").strip()
        if len(text) >= 16 and all(c.isalnum() or c in "-_" for c in text):
            return text
        log.warning("%s does not hold a bridge secret; making a new one", path)
    secret = new_secret()
    write_private(path, secret + "\n")
    return secret


def normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True, slots=True)
class Gate:
    """The admission rule for one bridge: its secret, its own `host:port`, and its origin list."""

    secret: str
    netloc: str  # what the Host header must say, e.g. '127.0.0.1:8000'
    origins: frozenset[str] | None = None  # None: any page that holds the secret

    @classmethod
    def of(cls, secret: str, netloc: str, origins: Iterable[str] | None = None) -> "Gate":
        return cls(secret, netloc.lower(), None if origins is None else frozenset(map(normal_origin, origins)))

    @property
    def path(self) -> str:
        return f"/{self.secret}/announce"

    def admits(self, path: str, host: str | None, origin: str | None) -> bool:
        """True only for the right secret, Host and (with a list) Origin; compared in constant time."""
        secret_ok = hmac.compare_digest(path.encode("utf-8", "replace"), self.path.encode())
        host_ok = (host or "").strip().lower() == self.netloc
        origin_ok = self.origins is None or normal_origin(origin or "") in self.origins
        return secret_ok and host_ok and origin_ok
