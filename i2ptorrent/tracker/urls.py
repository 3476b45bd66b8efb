"""The one tracker-URL rule, and how a tracker is reached once its URL passed it.

A tracker URL is ws://, wss:// or http:// to a host inside I2P (NAME.i2p or NAME.b32.i2p), reached over a
SAM stream. Only callers that allow it (tests, the demo) may name a loopback host with a port, reached
over plain TCP. Nothing else is accepted, so no tracker URL can lead to the clearnet. The CLI (`seed`,
`create`), the Client (a magnet's trackers, `seed`) and the tracker clients all ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..loopback import is_loopback
from ..transport.sam import StreamSession
from ..transport.stream import ByteStream
from .client import Opener, tcp_opener

SCHEMES = ("ws", "wss", "http")
EXPECTED = "expected ws://NAME.i2p/announce or http://NAME.i2p/announce"


class TrackerURLError(ValueError):
    """A tracker URL that i2ptorrent will not use; the message names it and says why."""


@dataclass(frozen=True)
class TrackerURL:
    url: str
    scheme: str
    host: str
    port: int | None

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def inside_i2p(self) -> bool:
        return self.host.endswith(".i2p")


def parse_tracker_url(url: str, allow_loopback: bool = False) -> TrackerURL:
    """The URL's parts if it passes the rule, else TrackerURLError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TrackerURLError(f"tracker {url!r}: not a URL ({EXPECTED})") from None
    host = (parts.hostname or "").lower()
    if not (host.endswith(".i2p") or (allow_loopback and is_loopback(host) and port)):
        raise TrackerURLError(f"tracker {url!r} is not an I2P address: {EXPECTED} "
                              f"(i2ptorrent only uses trackers inside I2P)")
    if parts.scheme not in SCHEMES:
        raise TrackerURLError(f"tracker {url!r}: unsupported scheme {parts.scheme!r}: {EXPECTED}")
    return TrackerURL(url, parts.scheme, host, port)


def sam_opener(session: StreamSession, url: str, timeout: float = 120.0) -> Opener:
    """An opener for the tracker clients: a new SAM stream to the URL's .i2p host."""
    host = parse_tracker_url(url).host

    async def open_() -> ByteStream:
        if host.endswith(".b32.i2p"):
            return await session.connect(host, timeout=timeout)
        return await session.connect(await session.lookup(host), timeout=timeout)  # address book name

    return open_


def tracker_opener(session: StreamSession, url: str, allow_loopback: bool, timeout: float) -> Opener:
    """How to reach a tracker: through SAM for .i2p hosts, loopback TCP only when allowed. Never clearnet."""
    found = parse_tracker_url(url, allow_loopback)
    if found.inside_i2p:
        return sam_opener(session, url, timeout)
    assert found.port is not None
    return tcp_opener(found.host, found.port)
