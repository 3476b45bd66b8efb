"""Sizes, rates and durations as a user types them (256K, 2M, 30m, 7d), checked with a clear message."""

from __future__ import annotations

import re

from i2ptorrent.app.errors import EXIT_USAGE, UserError


def parse_size(text: str, what: str = "size") -> int:
    m = re.fullmatch(r"(\d{1,10})\s*([kKmM]i?[bB]?)?", text.strip())
    if not m:
        raise UserError(f"{what} {text!r}: expected e.g. 256K or 1M", EXIT_USAGE)
    unit = (m[2] or "").lower()[:1]
    return int(m[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def parse_rate(text: str, flag: str) -> int:
    """Bytes/s for --download-limit/--upload-limit: 0 (unlimited) or within the engine's bounds."""
    from i2ptorrent.engine.ratelimit import MAX_RATE, MIN_RATE

    rate = parse_size(text, flag)
    if rate != 0 and not MIN_RATE <= rate <= MAX_RATE:
        raise UserError(f"{flag} {text!r}: 0 (unlimited) or from 1K to 1024G bytes/s", EXIT_USAGE)
    return rate


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d{1,9})\s*([smhd]?)", text.strip())
    if not m:
        raise UserError(f"duration {text!r}: expected e.g. 3600, 30m, 12h or 7d", EXIT_USAGE)
    return float(int(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]])
