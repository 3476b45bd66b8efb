"""libtorrent settings for a session that never touches the network.

libtorrent's defaults open listen sockets and reach public hosts at once (DHT bootstrap, LSD, UPnP,
NAT-PMP, a STUN server for WebTorrent). The engine uses libtorrent for storage and hash checks only, so
every one of those is switched off here, and the pack is handed to the session's constructor: a session
created with defaults and reconfigured afterwards has already sent packets.
"""

from __future__ import annotations

from typing import Any

import libtorrent as lt

# Alerts the engine reacts to; read_piece_alert is always posted whatever the mask.
ALERT_MASK: int = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
    | lt.alert.category_t.piece_progress_notification
)


def anonymous_settings() -> dict[str, Any]:
    """The complete settings pack: no socket of any kind, no clearnet lookups, no identifying strings."""
    return {
        # no listen socket at all (an empty interface list binds nothing)
        "listen_interfaces": "",
        "enable_incoming_tcp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": False,
        "enable_outgoing_utp": False,
        "ssl_listen": 0,
        # no discovery, no port mapping
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # WebTorrent in libtorrent needs ICE + STUN on the clearnet: off
        "webtorrent_stun_server": "",
        "max_webtorrent_offers": 0,
        # libtorrent's own I2P support would make a fresh transient destination each start: unused
        "i2p_hostname": "",
        "allow_i2p_mixed": False,
        "anonymous_mode": True,
        "user_agent": "",
        "peer_fingerprint": "-XX0000-",
        "validate_https_trackers": True,
        # every torrent runs: no queueing of "inactive" torrents (ours have no libtorrent peers)
        "active_downloads": -1,
        "active_seeds": -1,
        "active_limit": -1,
        "dont_count_slow_torrents": False,
        "alert_mask": int(ALERT_MASK),
        "alert_queue_size": 20000,
        # two cores: one hashing thread is enough and leaves the other to the event loop
        "hashing_threads": 1,
        "aio_threads": 2,
    }


# Flags for every torrent handed to libtorrent: no peer sources of its own, never queued or paused by it.
TORRENT_FLAGS_OFF: int = (
    lt.torrent_flags.auto_managed | lt.torrent_flags.paused
)
TORRENT_FLAGS_ON: int = (
    lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
)
