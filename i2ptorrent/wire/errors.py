"""The two ways a wire call can fail: the peer broke the protocol, or our own code misused the wire."""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """The remote peer violated the protocol; the connection object is dead and the peer must be dropped.

    `events` holds the events decoded from the same `receive_data` call before the violation, so nothing
    the peer delivered correctly (a verified block, say) is lost when the adapter disconnects.
    """

    def __init__(self, message: str, events: list[Any] | None = None) -> None:
        super().__init__(message)
        self.events: list[Any] = list(events or [])


class LocalProtocolError(Exception):
    """Our side asked the wire for something the protocol forbids (a bug in the caller, not the peer)."""


class MetadataError(Exception):
    """Assembled ut_metadata did not check out (wrong size or SHA-1 not the info-hash)."""
