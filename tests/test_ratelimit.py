"""The token bucket behind the engine's rate limits, with time passed in."""

import pytest

from i2ptorrent.engine.ratelimit import MIN_BURST, MIN_CHUNK, TokenBucket


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
    assert bucket.burst == MIN_BURST and bucket.chunk(256 * 1024) == MIN_CHUNK
    with pytest.raises(ValueError, match="negative"):
        bucket.set_rate(-1, 2.0)
