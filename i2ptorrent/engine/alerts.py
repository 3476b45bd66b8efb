"""libtorrent alerts delivered on the asyncio loop.

libtorrent posts alerts from its own threads. Calling into Python from there (set_alert_notify) takes
the GIL inside libtorrent's lock, so instead libtorrent writes a byte to a socket that the event loop
watches (set_alert_fd); the loop then pops all alerts and hands each to the handler registered for its
torrent. Nothing blocks the loop and no Python runs on a libtorrent thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import libtorrent as lt

log = logging.getLogger(__name__)

AlertHandler = Callable[[Any], None]


def alert_info_hash(alert: Any) -> bytes | None:
    """The v1 info-hash of the torrent an alert is about, or None for session-wide alerts."""
    handle = getattr(alert, "handle", None)
    if handle is None or not handle.is_valid():
        return None
    try:
        return handle.info_hashes().v1.to_bytes()
    except RuntimeError:  # the handle went invalid between the two calls
        return None


class AlertPump:
    """Pops a session's alerts whenever libtorrent signals the socket, and routes them by info-hash."""

    def __init__(self, session: lt.session) -> None:
        self._session = session
        self._handlers: dict[bytes, AlertHandler] = {}
        self._rsock: socket.socket | None = None
        self._wsock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._session.set_alert_fd(self._wsock.fileno())
        self._loop.add_reader(self._rsock.fileno(), self._on_readable)
        self.drain()  # alerts posted before the fd was set never signal it

    def close(self) -> None:
        if self._rsock is None:
            return
        assert self._loop is not None and self._wsock is not None
        self._session.set_alert_fd(-1)
        self._loop.remove_reader(self._rsock.fileno())
        self._rsock.close()
        self._wsock.close()
        self._rsock = self._wsock = None
        self._handlers.clear()

    def subscribe(self, info_hash: bytes, handler: AlertHandler) -> None:
        self._handlers[info_hash] = handler

    def unsubscribe(self, info_hash: bytes) -> None:
        self._handlers.pop(info_hash, None)

    def _on_readable(self) -> None:
        assert self._rsock is not None
        try:
            while self._rsock.recv(4096):
                pass
        except BlockingIOError:
            pass
        self.drain()

    def drain(self) -> None:
        """Dispatch every pending alert now (also used right after calls that post one)."""
        for alert in self._session.pop_alerts():
            ih = alert_info_hash(alert)
            if ih is not None:
                handler = self._handlers.get(ih)
                if handler is not None:
                    self._call(handler, alert)

    @staticmethod
    def _call(handler: AlertHandler, alert: Any) -> None:
        try:
            handler(alert)
        except Exception:  # one bad handler must not stop the pump
            log.exception("alert handler failed for %s", type(alert).__name__)
