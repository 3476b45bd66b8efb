"""A one-line progress display on stderr: a redrawn bar on a terminal, periodic plain lines otherwise.

Pure formatting (`progress_line`) is separate from writing (`ProgressDisplay`) so it is tested with data
alone; time is passed in. No dependency: a download's line is short enough to draw by hand.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the engine imports libtorrent: keep `i2ptorrent --help` and `create` quick
    from i2ptorrent.engine import TorrentStatus

UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
PLAIN_INTERVAL = 5.0  # seconds between lines when stderr is not a terminal
TTY_INTERVAL = 0.25


def format_bytes(n: float) -> str:
    """Decimal units, as webtorrent-cli and transmission show them: 1.5 MB."""
    value = float(n)
    for unit in UNITS:
        if abs(value) < 1000 or unit == UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_rate(bps: float) -> str:
    return format_bytes(bps) + "/s"


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0 or seconds > 100 * 86400:
        return "--:--"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta_of(st: "TorrentStatus") -> float | None:
    """Seconds left at the current rate, None when unknown (no rate or size yet)."""
    if st.progress >= 1:
        return 0.0
    if st.download_rate <= 0 or not st.total_size:
        return None
    return st.total_size * (1 - st.progress) / st.download_rate


def bar(fraction: float, width: int) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def progress_line(st: "TorrentStatus", width: int = 100) -> str:
    """One status line: name, state, percent, bar, speeds, peers, ETA; fitted to `width` columns."""
    if st.error:
        core = f"error: {st.error}"
    elif st.state == "metadata":
        core = f"fetching metadata  peers {st.peers}"
    else:
        core = (f"{st.state:<11} {st.progress * 100:5.1f}%  "
                f"down {format_rate(st.download_rate):>10}  up {format_rate(st.upload_rate):>10}  "
                f"peers {st.peers:<3} ETA {format_eta(eta_of(st))}")
    warning = getattr(st, "warning", None)
    if warning and not st.error:
        core += f"  ! {warning}"
    name = st.name if len(st.name) <= 24 else st.name[:23] + "~"
    inner = min(30, width - 1 - len(name) - 2 - len(core) - 4)  # room left for the bar's inside
    if st.state != "metadata" and not st.error and inner >= 10:
        core = core.replace("%  ", "%  " + bar(st.progress, inner) + "  ", 1)
    line = f"{name}  {core}"
    return line[: max(10, width - 1)]


class ProgressDisplay:
    """Draws statuses to `stream` (stderr). On a TTY the line is redrawn in place; else one every 5 s."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._last = float("-inf")
        self._last_state = ""
        self._drawn = False
        self._last_line = ""

    def update(self, st: "TorrentStatus", now: float, force: bool = False) -> None:
        changed = st.state != self._last_state
        interval = TTY_INTERVAL if self.tty else PLAIN_INTERVAL
        if not (force or changed or now - self._last >= interval):
            return
        self._last, self._last_state = now, st.state
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r\x1b[K" + progress_line(st, width))
            self._drawn = True
        else:
            line = progress_line(st, 160)
            if line == self._last_line:
                return
            self._last_line = line
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own that does not get overwritten by the bar."""
        self.finish()
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
