"""Browser WebTorrent <-> I2P: a local WebSocket tracker whose only peer is the bridge itself.

A stock WebTorrent client (in a browser on this machine) takes `bridge.announce_url` as its tracker.
The bridge answers its WebRTC offers with aiortc (no STUN/TURN, ICE candidates limited to local private
addresses both ways) and joins each data channel to the I2P side: our engine (the browser downloads what
we have or fetch over I2P; our I2P peers download what the browser seeds, via `adopt_dir`) or a remote
I2P peer (`connect_remote`). The browser never learns an I2P peer's address, nor the I2P side the
browser's.

    bridge = Bridge(engine_or_client, host="127.0.0.1", port=0, adopt_dir=None, connect_remote=None,
                    allowed_origins=None, ice_addresses=None, limits=BridgeLimits())
    await bridge.start(); bridge.announce_url   # 'ws://127.0.0.1:<port>/announce'
    bridge.stats(); await bridge.close()

A Client is started before its bridge (the bridge uses its engine and peer id). `allowed_origins` limits
which web pages may use the bridge (any page can reach a loopback port); `ice_addresses` replaces the
default ICE rule (private, loopback and link-local addresses only) with an explicit list.

core.py is the sans-I/O tracker endpoint (the tracker's parser and bounds), ice.py the SDP checks and
candidate filters, channel.py a data channel as a ByteStream, splice.py joins two ByteStreams.
"""

from .core import BridgeCore, BridgeLimits, SwarmView
from .ice import OfferError, check_offer, filter_candidates, private_only
from .server import Bridge, BridgeError

__all__ = ["Bridge", "BridgeCore", "BridgeError", "BridgeLimits", "OfferError", "SwarmView", "check_offer",
           "filter_candidates", "private_only"]
