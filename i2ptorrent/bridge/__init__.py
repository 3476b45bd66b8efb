"""Browser WebTorrent <-> I2P: a local WebSocket tracker whose only peer is the bridge itself.

A stock WebTorrent client (in a browser on this machine) takes `bridge.announce_url` as its tracker. That
URL holds the bridge's secret: any page can reach a loopback port, so only a request for
`/<secret>/announce`, with a Host header naming the bridge's own address and (with `allowed_origins`) a
listed Origin, is served; everything else gets the same 404 before any WebSocket exists (gate.py).
The bridge answers the browser's WebRTC offers with aiortc (no STUN/TURN, ICE candidates limited to
local private addresses both ways, and our answer names one local address) and joins each data channel
to the I2P side: the node (the browser downloads what we have or fetch over I2P; our I2P peers download
what the browser seeds, via `adopt_dir`) or a remote I2P peer (`connect_remote`). The browser never
learns an I2P peer's address, nor the I2P side the browser's.

    bridge = Bridge(client, secret=load_or_create_secret(data_dir / SECRET_FILE), host="127.0.0.1",
                    port=0, adopt_dir=None, connect_remote=None, allowed_origins=None,
                    ice_addresses=None, limits=BridgeLimits())
    await bridge.start(); bridge.announce_url   # 'ws://127.0.0.1:<port>/<secret>/announce'
    bridge.stats(); await bridge.close()

The node is a started Client (its public API: peer_id, get, add, add_peer; see `Node`); tests without
I2P pass an Engine, which has the same members. Without `secret`, the bridge makes a one-off secret.
`ice_addresses` replaces the default ICE rule (private, loopback and link-local addresses only) with an
explicit list. The CLI refuses `adopt_dir` without `allowed_origins`: adopting lets a page make our I2P
identity seed what it chooses.

gate.py is who may connect, core.py the sans-I/O tracker endpoint (the tracker's parser and bounds),
ice.py the SDP checks and candidate filters, channel.py a data channel as a ByteStream, splice.py joins
two ByteStreams.
"""

from .core import BridgeCore, BridgeLimits, SwarmView
from .gate import SECRET_FILE, Gate, load_or_create_secret, new_secret
from .ice import OfferError, check_offer, filter_candidates, private_only
from .server import Bridge, BridgeError, Node

__all__ = ["SECRET_FILE", "Bridge", "BridgeCore", "BridgeError", "BridgeLimits", "Gate", "Node", "OfferError",
           "SwarmView", "check_offer", "filter_candidates", "load_or_create_secret", "new_secret", "private_only"]
