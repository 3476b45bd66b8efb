"""The token bucket behind the engine's rate limits, with time passed in, and its asyncio wrapper."""

import asyncio

import pytest

from i2ptorrent.engine.ratelimit import MAX_DEBT_SECONDS, MIN_BURST, RateLimiter, TokenBucket


def drain(bucket: TokenBucket, total: int, block: int, start: float = 0.0) -> float:
    """Take `total` bytes in `block`s the way a peer task does (wait, then take the next); return the end."""
    now = start
    for _ in range(total // block):
        now += bucket.take(block, now)
    return now


def test_long_run_rate_is_the_limit() -> None:
    bucket = TokenBucket(100_000, now=0.0)
    end = drain(bucket, 10_000_000, 16384)
    # 10 MB at 100 kB/s is 100 s, less the 50 kB burst that was there at the start
    assert end == pytest.approx(99.5, rel=0.01)


def test_unlimited_never_waits_and_reads_whole() -> None:
    bucket = TokenBucket(0)
    assert bucket.unlimited and drain(bucket, 10_000_000, 16384) == 0.0
    assert bucket.chunk(256 * 1024) == 256 * 1024


def test_idle_time_earns_at_most_the_burst() -> None:
    bucket = TokenBucket(100_000, now=0.0)
    assert bucket.take(50_000, 1000.0) == 0.0  # the burst (half a second) after a long idle
    assert bucket.take(50_000, 1000.0) == pytest.approx(0.5)  # then it is paid for


def test_many_takers_share_one_rate() -> None:
    bucket = TokenBucket(1_000_000, now=0.0)
    waits = [bucket.take(100_000, 0.0) for _ in range(20)]  # 20 peers at the same instant
    assert waits == sorted(waits) and waits[-1] == pytest.approx(1.5)  # 2 MB less the 0.5 MB burst


def test_rate_changes_apply_at_once_and_bad_rates_are_refused() -> None:
    bucket = TokenBucket(100_000, now=0.0)
    bucket.take(50_000, 0.0)
    bucket.set_rate(0, 0.0)
    assert bucket.take(10**9, 0.0) == 0.0
    bucket.set_rate(10_000, 1.0)
    assert bucket.burst == MIN_BURST and bucket.chunk(256 * 1024) == 4096
    for bad in (-1, 1, 1023):
        with pytest.raises(ValueError, match="at least 1024"):
            bucket.set_rate(bad, 2.0)


def test_lowering_the_rate_forgives_old_debt_and_raising_it_shortens_waits() -> None:
    bucket = TokenBucket(10_000_000, now=0.0)
    marks = []
    for _ in range(50):  # 50 peers each took a 1 MB read at 10 MB/s: 5 s of queue
        bucket.take(1_000_000, 0.0)
        marks.append(bucket.taken)
    assert bucket.until(marks[-1], 0.0) == pytest.approx(4.5)  # 50 MB less the 5 MB burst
    bucket.set_rate(10_000, 0.0)  # limits --download-limit 10K: nobody waits 8 minutes for the old debt
    assert max(bucket.until(m, 0.0) for m in marks) == pytest.approx(MAX_DEBT_SECONDS)
    bucket.set_rate(1_000_000, 0.0)  # raised again: every waiter's own wait shrinks with it
    assert max(bucket.until(m, 0.0) for m in marks) == pytest.approx(0.02)
    assert bucket.until(marks[0], 0.0) <= bucket.until(marks[-1], 0.0)


async def test_a_waiting_peer_is_released_when_the_limit_is_lifted() -> None:
    limiter = RateLimiter(2048)
    await limiter.acquire(16384)  # the 16 KiB burst
    waiter = asyncio.ensure_future(limiter.acquire(20 * 2048))  # 20 s at 2 KiB/s
    await asyncio.sleep(0.05)
    assert not waiter.done()
    limiter.set_rate(0)
    await asyncio.wait_for(waiter, 2)
