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

from ..config import MIN_RATE  # a limit below 1 KiB/s (other than 0, unlimited) is refused

MIN_BURST = 16 * 1024
BURST_SECONDS = 0.5
MIN_CHUNK = 4 * 1024  # reads never go smaller than this under a limit
MAX_DEBT_SECONDS = 2.0


class TokenBucket:
    """Bytes per second with a burst of half a second (at least 16 KiB); rate 0 means unlimited.

    Kept as two running totals: bytes taken, and bytes paid for (the burst plus the rate over time, never
    more than a burst ahead of what was taken). A taker's bytes are paid once `paid` reaches the total
    just after its take (its mark), so every waiter can recompute its own wait when the rate changes.
    """

    def __init__(self, rate: float = 0, now: float = 0.0) -> None:
        self.rate = 0.0
        self.burst = 0.0
        self.taken = 0.0
        self.paid = 0.0
        self.stamp = now
        self.set_rate(rate, now)
        self.paid = self.taken + self.burst  # a fresh bucket starts full

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    @property
    def tokens(self) -> float:
        """Bytes that may go now without waiting (negative: the debt being waited out)."""
        return self.paid - self.taken

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate. Debt left over is forgiven down to MAX_DEBT_SECONDS at the new rate (debt run
        up at 10 MB/s would otherwise silence every peer for minutes at 10 KB/s); unlimited forgives all."""
        if rate < 0 or 0 < rate < MIN_RATE:
            raise ValueError(f"a rate limit is 0 (unlimited) or at least {MIN_RATE} bytes/s, not {rate:g}")
        self._refill(now)
        self.rate = float(rate)
        self.burst = max(MIN_BURST, self.rate * BURST_SECONDS) if rate else 0.0
        if self.unlimited:
            self.paid = self.taken
        else:
            self.paid = min(self.taken + self.burst, max(self.paid, self.taken - self.rate * MAX_DEBT_SECONDS))

    def _refill(self, now: float) -> None:
        if self.rate and now > self.stamp:
            self.paid = min(self.taken + self.burst, self.paid + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, n: int, now: float) -> float:
        """Spend `n` bytes; returns how many seconds the caller must wait before sending/reading them.
        `taken` right after the call is the caller's mark for `until`."""
        if self.unlimited:
            return 0.0
        self._refill(now)
        self.taken += n
        return self.until(self.taken, now)

    def until(self, mark: float, now: float) -> float:
        """Seconds until the bytes up to `mark` are paid for."""
        if self.unlimited:
            return 0.0
        self._refill(now)
        return max(0.0, min(mark, self.taken) - self.paid) / self.rate

    def chunk(self, largest: int) -> int:
        """How much to read at once: about a tenth of a second's worth, so peers take turns."""
        if self.unlimited:
            return largest
        return max(MIN_CHUNK, min(largest, int(self.rate / 10)))


class RateLimiter:
    """An asyncio wrapper around one TokenBucket. A rate change wakes every waiter to recompute its wait,
    so raising or lifting a limit frees sleeping peers at once."""

    def __init__(self, rate: float = 0) -> None:
        self.bucket = TokenBucket(rate, time.monotonic())
        self._changed = asyncio.Event()

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def set_rate(self, rate: float) -> None:
        self.bucket.set_rate(rate, time.monotonic())
        self._changed.set()
        self._changed = asyncio.Event()

    def chunk(self, largest: int) -> int:
        return self.bucket.chunk(largest)

    async def acquire(self, n: int) -> None:
        """Take `n` bytes and wait until they are paid for."""
        delay = self.bucket.take(n, time.monotonic())
        mark = self.bucket.taken
        while delay > 0:
            try:
                await asyncio.wait_for(self._changed.wait(), delay)
            except asyncio.TimeoutError:
                return
            delay = self.bucket.until(mark, time.monotonic())


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
