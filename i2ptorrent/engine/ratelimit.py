"""Upload and download limits: engine-wide ones shared by every peer of every torrent, and per-torrent
ones under them.

`RateLimit` is the engine's policy on the one token bucket (i2ptorrent/bucket.py, time passed in): a burst
of half a second, limits below MIN_RATE refused, old debt forgiven when the limit changes. Taking bytes may
run it into debt and the taker waits until the debt is paid, so the long-run rate is exact however many
peers take at once. `RateLimiter` is the asyncio adapter the peer tasks await. Uploads are limited per
block before it is queued; downloads by pausing the peer's reader, which lets the stream's own flow
control slow the sender (nothing is buffered beyond one read).

A torrent's `RateLimits` has the engine's as its parent: a peer's bytes pass the torrent's buckets, then
(unless the torrent is set to ignore the session's limits, Transmission's honorsSessionLimits) the
engine's, so both bound the same bytes and neither is a second implementation of the bucket.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ..bucket import TokenBucket
from ..supervisor import wait_at_most

MIN_RATE = 1024  # a limit below 1 KiB/s (other than 0, unlimited) is refused: peers would time out
MAX_RATE = 1 << 40
MIN_BURST = 16 * 1024
BURST_SECONDS = 0.5
MIN_CHUNK = 4 * 1024  # reads never go smaller than this under a limit
MAX_DEBT_SECONDS = 2.0


class RateLimit(TokenBucket):
    """Bytes per second with a burst of half a second (at least 16 KiB); rate 0 means unlimited."""

    __slots__ = ()

    def __init__(self, rate: float = 0, now: float = 0.0) -> None:
        super().__init__(0, 0, now)
        self.set_limit(rate, now)
        self.paid = self.taken + self.burst  # a fresh limit starts full

    def set_limit(self, rate: float, now: float) -> None:
        """Change the rate. Debt left over is forgiven down to MAX_DEBT_SECONDS at the new rate (debt run
        up at 10 MB/s would otherwise silence every peer for minutes at 10 KB/s); unlimited forgives all."""
        if rate < 0 or 0 < rate < MIN_RATE or rate > MAX_RATE:
            raise ValueError(f"a rate limit is 0 (unlimited) or at least {MIN_RATE} (at most {MAX_RATE}) bytes/s, "
                             f"not {rate:g}")
        burst = max(MIN_BURST, rate * BURST_SECONDS) if rate else 0.0
        self.set_rate(rate, burst, now, max_debt=MAX_DEBT_SECONDS)

    def chunk(self, largest: int) -> int:
        """How much to read at once: about a tenth of a second's worth, so peers take turns."""
        if self.unlimited:
            return largest
        return max(MIN_CHUNK, min(largest, int(self.rate / 10)))


class RateLimiter:
    """An asyncio wrapper around one RateLimit. A rate change wakes every waiter to recompute its wait,
    so raising or lifting a limit frees sleeping peers at once."""

    def __init__(self, rate: float = 0) -> None:
        self.bucket = RateLimit(rate, time.monotonic())
        self._changed = asyncio.Event()

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def set_rate(self, rate: float) -> None:
        self.bucket.set_limit(rate, time.monotonic())
        self._changed.set()
        self._changed = asyncio.Event()

    def chunk(self, largest: int) -> int:
        return self.bucket.chunk(largest)

    async def acquire(self, n: int) -> None:
        """Take `n` bytes and wait until they are paid for."""
        delay = self.bucket.charge(n, time.monotonic())
        mark = self.bucket.taken
        while delay > 0:
            if not await wait_at_most(self._changed.wait(), delay):
                return
            delay = self.bucket.until(mark, time.monotonic())


@dataclass
class RateLimits:
    """Two limiters (the engine's, or a torrent's under its `parent`); a PeerConnection holds a reference,
    so a change applies at once."""

    download: RateLimiter = field(default_factory=RateLimiter)
    upload: RateLimiter = field(default_factory=RateLimiter)
    parent: "RateLimits | None" = None
    honors_parent: bool = True

    def set(self, download_rate: float | None = None, upload_rate: float | None = None) -> None:
        if download_rate is not None:
            self.download.set_rate(download_rate)
        if upload_rate is not None:
            self.upload.set_rate(upload_rate)

    def _chain(self) -> "list[RateLimits]":
        out: list[RateLimits] = [self]
        while out[-1].honors_parent and out[-1].parent is not None:
            out.append(out[-1].parent)  # type: ignore[arg-type]
        return out

    async def acquire_download(self, n: int) -> None:
        """`n` bytes read from a peer, paid for in every limit that covers them."""
        for lim in self._chain():
            await lim.download.acquire(n)

    async def acquire_upload(self, n: int) -> None:
        for lim in self._chain():
            await lim.upload.acquire(n)

    def download_chunk(self, largest: int) -> int:
        """The read size the tightest covering limit allows."""
        return min(lim.download.chunk(largest) for lim in self._chain())
