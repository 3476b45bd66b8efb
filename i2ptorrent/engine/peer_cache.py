"""The peers a torrent last had, kept beside its resume data: a restarted client dials them first and finds
its swarm with no tracker (the founding requirement "if the server goes down, peers reconnect").

Only .b32.i2p addresses of peers that completed a handshake are kept, newest first, at most MAX_CACHED.
The file is a JSON list, written atomically (0600: who we traded with is private).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from ..private_files import write_private

log = logging.getLogger(__name__)

MAX_CACHED = 50
B32_SUFFIX = ".b32.i2p"


class PeerCache:
    """Addresses, newest first, bounded; `changed` tells whether it needs writing."""

    def __init__(self, addresses: Iterable[str] = (), limit: int = MAX_CACHED) -> None:
        self.limit = limit
        self._order: list[str] = []
        self.changed = False
        for a in addresses:
            if isinstance(a, str) and a.lower().endswith(B32_SUFFIX) and a.lower() not in self._order:
                self._order.append(a.lower())
        del self._order[limit:]

    @property
    def addresses(self) -> list[str]:
        return list(self._order)

    def seen(self, address: str) -> None:
        """A peer completed a handshake with us: it goes to the front."""
        address = address.lower()
        if not address.endswith(B32_SUFFIX):
            return  # a browser's channel or a loopback test peer: nothing to dial later
        if self._order and self._order[0] == address:
            return
        if address in self._order:
            self._order.remove(address)
        self._order.insert(0, address)
        del self._order[self.limit :]
        self.changed = True

    @classmethod
    def load(cls, path: Path) -> "PeerCache":
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("ignoring the peer cache %s: %s", path, exc)
            return cls()
        return cls(data if isinstance(data, list) else [])

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(self._order))
        self.changed = False
