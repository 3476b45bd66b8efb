"""The one token bucket, with time passed in; the engine's rate limits on it, and their asyncio wrapper."""

import asyncio

import pytest

from i2ptorrent.bucket import TokenBucket
from i2ptorrent.engine.ratelimit import MAX_DEBT_SECONDS, MIN_BURST, RateLimit, RateLimiter, RateLimits


def drain(bucket: RateLimit, total: int, block: int, start: float = 0.0) -> float:
    """Take `total` bytes in `block`s the way a peer task does (wait, then take the next); return the end."""
    now = start
    for _ in range(total // block):
        now += bucket.charge(block, now)
    return now


def test_long_run_rate_is_the_limit() -> None:
    bucket = RateLimit(100_000, now=0.0)
    end = drain(bucket, 10_000_000, 16384)
    # 10 MB at 100 kB/s is 100 s, less the 50 kB burst that was there at the start
    assert end == pytest.approx(99.5, rel=0.01)


def test_unlimited_never_waits_and_reads_whole() -> None:
    bucket = RateLimit(0)
    assert bucket.unlimited and drain(bucket, 10_000_000, 16384) == 0.0
    assert bucket.chunk(256 * 1024) == 256 * 1024


def test_idle_time_earns_at_most_the_burst() -> None:
    bucket = RateLimit(100_000, now=0.0)
    assert bucket.charge(50_000, 1000.0) == 0.0  # the burst (half a second) after a long idle
    assert bucket.charge(50_000, 1000.0) == pytest.approx(0.5)  # then it is paid for


def test_many_takers_share_one_rate() -> None:
    bucket = RateLimit(1_000_000, now=0.0)
    waits = [bucket.charge(100_000, 0.0) for _ in range(20)]  # 20 peers at the same instant
    assert waits == sorted(waits) and waits[-1] == pytest.approx(1.5)  # 2 MB less the 0.5 MB burst


def test_rate_changes_apply_at_once_and_bad_rates_are_refused() -> None:
    bucket = RateLimit(100_000, now=0.0)
    bucket.charge(50_000, 0.0)
    bucket.set_limit(0, 0.0)
    assert bucket.charge(10**9, 0.0) == 0.0
    bucket.set_limit(10_000, 1.0)
    assert bucket.burst == MIN_BURST and bucket.chunk(256 * 1024) == 4096
    for bad in (-1, 1, 1023):
        with pytest.raises(ValueError, match="at least 1024"):
            bucket.set_limit(bad, 2.0)


def test_lowering_the_rate_forgives_old_debt_and_raising_it_shortens_waits() -> None:
    bucket = RateLimit(10_000_000, now=0.0)
    marks = []
    for _ in range(50):  # 50 peers each took a 1 MB read at 10 MB/s: 5 s of queue
        bucket.charge(1_000_000, 0.0)
        marks.append(bucket.taken)
    assert bucket.until(marks[-1], 0.0) == pytest.approx(4.5)  # 50 MB less the 5 MB burst
    bucket.set_limit(10_000, 0.0)  # limits --download-limit 10K: nobody waits 8 minutes for the old debt
    assert max(bucket.until(m, 0.0) for m in marks) == pytest.approx(MAX_DEBT_SECONDS)
    bucket.set_limit(1_000_000, 0.0)  # raised again: every waiter's own wait shrinks with it
    assert max(bucket.until(m, 0.0) for m in marks) == pytest.approx(0.02)
    assert bucket.until(marks[0], 0.0) <= bucket.until(marks[-1], 0.0)


def test_a_request_limit_refuses_instead_of_queueing() -> None:
    """The tracker's and the bridge's use: 10 per second, 100 saved up; refused requests cost nothing."""
    bucket = TokenBucket(10, 100, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(150)) == 100
    assert not bucket.take(0.05) and bucket.take(0.1)  # one more each tenth of a second
    assert not bucket.full(5.0) and bucket.full(10.1)  # idle long enough to be forgotten


def test_a_pacer_waits_for_the_tokens_then_takes_them() -> None:
    """The carrier's use: hold a datagram until the tokens for all of it are there."""
    bucket = TokenBucket(1000, 1500, now=0.0)
    assert bucket.wait(1200, 0.0) == 0.0 and bucket.take(0.0, 1200)
    assert bucket.wait(1200, 0.0) == pytest.approx(0.9)
    assert not bucket.take(0.5, 1200) and bucket.take(0.9, 1200)


async def test_a_waiting_peer_is_released_when_the_limit_is_lifted() -> None:
    limiter = RateLimiter(2048)
    await limiter.acquire(16384)  # the 16 KiB burst
    waiter = asyncio.ensure_future(limiter.acquire(20 * 2048))  # 20 s at 2 KiB/s
    await asyncio.sleep(0.05)
    assert not waiter.done()
    limiter.set_rate(0)
    await asyncio.wait_for(waiter, 2)


async def test_a_torrents_limits_sit_under_the_engines_unless_it_ignores_them() -> None:
    engine = RateLimits()
    engine.set(0, 1_000_000)
    torrent = RateLimits(parent=engine)
    torrent.set(20_480, 500_000)
    assert torrent.download_chunk(256 * 1024) == 4096  # the torrent's limit is the tighter one
    await torrent.acquire_upload(10_000)  # within both bursts: no wait
    assert engine.upload.bucket.taken == 10_000 and torrent.upload.bucket.taken == 10_000
    await torrent.acquire_download(10_000)
    assert torrent.download.bucket.taken == 10_000 and engine.download.bucket.unlimited
    torrent.honors_parent = False  # Transmission's honorsSessionLimits false: the engine's limit skipped
    await torrent.acquire_upload(10_000)
    assert engine.upload.bucket.taken == 10_000 and torrent.upload.bucket.taken == 20_000
