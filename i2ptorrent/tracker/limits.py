"""The bounds that keep one tracker process safe from any single peer, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from ..bucket import TokenBucket  # per-destination request limits (the bridge uses it too)

__all__ = ["TokenBucket", "TrackerLimits"]


@dataclass(frozen=True, slots=True)
class TrackerLimits:
    announce_interval: int = 120  # seconds, the reference server's WebSocket interval
    http_announce_interval: int = 600  # the reference server's HTTP interval (I2P round trips are slow)
    max_message_size: int = 64 * 1024  # one WebSocket frame / JSON message
    max_offers: int = 10  # offers relayed per announce; extra offers are ignored
    max_numwant: int = 50  # peers per classic HTTP announce
    max_scrape: int = 64  # info hashes per scrape
    rate_per_second: float = 10.0  # sustained messages per destination
    rate_burst: float = 100.0  # bucket size per destination
    max_swarm_peers: int = 1000  # per swarm, least recently announced evicted first
    peer_ttl: float = 20 * 60.0  # a peer that has not announced for this long is dropped
    max_swarms: int = 100_000  # least recently used swarm evicted first
    idle_timeout: float = 5 * 60.0  # a WebSocket that sent nothing for this long is closed
    offer_timeout: float = 50.0  # how long a relayed offer may be answered (reference client: 50 s)
    max_pending_offers: int = 256  # relayed offers awaiting an answer, per connection
    max_connections_per_peer: int = 32  # WebSockets open at once from one destination
