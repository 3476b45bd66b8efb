"""The one token bucket: engine rate limits, SAM datagram pacing, the carrier's pacing, tracker and bridge
request limits all count with it. Sans-I/O: time is passed in, so it is tested with numbers alone.

Kept as two running totals, bytes (or requests) taken and paid for; `tokens` = paid - taken. Paid grows at
`rate` per second and is never more than `burst` ahead of taken. Three ways to spend:
- `take(now, cost)`: only if the tokens are there (a request limit: refuse, do not queue);
- `wait(n, now)` then `take`: a pacer that holds a packet until the tokens are there;
- `charge(n, now)`: spend at once, possibly into debt, and learn how long to wait it out. A taker's mark
  (`taken` right after its charge) lets it recompute its wait with `until` when the rate changes.
A rate of 0 is unlimited.
"""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; a fresh bucket starts full."""

    __slots__ = ("rate", "burst", "taken", "paid", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.taken = 0.0
        self.paid = self.burst
        self.stamp = now

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    @property
    def tokens(self) -> float:
        """What may be spent now without waiting (negative: the debt being waited out)."""
        return self.paid - self.taken

    def refill(self, now: float) -> None:
        if self.rate > 0 and now > self.stamp:
            self.paid = min(self.taken + self.burst, self.paid + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` if it is there; False (nothing spent) if not."""
        if self.unlimited:
            return True
        self.refill(now)
        if self.tokens < cost:
            return False
        self.taken += cost
        return True

    def wait(self, n: float, now: float) -> float:
        """Seconds until `n` could be taken without debt (0: now)."""
        if self.unlimited:
            return 0.0
        self.refill(now)
        return max(0.0, n - self.tokens) / self.rate

    def charge(self, n: float, now: float) -> float:
        """Spend `n` now, into debt if need be; returns the seconds to wait before using what was spent."""
        if self.unlimited:
            return 0.0
        self.refill(now)
        self.taken += n
        return self.until(self.taken, now)

    def until(self, mark: float, now: float) -> float:
        """Seconds until everything taken up to `mark` is paid for."""
        if self.unlimited:
            return 0.0
        self.refill(now)
        return max(0.0, min(mark, self.taken) - self.paid) / self.rate

    def full(self, now: float) -> bool:
        """No debt and nothing to gain by waiting (an idle bucket that can be forgotten)."""
        return self.unlimited or self.tokens + max(0.0, now - self.stamp) * self.rate >= self.burst

    def set_rate(self, rate: float, burst: float, now: float, max_debt: float | None = None) -> None:
        """Change rate and burst from `now` on. Debt beyond `max_debt` seconds at the new rate is forgiven
        (None: all kept); going unlimited forgives all."""
        self.refill(now)
        self.rate = float(rate)
        self.burst = float(burst)
        if self.unlimited:
            self.paid = self.taken
            return
        floor = self.paid if max_debt is None else max(self.paid, self.taken - self.rate * max_debt)
        self.paid = min(self.taken + self.burst, floor)
