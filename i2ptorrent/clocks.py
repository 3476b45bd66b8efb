"""The two clocks, named so that a time is only ever compared with a time from the same clock.

- `monotonic()`: intervals inside one running process: timeouts, timers, backoffs, rate limits, and the
  `now` that every sans-I/O core takes. Its origin is arbitrary (boot), so a monotonic time is never
  written to disk or handed to another process.
- `wall()`: seconds since the Unix epoch, for times that are stored or shared between processes: an
  invite's expiry, written by `i2ptorrent tracker invite` and checked by a running tracker. It can jump
  (NTP, the user), so it never times an interval.

A leaf module: any layer may import it.
"""

from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], float]

monotonic: Clock = time.monotonic
wall: Clock = time.time
