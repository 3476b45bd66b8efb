"""The private WebTorrent + classic I2P tracker (server, eepsite, access control) and its clients.

Server:   site = await start_tracker(data_dir, sam, session_options, private=True); site.announce_url
Shared:   store = await RedisSwarmStore.connect(url, private=True)   # StoreUnavailable if unreachable
          site = await start_tracker(data_dir, sam, session_options, store=store)  # swarms/access in Redis
          (redis_store.py: the adapter; shared.py: what cores of several instances tell each other)
          store.instances: the live instances (heartbeats), also in /stats.json `instances` and the page
Access:   AccessList.load(data_dir / "access.json").invite(ttl=s) / .allow(b32) / .revoke(b32)
          (an invite's expiry is stored wall-clock time: `i2ptorrent.clocks`; the core's `now` is monotonic)
Clients:  WebSocketTrackerClient(url, sam_opener(session, url), peer_id, offer_factory=...).start()
          await http_announce(sam_opener(session, url), url, info_hash, peer_id, ...)
"""

from .access import AccessList
from .client import (AnnounceResult, AnswerReceived, ClientTimers, HttpAnnounceResult, OfferExpired,
                     OfferReceived, TrackerError, TrackerEvent, TrackerFailure, WebSocketTrackerClient,
                     http_announce, http_scrape, tcp_opener)
from .core import TrackerCore
from .eepsite import TrackerEepsite, TrackerPaths, start_tracker
from .identity import PeerIdentity
from .limits import TrackerLimits
from .server import TrackerServer
from .urls import TrackerURLError, parse_tracker_url, sam_opener, tracker_opener

__all__ = [
    "AccessList", "AnnounceResult", "AnswerReceived", "ClientTimers", "HttpAnnounceResult", "OfferExpired",
    "OfferReceived", "PeerIdentity", "TrackerCore", "TrackerEepsite", "TrackerError", "TrackerEvent",
    "TrackerFailure", "TrackerLimits", "TrackerPaths", "TrackerServer", "TrackerURLError", "WebSocketTrackerClient",
    "http_announce", "http_scrape", "parse_tracker_url", "sam_opener", "start_tracker", "tcp_opener",
    "tracker_opener",
]
