"""The one loopback check: which host names may be reached or listened on outside I2P.

Everything that opens or accepts a plain socket (the SAM bridge, SAM forwarding, the tracker's TCP test
listener, loopback trackers, the browser bridge) asks here, so the rule is written once.
"""

from __future__ import annotations

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def is_loopback(host: str) -> bool:
    """True for this machine's loopback names only (not 127.0.0.2 or ::ffff:127.0.0.1: keep it exact)."""
    return host.lower() in LOOPBACK_HOSTS
