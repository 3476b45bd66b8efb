"""What a failure means to the user: one line of text and an exit code, never a traceback.

Exit codes:
    0    success (for `add`: downloaded and verified; Ctrl-C while seeding afterwards is still 0)
    1    unexpected failure (a bug: please report it with -v)
    2    usage or configuration error (bad flag, bad config file or environment value)
    3    bad input: not a magnet/.torrent, unreadable or corrupt .torrent, unknown torrent, bad tracker URL
    4    I2P unreachable: no SAM bridge answers, the router refused the session, i2pd missing
    5    filesystem: directory not writable, not enough free space, disk full, write failed
    6    daemon: none running for this data directory, or its control socket failed
    7    the tracker's shared store (Redis, `tracker --redis`) is unreachable at start
    130  interrupted (Ctrl-C) before the command finished
"""

from __future__ import annotations

import errno

from i2ptorrent.config import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_I2P = 4
EXIT_FS = 5
EXIT_DAEMON = 6
EXIT_STORE = 7
EXIT_INTERRUPTED = 130

NO_BRIDGE_HINT = ("start an I2P router with its SAM bridge enabled (i2pd: `[sam] enabled = true` in i2pd.conf; "
                  "Java I2P: enable SAM in the router console), pass --sam HOST:PORT, or use --private-router "
                  "for a local test router")


class UserError(Exception):
    """A failure the user can act on: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def classify(exc: BaseException) -> UserError | None:
    """Map the library's errors to a user message and exit code; None for a real bug."""
    from i2ptorrent.client import ClientError  # the engine imports libtorrent: keep `--help` quick
    from i2ptorrent.engine import EngineError, MetainfoError
    from i2ptorrent.tracker.urls import TrackerURLError
    from i2ptorrent.transport.sam import SAMError, SAMUnavailable

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, ConfigError):
        return UserError(str(exc), EXIT_USAGE)
    if isinstance(exc, (MetainfoError, ClientError, TrackerURLError)):
        return UserError(str(exc), EXIT_INPUT)
    if isinstance(exc, SAMUnavailable):
        text = str(exc)
        return UserError(text if "--private-router" in text else f"{text}: {NO_BRIDGE_HINT}", EXIT_I2P)
    if isinstance(exc, SAMError):
        return UserError(f"I2P router: {exc}", EXIT_I2P)
    if isinstance(exc, EngineError):
        return UserError(str(exc), EXIT_FAILURE)
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return UserError(f"{where}disk full", EXIT_FS)
        return UserError(f"{where}{exc.strerror or exc}", EXIT_FS)
    return None
