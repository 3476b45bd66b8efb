"""i2pd's teardown of a closed SAM session, and the two waits it asks of us.

i2pd (2.45.1 here, up to 2.61 per i2pd issue 2558) keeps a closed SAM session's destination registered for
5 s (`SAMBridge::CloseSession`, sam.singlethread, the default) and then deletes it.

1. Keys used again too soon. A SESSION CREATE under the same keys within those 5 s gets the old destination
   back (`CreateNewLocalDestination` finds it) and loses it when the timer fires: the new session answers
   RESULT=OK but nobody can reach it. RetroShare sleeps 10 s for it. So every session close is noted here,
   per router and destination, and a new session under those keys waits out the rest of LINGER first. A
   close in another process (a daemon restarted at once) reaches us through a marker file next to the keys
   (sam.py keeps it for every Destination loaded from a key file: the client's and the tracker's). Times
   are wall-clock (time.time()): the only clock two processes share; a wait is clamped to LINGER, so a
   clock step costs at most one LINGER.

2. A session closed under its own streams. Closing the session stops its streams, but a stream whose SAM
   socket was still moving data can have a read posted that arms a 20 s receive timer after the stop
   (`Stream::AsyncReceive`, MAX_RECEIVE_TIMEOUT). The timer outlives the destination and fires into freed
   memory: SIGSEGV or a corrupted heap (i2pd issue 2183; AddressSanitizer: heap-use-after-free
   in `Stream::SendPackets` from `HandleReceiveTimer`, the StreamingDestination freed by
   `~SAMSingleSession`). It is the likely cause of the shared test router's SIGSEGV in CI, and would
   take down a user's router, with every other program on it. A session therefore ends its stream
   sockets first and closes its own socket only STREAMS_SETTLE after the last of them, once the router
   has seen them go.
"""

from __future__ import annotations

import logging
from pathlib import Path

from i2ptorrent.private_files import write_private

log = logging.getLogger(__name__)

LINGER = 6.0
"""i2pd's 5 s, and a margin for its timer and our clock reading."""

STREAMS_SETTLE = 1.0
"""From the last stream socket's end to the session's close: the router's SAM thread must handle each
stream socket's end before the session's (it does within milliseconds; the rest is margin for a loaded
machine)."""


def wait_left(closed_at: float | None, now: float) -> float:
    """Seconds to wait before a new session under keys closed at `closed_at`: 0 to LINGER."""
    if closed_at is None:
        return 0.0
    return min(LINGER, max(0.0, closed_at + LINGER - now))


def settle_left(last_stream_end: float | None, now: float) -> float:
    """Seconds a session still waits before it closes, its last stream socket having ended at
    `last_stream_end` (monotonic): 0 to STREAMS_SETTLE."""
    if last_stream_end is None:
        return 0.0
    return min(STREAMS_SETTLE, max(0.0, last_stream_end + STREAMS_SETTLE - now))


class ClosedDestinations:
    """When a session under each (router, destination) last closed; only closes within LINGER are kept."""

    def __init__(self) -> None:
        self._at: dict[tuple[str, str], float] = {}

    def closed(self, router: str, b32: str, at: float) -> None:
        self._at = {k: t for k, t in self._at.items() if t + LINGER > at}
        key = (router, b32)
        self._at[key] = max(at, self._at.get(key, at))

    def wait_left(self, router: str, b32: str, now: float) -> float:
        return wait_left(self._at.get((router, b32)), now)


closed_destinations = ClosedDestinations()
"""The process's one record: every SAM session of the process notes its close here."""


def marker_path(key_path: Path) -> Path:
    return Path(key_path).with_name(Path(key_path).name + ".closed")


def save_close(key_path: Path, router: str, at: float) -> None:
    """Leave the close time next to the keys, for the next process that uses them."""
    try:
        write_private(marker_path(key_path), f"{router} {at:.3f}\n")
    except OSError as exc:
        log.warning("cannot note the session close next to %s: %s", key_path, exc)


def load_close(key_path: Path, b32: str) -> None:
    """Tell this process's record of a close another process left next to the keys (a damaged or missing
    marker means no wait)."""
    try:
        router, at = marker_path(key_path).read_text().split()
        closed_destinations.closed(router, b32, float(at))
    except (OSError, ValueError):
        return
