"""Where a command writes: status lines and the progress bar for people, results as text or --json."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any, TextIO

from i2ptorrent.app.progress import ProgressDisplay


class Output:
    """Human text on stderr (status) and stdout (results), or JSON on stdout (one object per line)."""

    def __init__(self, json_mode: bool, quiet: bool = False, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.json = json_mode
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.progress = ProgressDisplay(self.stderr)

    def say(self, text: str) -> None:
        """A status line for people (stderr), hidden by -q."""
        if not self.quiet:
            self.progress.message(text)

    def result(self, text: str, **data: Any) -> None:
        """A result: the text on stdout, or one JSON object with `data` in --json mode."""
        if self.json:
            self.stdout.write(json.dumps(data, default=str) + "\n")
        else:
            self.progress.finish()
            self.stdout.write(text + "\n")
        self.stdout.flush()

    def show(self, st: Any, force: bool = False) -> None:
        """A torrent's status on the progress line (redrawn at most every so often unless forced)."""
        if not self.quiet:
            self.progress.update(st, time.monotonic(), force)


def status_dict(st: Any) -> dict[str, Any]:
    """A TorrentStatus as JSON-ready data (its internal swarm counters left out)."""
    d = asdict(st)
    d.pop("stats", None)
    return d
