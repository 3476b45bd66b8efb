"""Engine-wide upload and download limits, shared by every peer of every torrent.

`TokenBucket` is the sans-I/O core (time passed in): taking bytes may run the bucket into debt, and the
taker waits until the debt is paid, so the long-run rate is exact however many peers take at once.
`RateLimiter` is the asyncio adapter the peer tasks await. Uploads are limited per block before it is
queued; downloads by pausing the peer's reader, which lets the stream's own flow control slow the
sender (nothing is buffered beyond one read).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

MIN_BURST = 16 * 1024
BURST_SECONDS = 0.5
MIN_CHUNK = 16 * 1024  # one block: reads and writes never go smaller than this under a limit


class TokenBucket:
    """Bytes per second with a burst of half a second (at least 16 KiB); rate 0 means unlimited."""

    def __init__(self, rate: float = 0, now: float = 0.0) -> None:
        self.rate = 0.0
        self.burst = 0.0
        self.tokens = 0.0
        self.stamp = now
        self.set_rate(rate, now)
        self.tokens = self.burst  # a fresh bucket starts full

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def set_rate(self, rate: float, now: float) -> None:
        if rate < 0:
            raise ValueError("a rate limit cannot be negative")
        self._refill(now)
        self.rate = float(rate)
        self.burst = max(MIN_BURST, self.rate * BURST_SECONDS) if rate else 0.0
        self.tokens = min(self.tokens, self.burst)

    def _refill(self, now: float) -> None:
        if self.rate and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, n: int, now: float) -> float:
        """Spend `n` bytes; returns how many seconds the caller must wait before sending/reading them."""
        if self.unlimited:
            return 0.0
        self._refill(now)
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def chunk(self, largest: int) -> int:
        """How much to read or send at once: about a tenth of a second's worth, so peers take turns."""
        if self.unlimited:
            return largest
        return max(MIN_CHUNK, min(largest, int(self.rate / 10)))


class RateLimiter:
    """An asyncio wrapper around one TokenBucket."""

    def __init__(self, rate: float = 0) -> None:
        self.bucket = TokenBucket(rate, time.monotonic())

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def set_rate(self, rate: float) -> None:
        self.bucket.set_rate(rate, time.monotonic())

    def chunk(self, largest: int) -> int:
        return self.bucket.chunk(largest)

    async def acquire(self, n: int) -> None:
        delay = self.bucket.take(n, time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class RateLimits:
    """The engine's two limiters; a PeerConnection holds a reference, so a change applies at once."""

    download: RateLimiter = field(default_factory=RateLimiter)
    upload: RateLimiter = field(default_factory=RateLimiter)

    def set(self, download_rate: float | None = None, upload_rate: float | None = None) -> None:
        if download_rate is not None:
            self.download.set_rate(download_rate)
        if upload_rate is not None:
            self.upload.set_rate(upload_rate)
